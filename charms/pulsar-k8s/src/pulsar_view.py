"""The broker's "view" check: a Pebble check that fails while the charm's view is stale.

Juju delivers ``pebble-check-failed`` when a check goes down and ``pebble-check-recovered`` when
it comes back, and nothing for a check that never fails, so a plain readiness check can miss a
broker that becomes ready between two runs. This check compares the broker's live readiness
(``GET /admin/v2/brokers/ready`` with the broker's token: ``ready`` or ``down``) with what the
charm last recorded in ``VIEW_PATH``; it fails as soon as they differ, so the charm is woken by a
real event (to report active, hand on the restart lock, serve client relations). A frozen broker
reads as ``down`` within the check's timeout, so a fault that clears makes a difference again.
"""

from __future__ import annotations

import shlex
from typing import Any

from pulsar_render import BROKER_TOKEN_PATH, WEB_SERVICE_PORT

VIEW_CHECK = "broker-view"
# Per-pod and ephemeral (not storage): a new pod starts with no view, hence one event.
VIEW_PATH = "/pulsar/logs/charm-view/broker-state"
READY, DOWN = "ready", "down"
_READ_TIMEOUT_S = "0.7"
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


def broker_state(ready: bool) -> str:
    return READY if ready else DOWN


def state_script(address: str, port: int = WEB_SERVICE_PORT) -> str:
    """Bash that prints the broker's readiness (``ready``/``down``); no curl in the image."""
    return (
        f"status=$( (exec 3<>/dev/tcp/{address}/{port} && "
        'printf "GET /admin/v2/brokers/ready HTTP/1.0\\r\\nHost: %s\\r\\n'
        'Authorization: Bearer %s\\r\\n\\r\\n" '
        f'"{address}" "$(cat {BROKER_TOKEN_PATH} 2>/dev/null)" >&3 && '
        f"IFS= read -r -t {_READ_TIMEOUT_S} -u 3 line; printf '%s' \"$line\") 2>/dev/null); "
        f'case "$status" in *" 200 "*) printf {READY};; *) printf {DOWN};; esac'
    )


def view_layer(address: str) -> dict[str, Any]:
    """Return the layer holding only the view check (no level: it says nothing of health)."""
    script = check_script(state_script(address))
    check = {
        "override": "replace",
        "period": "2s",
        "timeout": "1s",
        # One failure is a change of state: that is the event the charm waits for.
        "threshold": 1,
        "exec": {
            "command": shlex.join(["/bin/bash", "-c", script]),
            "user-id": 10000,
            "group": "root",
        },
    }
    return {"summary": "pulsar-k8s view check", "checks": {VIEW_CHECK: check}}
