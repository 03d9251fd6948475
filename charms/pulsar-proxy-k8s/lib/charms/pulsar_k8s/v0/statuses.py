"""Named statuses, one wording per situation, and the one error policy of every reconcile.

:func:`guarded` runs a charm's convergence: Pebble trouble (:class:`WorkloadError` or a raw
Pebble error) and refused data (:class:`InvalidField`, :class:`UnsafeValue`) become Waiting
statuses that say what is awaited; nothing else is caught, so a bug still fails the hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import ops
from charms.pulsar_k8s.v0.rendering import UnsafeValue
from charms.pulsar_k8s.v0.validation import InvalidField
from charms.pulsar_k8s.v0.workload import PEBBLE_ERRORS, WorkloadError

LIBID = "9e8d7c6b5a4f4e3d2c1b0a9f8e7d6c5b"
LIBAPI = 0
LIBPATCH = 2

logger = logging.getLogger(__name__)


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


def with_problems(message: str, problems: list[str], prefix: str = "") -> str:
    """``message`` plus the first problem and how many more (a status line stays short)."""
    if not problems:
        return message
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{message}; {prefix}{problems[0]}{more}"


def guarded(converge: Callable[[], ops.StatusBase]) -> ops.StatusBase:
    """Run one convergence; Pebble trouble and refused data become Waiting statuses."""
    try:
        return converge()
    except (WorkloadError, *PEBBLE_ERRORS) as exc:
        # Pebble went away mid-hook (container restarting): the next event converges again.
        logger.warning("pebble call failed: %s", exc)
        return pebble_unreachable("retrying")
    except (InvalidField, UnsafeValue) as exc:
        return invalid_data(exc)
