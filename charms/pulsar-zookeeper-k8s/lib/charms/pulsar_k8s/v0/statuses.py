"""Named statuses: one wording per situation, each saying what is awaited or the way out."""

from __future__ import annotations

import ops

LIBID = "9e8d7c6b5a4f4e3d2c1b0a9f8e7d6c5b"
LIBAPI = 0
LIBPATCH = 1


def bad_config(error: ValueError | TypeError) -> ops.BlockedStatus:
    """``"<option>: <what it accepts>"``: nothing running was touched."""
    return ops.BlockedStatus(str(error))


def no_relation(relation: str) -> ops.WaitingStatus:
    return ops.WaitingStatus(f"waiting for a {relation} relation")


def awaiting(what: str) -> ops.WaitingStatus:
    return ops.WaitingStatus(f"waiting for {what}")


def invalid_data(error: ValueError) -> ops.WaitingStatus:
    """Relation, peer or secret data refused: names the relation and field; nothing rendered."""
    return ops.WaitingStatus(f"{error}; waiting for valid data")


def pebble_unreachable(detail: str = "") -> ops.WaitingStatus:
    suffix = f" ({detail})" if detail else ""
    return ops.WaitingStatus(f"waiting for the pulsar container (Pebble){suffix}")
