"""The ZooKeeper server's "view" check: a Pebble check that fails while the charm's view is stale.

Juju delivers ``pebble-check-failed`` when a check goes down and ``pebble-check-recovered`` when
it comes back, and nothing for a check that never fails, so a plain readiness check can miss a
server that answers between two runs. This check compares the server's live state (``down``,
``up``: its AdminServer answers, ``serving``: part of a quorum) with the state the charm last
recorded in ``VIEW_PATH``; it fails as soon as they differ, so the charm is woken by a real
event, records what it sees and publishes it (``started``/``users`` on the peer relation, which
wakes the leader). A frozen server reads as ``down`` within the check's timeout (each read has a
shorter timeout of its own), so a fault that clears always makes a difference again.
"""

from __future__ import annotations

import json
from typing import Any

from charms.pulsar_k8s.v0 import view_check
from charms.pulsar_k8s.v0.refresh import ready_gate
from charms.pulsar_k8s.v0.view_check import record_content, recorded_state
from zookeeper_plain_port import PLAIN_CLIENTS_CHECK, connections_script
from zookeeper_render import ADMIN_PORT, SERVICE

VIEW_CHECK = "zookeeper-view"
VIEW_LAYER_LABEL = "zookeeper-view"
VIEW_PATH = f"{view_check.VIEW_DIR}/zookeeper-state"
# Readiness (what Kubernetes' probe asks, so a refresh waits for it): the server is in a quorum.
SERVING_CHECK = "zookeeper-serving"
DOWN, UP, SERVING = "down", "up", "serving"
_READ_TIMEOUT_S = "0.4"


def server_state(zabstate_answer: str) -> str:
    """Classify a server from its AdminServer's ``zabstate`` answer: down, up or serving.

    The AdminServer (9990, plain HTTP, no credentials, no session) answers whether the client
    ports are open or not (2181 may be closed). No answer: down; ``"zabstate" : "broadcast"``
    (a leader or follower serving clients): serving; any other answer (electing, syncing, or an
    empty state while out of a quorum): up. Unlike ``leader`` or ``srvr``, ``zabstate`` needs
    no running ZooKeeperServer, so a server out of a quorum does not log a warning per probe.
    """
    if not zabstate_answer:
        return DOWN
    return SERVING if zab_state(zabstate_answer) == "broadcast" else UP


def zab_state(zabstate_answer: str) -> str | None:
    """Return the ``zabstate`` of an answer ("" out of a quorum; None: not an answer)."""
    try:
        data = json.loads(zabstate_answer)
    except ValueError:
        return None
    state = data.get("zabstate") if isinstance(data, dict) else None
    return state if isinstance(state, str) else None


def state_script(address: str, port: int = ADMIN_PORT) -> str:
    """Bash that prints :func:`server_state` of the live server (HTTP over /dev/tcp, no curl)."""
    return (
        f"zab=$( (exec 3<>/dev/tcp/{address}/{port} && "
        'printf "GET /commands/zabstate HTTP/1.0\\r\\n\\r\\n" >&3 && '
        f"while IFS= read -r -t {_READ_TIMEOUT_S} -u 3 line || [[ -n $line ]]; "
        'do printf "%s\\n" "$line"; done) 2>/dev/null); '
        f'state={DOWN}; case "$zab" in *zabstate*broadcast*) state={SERVING};; '
        f"*HTTP/*) state={UP};; esac; "
        'printf "%s" "$state"'
    )


def plain_clients_check(address: str, watching: bool) -> dict[str, Any]:
    """Return the check that wakes the charm when the last plain-text client leaves 2181.

    It fails while the server has a plain-text client connection, so its recovery is a real
    event; while nothing waits for that (``watching`` false) it always passes.
    """
    return view_check.exec_check(connections_script(address) if watching else "exit 0")


def view_layer(address: str, watch_plain_clients: bool = False) -> dict[str, Any]:
    """Return the layer of the server's checks that wake the charm (restarts nothing).

    The view check, its readiness gate, and the plain-text clients check.
    """
    layer = view_check.view_layer(
        "ZooKeeper view check", VIEW_CHECK, state_script(address), VIEW_PATH
    )
    layer["checks"][SERVING_CHECK] = ready_gate(VIEW_PATH, SERVING)
    layer["checks"][PLAIN_CLIENTS_CHECK] = plain_clients_check(address, watch_plain_clients)
    return layer


def watched_layer(layer: dict[str, Any], address: str) -> dict[str, Any]:
    """Return the server's layer whose service starts with a watcher.

    The watcher wakes the charm once the server answers and once it is in a quorum, not on the
    view check's next run.
    """
    return view_check.with_watcher(
        layer,
        SERVICE,
        state_script(address),
        SERVING,
        view_check.notice_key("pulsar-zookeeper-k8s"),
    )


__all__ = [
    "DOWN",
    "SERVING",
    "UP",
    "VIEW_CHECK",
    "VIEW_PATH",
    "record_content",
    "recorded_state",
    "watched_layer",
]
