"""The ZooKeeper server's "view" check: a Pebble check that fails while the charm's view is stale.

Juju delivers ``pebble-check-failed`` when a check goes down and ``pebble-check-recovered`` when
it comes back, and nothing for a check that never fails, so a plain readiness check can miss a
server that answers between two runs. This check compares the server's live state (``down``,
``up``: answers ``ruok``, ``serving``: part of a quorum) with the state the charm last recorded in
``VIEW_PATH``; it fails as soon as they differ, so the charm is woken by a real event, records
what it sees and publishes it (``started``/``users`` on the peer relation, which wakes the
leader). A frozen server reads as ``down`` within the check's timeout (each read has a shorter
timeout of its own), so a fault that clears always makes a difference again.
"""

from __future__ import annotations

import shlex
from typing import Any

from zookeeper_render import CLIENT_PORT

VIEW_CHECK = "zookeeper-view"
VIEW_LAYER_LABEL = "zookeeper-view"
# Per-pod and ephemeral (not storage): a new pod starts with no view, hence one event.
VIEW_PATH = "/pulsar/logs/charm-view/zookeeper-state"
DOWN, UP, SERVING = "down", "up", "serving"
_READ_TIMEOUT_S = "0.4"
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


def server_state(ruok_answer: str, srvr_answer: str) -> str:
    """Classify a server from its ``ruok`` and ``srvr`` answers: down, up or serving."""
    if ruok_answer.strip() != "imok":
        return DOWN
    return SERVING if "Mode:" in srvr_answer else UP


def state_script(address: str, port: int = CLIENT_PORT) -> str:
    """Bash that prints :func:`server_state` of the live server (four-letter words, no nc)."""

    def ask(word: str) -> str:
        return (
            f"$( (exec 3<>/dev/tcp/{address}/{port} && printf {word} >&3 && "
            f"while IFS= read -r -t {_READ_TIMEOUT_S} -u 3 line || [[ -n $line ]]; "
            "do printf '%s\\n' \"$line\"; done) 2>/dev/null)"
        )

    return (
        f'ruok="{ask("ruok")}"; state={DOWN}; '
        f'if [ "$ruok" = imok ]; then state={UP}; srvr="{ask("srvr")}"; '
        f'case "$srvr" in *Mode:*) state={SERVING};; esac; fi; '
        'printf "%s" "$state"'
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
    return {"summary": "ZooKeeper view check", "checks": {VIEW_CHECK: check}}
