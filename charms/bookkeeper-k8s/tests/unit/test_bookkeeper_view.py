"""The view check's bash agrees with the charm's Python reading of the same answer."""

from __future__ import annotations

import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bookkeeper_view import DOWN, bookie_state, check_script, record_content, state_script
from conftest import BOOKIE_STATES

ANSWERS = [*BOOKIE_STATES.values(), '{"running":true,"readOnly":false}', "not json", ""]


@contextmanager
def serving(body: str) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def run_script(port: int) -> tuple[str, float]:
    started = time.monotonic()
    out = subprocess.run(
        ["/bin/bash", "-c", state_script("127.0.0.1", port)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return out.stdout, time.monotonic() - started


@pytest.mark.parametrize("body", ANSWERS)
def test_bash_and_python_classify_alike(body: str) -> None:
    with serving(body) as port:
        printed, _ = run_script(port)
    assert printed == bookie_state(body)


def test_refused_connection_is_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        printed, _ = run_script(port)
    assert printed == DOWN


def test_frozen_bookie_is_down_within_the_check_timeout() -> None:
    """A JVM that accepts but never answers (SIGSTOP) reads as down in under the 1 s timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        printed, took = run_script(sock.getsockname()[1])
    assert printed == DOWN
    assert took < 1.0


@pytest.mark.parametrize(
    ("recorded", "age_s", "passes"),
    [
        ("writable", 60, True),  # the charm's view is current
        ("down", 60, False),  # stale: the check fails, Juju raises pebble-check-failed
        ("down", 0, True),  # just recorded: passes once, so the next difference is an event
        (None, 0, False),  # nothing recorded (new pod)
    ],
)
def test_check_passes_on_a_current_or_fresh_view(tmp_path, recorded, age_s, passes) -> None:
    view = tmp_path / "view"
    if recorded is not None:
        view.write_text(record_content(recorded, time.time() - age_s))
    script = check_script("printf writable", str(view))
    done = subprocess.run(["/bin/bash", "-c", script], check=False, timeout=10)
    assert (done.returncode == 0) is passes


# --- the alive check: a bookie stuck in its own shutdown is restarted ------------------------

# What a bookie hung in its shutdown answered on the rig (after a failed registration).
STUCK_IN_SHUTDOWN = (
    '{"running":false,"readOnly":true,"shuttingDown":true,"availableForHighPriorityWrites":true}'
)


def alive(port: int) -> bool:
    from bookkeeper_render import alive_script

    return (
        subprocess.run(
            ["/bin/bash", "-c", alive_script("127.0.0.1", port)], timeout=10, check=False
        ).returncode
        == 0
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (BOOKIE_STATES["writable"], True),
        (BOOKIE_STATES["read-only"], True),
        # the HTTP API answers before the bookie runs only briefly; not a hang
        (BOOKIE_STATES["starting"], True),
        (STUCK_IN_SHUTDOWN, False),
        ('{\n  "running" : false,\n  "shuttingDown" : true\n}', False),
        ("not json", False),
        ("", False),
    ],
)
def test_alive_check_fails_on_silence_or_a_shutdown(body: str, expected: bool) -> None:
    with serving(body) as port:
        assert alive(port) is expected


def test_alive_check_fails_on_a_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert not alive(sock.getsockname()[1])


def test_the_bookie_layer_restarts_a_stuck_bookie_and_lets_it_stop_cleanly() -> None:
    from bookkeeper_render import alive_script, pebble_layer

    layer = pebble_layer("10.0.0.5", {})
    service = layer["services"]["bookie"]
    assert service["on-check-failure"] == {"bookie-alive": "restart"}
    assert service["kill-delay"] == "30s"
    check = layer["checks"]["bookie-alive"]
    assert (check["level"], check["threshold"], check["period"]) == ("alive", 6, "10s")
    assert check["exec"]["command"] == shlex.join(["/bin/bash", "-c", alive_script("10.0.0.5")])
