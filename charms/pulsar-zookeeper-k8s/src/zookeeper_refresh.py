"""What the ZooKeeper pre-refresh check looks at: every unit a member, every server in a quorum.

Each server's AdminServer is asked ``leader`` (plain HTTP, no session): a server in a quorum
answers whether it leads; one out of a quorum says it is not serving.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping


def mode(leader_answer: str) -> str | None:
    """Return ``leader`` or ``follower`` from a ``leader`` answer (None: not in a quorum)."""
    try:
        data = json.loads(leader_answer)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("is_leader"), bool):
        return None
    return "leader" if data["is_leader"] else "follower"


def refresh_problems(
    units: Mapping[str, str], members: Mapping[int, str], leader: Callable[[str], str]
) -> list[str]:
    """Return the problems (empty: healthy) of ``units`` (name -> address) and ``members``.

    ``leader``: the AdminServer's answer to ``leader`` of an address ("" : no answer).
    """
    problems = []
    addresses = set(members.values())
    for unit, address in sorted(units.items()):
        if address not in addresses:
            problems.append(f"{unit} is not an ensemble member")
        if mode(leader(address)) is None:
            problems.append(f"{unit} is not serving (no quorum)")
    return problems
