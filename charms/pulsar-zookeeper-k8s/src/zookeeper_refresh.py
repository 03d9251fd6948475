"""What the ZooKeeper pre-refresh check looks at: every unit a member, every server in a quorum.

Each server's AdminServer is asked ``zabstate`` (plain HTTP, no session): a server in a quorum
is in the ``broadcast`` state and says whether it leads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping


def mode(zabstate_answer: str) -> str | None:
    """Return ``leader`` or ``follower`` from a ``zabstate`` answer (None: not in a quorum)."""
    try:
        data = json.loads(zabstate_answer)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("zabstate") != "broadcast":
        return None
    return "leader" if data.get("is_leader") is True else "follower"


def refresh_problems(
    units: Mapping[str, str], members: Mapping[int, str], zabstate: Callable[[str], str]
) -> list[str]:
    """Return the problems (empty: healthy) of ``units`` (name -> address) and ``members``.

    ``zabstate``: the AdminServer's answer to ``zabstate`` of an address ("" : no answer).
    """
    problems = []
    addresses = set(members.values())
    for unit, address in sorted(units.items()):
        if address not in addresses:
            problems.append(f"{unit} is not an ensemble member")
        if mode(zabstate(address)) is None:
            problems.append(f"{unit} is not serving (no quorum)")
    return problems
