"""Safe removal of a bookie unit: what is decided, and what the operator is told.

A unit is being removed (``juju remove-unit``, scale down) when it sees itself depart a relation
(``relation-departed`` with ``departing_unit`` = this unit) or its storage detach; a pod restart
shows neither, so it decommissions nothing. The first such event decides, once, while every
relation is still readable:

- ``decommission``: enough writable bookies remain for the brokers' ensemble. The bookie turns
  read-only at once (no new ledger lands on it); in the next teardown hook (storage-detaching,
  then stop, then remove: each is a new attempt) the bookie stops, ``decommissionbookie`` waits
  until autorecovery re-replicated every ledger it held and deletes its cookie, and
  ``listbookies -a`` must no longer list it.
- ``refused``: fewer writable bookies than the ensemble size would remain. Nothing is moved and
  the cookie stays, so scaling back up with the same storage brings the bookie back. Kubernetes
  still deletes the pod: a charm cannot veto a scale-down, it only refuses to decommission.

This module holds the pure part: the decision and the wording.
"""

from __future__ import annotations

from dataclasses import dataclass

DECOMMISSION, REFUSED = "decommission", "refused"
# Longest wait for re-replication in one teardown hook (the one hook allowed to block):
# decommissionbookie sleeps 30 s for the auditor, then polls the ledgers' metadata.
DECOMMISSION_TIMEOUT_S = 600.0
# When no related application tells its ensemble size, one other writable bookie must remain.
DEFAULT_REQUIRED = 1


@dataclass(frozen=True)
class Decision:
    plan: str
    reason: str = ""


def decide(remaining_writable: int, required: int | None, app: str) -> Decision:
    """Decommission unless fewer than ``required`` writable bookies would remain."""
    needed = required or DEFAULT_REQUIRED
    if remaining_writable >= needed:
        return Decision(DECOMMISSION)
    return Decision(
        REFUSED,
        f"removal refused: {remaining_writable} writable bookies would remain, the brokers' "
        f"ensemble needs {needed}; not decommissioned (data and cookie kept): "
        f"scale {app} back up to at least {needed}",
    )


def short_of_bookies(planned: int, required: int | None, app: str) -> str | None:
    """Return the remaining units' Blocked message when too few bookies are planned."""
    if required is None or planned >= required:
        return None
    return (
        f"{planned} bookie units, the brokers' ensemble needs {required}: scale {app} to "
        f"{required} (a bookie removed below it was not decommissioned)"
    )


def leaving_message() -> str:
    return "leaving: bookie read-only; decommissions when its storage detaches"


def decommissioning_message() -> str:
    return (
        "decommissioning: waiting for this bookie's ledgers to be re-replicated "
        f"(up to {int(DECOMMISSION_TIMEOUT_S)} s)"
    )


def decommissioned_message(seconds: float) -> str:
    return f"decommissioned in {int(seconds)} s: ledgers re-replicated, cookie removed"


def failed_message(what: str, last_hook: bool) -> str:
    then = (
        "the unit goes without it: see docs/how-to/scale.md"
        if last_hook
        else "retrying in the next teardown hook"
    )
    return f"decommission failed ({what}); {then}"
