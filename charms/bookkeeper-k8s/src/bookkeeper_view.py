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
from typing import Any

from bookkeeper_render import HTTP_PORT, SERVICE, state_body_script
from charms.pulsar_k8s.v0 import view_check
from charms.pulsar_k8s.v0.refresh import ready_gate
from charms.pulsar_k8s.v0.view_check import check_script, record_content, recorded_state

VIEW_CHECK = "bookie-view"
VIEW_LAYER_LABEL = "bookie-view"
VIEW_PATH = f"{view_check.VIEW_DIR}/bookie-state"
# Readiness (what Kubernetes' probe asks, so a refresh waits for it): the bookie is writable.
WRITABLE_CHECK = "bookie-writable"
WRITABLE, READ_ONLY, DOWN = "writable", "read-only", "down"
# Below the check's 1 s timeout, so a frozen bookie yields "down" rather than a timed-out check.
_READ_TIMEOUT_S = "0.5"


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
        f"{state_body_script(address, port, _READ_TIMEOUT_S)}"
        f"state={DOWN}; "
        'if [[ $body =~ \\"running\\"[[:space:]]*:[[:space:]]*true ]] && '
        '! [[ $body =~ \\"shuttingDown\\"[[:space:]]*:[[:space:]]*true ]]; then '
        f"state={WRITABLE}; "
        'if [[ $body =~ \\"readOnly\\"[[:space:]]*:[[:space:]]*true ]]; then '
        f"state={READ_ONLY}; fi; fi; "
        'printf "%s" "$state"'
    )


def view_layer(address: str) -> dict[str, Any]:
    """Return the layer of the bookie's view check and its readiness gate (restarts nothing)."""
    layer = view_check.view_layer(
        "bookkeeper-k8s view check", VIEW_CHECK, state_script(address), VIEW_PATH
    )
    layer["checks"][WRITABLE_CHECK] = ready_gate(VIEW_PATH, WRITABLE)
    return layer


def watched_layer(layer: dict[str, Any], address: str) -> dict[str, Any]:
    """Return the bookie's layer whose service starts with a watcher.

    The watcher wakes the charm once the bookie is writable, not on the view check's next run.
    """
    return view_check.with_watcher(
        layer, SERVICE, state_script(address), WRITABLE, view_check.notice_key("bookkeeper-k8s")
    )


__all__ = [
    "DOWN",
    "READ_ONLY",
    "VIEW_CHECK",
    "VIEW_PATH",
    "WRITABLE",
    "check_script",
    "record_content",
    "recorded_state",
    "watched_layer",
]
