"""What the BookKeeper pre-refresh check looks at: bookies writable, ledgers replicated.

Each bookie's own HTTP API says whether it is writable (``bookkeeper_view.bookie_state``);
``bin/bookkeeper shell listunderreplicated -c`` prints
``Under replicated ledger count: <n>`` (BookKeeper 4.17), read from the metadata store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bookkeeper_view import WRITABLE

UNDERREPLICATED_COMMAND = ["shell", "listunderreplicated", "-c"]
_COUNT = re.compile(r"Under replicated ledger count: ([0-9]+)")


def bookie_problems(states: Mapping[str, str]) -> list[str]:
    """Return a problem per bookie that is not writable (unit name -> live state)."""
    return [
        f"{unit} bookie {state}" for unit, state in sorted(states.items()) if state != WRITABLE
    ]


def underreplicated_problem(ok: bool, output: str) -> str | None:
    """Read the tool's answer: None when it counted zero under-replicated ledgers."""
    counts = _COUNT.findall(output) if ok else []
    if not counts:
        return "cannot count under-replicated ledgers (listunderreplicated failed)"
    count = int(counts[-1])
    return f"{count} under-replicated ledger(s)" if count else None
