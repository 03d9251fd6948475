"""What the ZooKeeper pre-refresh check looks at: every unit a member, every server in a quorum.

Each server is asked ``srvr`` directly (a four-letter word, no session): a server in a quorum
answers with its ``Mode:`` (leader, follower or standalone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

SERVING_MODES = ("leader", "follower", "standalone")


def mode(srvr_answer: str) -> str | None:
    """Return the ``Mode:`` a ``srvr`` answer names (None: not in a quorum or no answer)."""
    for line in srvr_answer.splitlines():
        if line.startswith("Mode:"):
            found = line.split(":", 1)[1].strip()
            return found if found in SERVING_MODES else None
    return None


def refresh_problems(
    units: Mapping[str, str], members: Mapping[int, str], srvr: Callable[[str], str]
) -> list[str]:
    """Return the problems (empty: healthy) of ``units`` (name -> address) and ``members``."""
    problems = []
    addresses = set(members.values())
    for unit, address in sorted(units.items()):
        if address not in addresses:
            problems.append(f"{unit} is not an ensemble member")
        if mode(srvr(address)) is None:
            problems.append(f"{unit} is not serving (no quorum)")
    return problems
