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

from charms.pulsar_k8s.v0 import view_check
from charms.pulsar_k8s.v0.view_check import record_content, recorded_state
from pulsar_render import BROKER_TOKEN_PATH, SERVICE_NAME, WEB_SERVICE_PORT

VIEW_CHECK = "broker-view"
VIEW_PATH = f"{view_check.VIEW_DIR}/broker-state"
SERVING_CHECK = "broker-serving"
# Written by the charm once writable bookies >= the managed-ledger ensemble (per pod).
SERVING_PATH = f"{view_check.VIEW_DIR}/broker-serving"
# The functions worker inside the broker elects a leader after the broker is ready; functions
# can be created only then, so the charm waits for that too, woken by its own view check.
FUNCTIONS_VIEW_CHECK = "functions-worker-view"
FUNCTIONS_VIEW_PATH = f"{view_check.VIEW_DIR}/functions-worker-state"
READY_PATH = "/admin/v2/brokers/ready"
WORKER_LEADER_PATH = "/admin/v2/worker/cluster/leader"
READY, DOWN = "ready", "down"
_READ_TIMEOUT_S = "0.7"


def broker_state(ready: bool) -> str:
    return READY if ready else DOWN


def state_script(address: str, port: int = WEB_SERVICE_PORT, path: str = READY_PATH) -> str:
    """Bash that prints whether ``GET path`` answers 200 (``ready``/``down``); no curl."""
    return (
        f"status=$( (exec 3<>/dev/tcp/{address}/{port} && "
        f'printf "GET {path} HTTP/1.0\\r\\nHost: %s\\r\\n'
        'Authorization: Bearer %s\\r\\n\\r\\n" '
        f'"{address}" "$(cat {BROKER_TOKEN_PATH} 2>/dev/null)" >&3 && '
        f"IFS= read -r -t {_READ_TIMEOUT_S} -u 3 line; printf '%s' \"$line\") 2>/dev/null); "
        f'case "$status" in *" 200 "*) printf {READY};; *) printf {DOWN};; esac'
    )


def view_layer(address: str) -> dict[str, Any]:
    """Return the layer of the broker's view check and its serving gate.

    The gate is a readiness check (``level: ready``, what Kubernetes' readiness probe asks) that
    passes once the charm has written ``SERVING_PATH``: the broker JVM starts while the bookies
    come up, but the pod is not ready (the Service sends it no client) before the ensemble is
    writable. In this layer, outside the restart inputs: adding it restarts nothing.
    """
    layer = view_check.view_layer(
        "pulsar-k8s view check", VIEW_CHECK, state_script(address), VIEW_PATH
    )
    # Down from its first run until the gate opens (Pebble counts a check up until then).
    layer["checks"][SERVING_CHECK] = view_check.exec_check(
        f"test -e {shlex.quote(SERVING_PATH)}", level="ready"
    )
    return layer


def watched_layer(layer: dict[str, Any], address: str) -> dict[str, Any]:
    """Return the broker's layer whose service starts with a watcher (wakes the charm at ready)."""
    return view_check.with_watcher(
        layer, SERVICE_NAME, state_script(address), READY, view_check.notice_key("pulsar-k8s")
    )


def functions_view_layer(address: str) -> dict[str, Any]:
    """Return the layer holding only the functions worker's view check."""
    script = state_script(address, path=WORKER_LEADER_PATH)
    return view_check.view_layer(
        "pulsar-k8s functions worker view check",
        FUNCTIONS_VIEW_CHECK,
        script,
        FUNCTIONS_VIEW_PATH,
    )


__all__ = [
    "DOWN",
    "FUNCTIONS_VIEW_CHECK",
    "FUNCTIONS_VIEW_PATH",
    "READY",
    "SERVING_CHECK",
    "SERVING_PATH",
    "VIEW_CHECK",
    "VIEW_PATH",
    "record_content",
    "recorded_state",
    "watched_layer",
]
