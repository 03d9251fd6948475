"""The "view" check: a Pebble check that fails while the charm's view of its workload is stale.

Juju delivers ``pebble-check-failed`` when a check's failures reach its threshold and
``pebble-check-recovered`` when it passes again, and nothing for a check that never fails, so a
plain readiness check can miss a workload that becomes ready between two runs. A view check
compares the workload's live state (printed by a charm-specific bash snippet) with the state the
charm last recorded in a file; it fails as soon as they differ, so the charm is woken by a real
event, records what it sees and acts on it. After every record the check passes once (a grace
period), so a later difference is a new failure, hence a new event.

Work that failed and must be retried while nothing else changes (a ZooKeeper operation with the
quorum up, a namespace the broker refused) is woken the same way: the charm records a *retry*
view (:func:`retry_content`), which no live state equals and whose stamp makes it pass only until
the retry is due; then the check fails, Juju raises ``pebble-check-failed`` and the reconcile runs
again (recording the live view clears the retry).

Each charm supplies only its state names and the bash that prints the live state.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from charms.pulsar_k8s.v0.workload import WORKLOAD_UID, Workload

LIBID = "def62e14dfd24541af2ded9317797ade"
LIBAPI = 0
LIBPATCH = 4

# A view recorded this recently passes. Longer than two check periods, so at least one run falls
# inside it.
GRACE_S = 5
# The view file lives in the pod (not in storage): a new pod starts with no view, hence one event.
VIEW_DIR = "/pulsar/logs/charm-view"


def record_content(state: str, now: float) -> str:
    """Return what the charm writes in its view file: the state it saw and when (epoch s)."""
    return f"{state} {int(now)}"


# The prefix of a retry view: no live state starts with it.
RETRY_PREFIX = "retry:"


def retry_content(state: str, now: float, after_s: float) -> str:
    """Return a view that makes the check fail ``after_s`` from ``now`` (work to retry).

    The live state never equals it, and its stamp keeps it inside the grace period until then.
    """
    return f"{RETRY_PREFIX}{state} {int(now + max(after_s, 0.0)) - GRACE_S}"


def recorded_state(content: str | None) -> str | None:
    """Return the state a view file records (None: nothing recorded)."""
    return content.split()[0] if content and content.split() else None


def record_view(workload: Workload, path: str, state: str, stale: bool = False) -> None:
    """Record the live ``state`` for the view check when it changed.

    ``stale``: the check just failed, so the record is re-stamped even if equal (a new grace
    period, hence a new event on the next difference).
    """
    if stale or recorded_state(workload.read_text(path)) != state:
        workload.push({path: record_content(state, time.time())})


def check_script(live_state_script: str, path: str) -> str:
    """Bash: pass while the live state is the recorded one, or the record is fresh."""
    return (
        f"read -r seen stamp < {path} 2>/dev/null; "
        f'live="$({live_state_script})"; '
        '[ "$live" = "$seen" ] || '
        f"[ $(( $(printf '%(%s)T' -1) - ${{stamp:-0}} )) -lt {GRACE_S} ]"
    )


def exec_check(script: str, level: str | None = None, shell: str = "/bin/bash") -> dict[str, Any]:
    """Return a 2 s Pebble exec check of ``script`` run by the workload's user.

    One failure is enough (threshold 1): a failure is a change of state, the event a charm
    waits for, and a ready check that fails must take the pod out at once. ``level: ready``
    makes it part of Kubernetes' readiness probe.
    """
    check: dict[str, Any] = {
        "override": "replace",
        "period": "2s",
        "timeout": "1s",
        "threshold": 1,
        "exec": {
            "command": shlex.join([shell, "-c", script]),
            "user-id": WORKLOAD_UID,
            "group": "root",
        },
    }
    if level is not None:
        check["level"] = level
    return check


def view_check(live_state_script: str, path: str) -> dict[str, Any]:
    """Return the check: up while the recorded view equals the live state."""
    return exec_check(check_script(live_state_script, path))


def view_layer(summary: str, name: str, live_state_script: str, path: str) -> dict[str, Any]:
    """Return a layer holding only the view check (no level: it says nothing of health)."""
    return {"summary": summary, "checks": {name: view_check(live_state_script, path)}}
