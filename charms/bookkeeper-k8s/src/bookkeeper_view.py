"""The bookie's "view" check: a Pebble check that fails while the charm's view is stale.

Juju delivers ``pebble-check-failed`` when a check goes down and ``pebble-check-recovered`` when
it comes back, and nothing for a check that never fails. A plain readiness check can therefore
miss a bookie that comes up (or goes read-only and back) between two runs. This check compares
the bookie's live state with the state the charm last recorded in ``VIEW_PATH``: it fails as soon
as they differ, whatever the timing, so the charm is woken by a real event, records what it sees
and publishes it. A frozen or dead bookie reads as ``down`` within the check's timeout (the reads
have their own shorter timeout), so a fault that clears always produces a difference again.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from bookkeeper_render import HTTP_PORT
from charms.pulsar_k8s.v0.workload import WORKLOAD_UID

VIEW_CHECK = "bookie-view"
VIEW_LAYER_LABEL = "bookie-view"
# Per-pod and ephemeral (not storage): a new pod starts with no view, hence one event.
VIEW_PATH = "/pulsar/logs/charm-view/bookie-state"
WRITABLE, READ_ONLY, DOWN = "writable", "read-only", "down"
# Below the check's 1 s timeout, so a frozen bookie yields "down" rather than a timed-out check.
_READ_TIMEOUT_S = "0.5"
# A view recorded this recently passes: after every record the check passes once (so a later
# difference is a new failure, hence a new event) even if the state moved again meanwhile. Longer
# than two check periods, so at least one run falls inside it.
GRACE_S = 5


def record_content(state: str, now: float) -> str:
    """Return what the charm writes in VIEW_PATH: the state it saw and when (epoch s)."""
    return f"{state} {int(now)}"


def recorded_state(content: str | None) -> str | None:
    """Return the state a VIEW_PATH content records (None: nothing recorded)."""
    return content.split()[0] if content and content.split() else None


def check_script(live_state_script: str, path: str = VIEW_PATH) -> str:
    """Bash: pass while the live state is the recorded one, or the record is fresh."""
    return (
        f"read -r seen stamp < {path} 2>/dev/null; "
        f'live="$({live_state_script})"; '
        '[ "$live" = "$seen" ] || '
        f"[ $(( $(printf '%(%s)T' -1) - ${{stamp:-0}} )) -lt {GRACE_S} ]"
    )


def bookie_state(state_json: str | None) -> str:
    """Classify GET /api/v1/bookie/state's answer: writable, read-only or down."""
    try:
        state = json.loads(state_json or "")
    except ValueError:
        return DOWN
    if not isinstance(state, dict) or state.get("running") is not True:
        return DOWN
    if state.get("shuttingDown") is True:
        return DOWN
    return READ_ONLY if state.get("readOnly") is True else WRITABLE


def state_script(address: str, port: int = HTTP_PORT) -> str:
    """Bash that prints :func:`bookie_state` of the live bookie (no curl in the image)."""
    return (
        f"body=$( (exec 3<>/dev/tcp/{address}/{port} && "
        f'printf "GET /api/v1/bookie/state HTTP/1.0\\r\\nHost: {address}\\r\\n\\r\\n" >&3 && '
        f"while IFS= read -r -t {_READ_TIMEOUT_S} -u 3 line || [[ -n $line ]]; "
        "do printf '%s' \"$line\"; done) "
        "2>/dev/null); "
        f"state={DOWN}; "
        'if [[ $body =~ \\"running\\"[[:space:]]*:[[:space:]]*true ]] && '
        '! [[ $body =~ \\"shuttingDown\\"[[:space:]]*:[[:space:]]*true ]]; then '
        f"state={WRITABLE}; "
        'if [[ $body =~ \\"readOnly\\"[[:space:]]*:[[:space:]]*true ]]; then '
        f"state={READ_ONLY}; fi; fi; "
        'printf "%s" "$state"'
    )


def view_check(address: str) -> dict[str, Any]:
    """Return the check: up while the recorded view equals the live state (fields spelled out)."""
    script = check_script(state_script(address))
    return {
        "override": "replace",
        "period": "2s",
        "timeout": "1s",
        # One failure is a change of state: that is the event the charm waits for.
        "threshold": 1,
        "exec": {
            "command": shlex.join(["/bin/bash", "-c", script]),
            "user-id": WORKLOAD_UID,
            "group": "root",
        },
    }


def view_layer(address: str) -> dict[str, Any]:
    """Return the layer holding only the view check (no level: it says nothing of health)."""
    return {"summary": "bookkeeper-k8s view check", "checks": {VIEW_CHECK: view_check(address)}}
