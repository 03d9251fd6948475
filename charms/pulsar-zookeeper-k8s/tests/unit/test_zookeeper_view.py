"""The view check's bash agrees with the charm's Python reading of the AdminServer's answers."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from zookeeper_plain_port import connections_script
from zookeeper_view import DOWN, SERVING, UP, server_state, state_script

# ZooKeeper 3.9.4's AdminServer, as it answers (pretty-printed JSON)
SERVING_ZAB = """{
  "myid" : 1,
  "is_leader" : false,
  "quorum_address" : {"all" : ["/127.0.5.1:2888"]},
  "client_address" : "/127.0.0.1:21811",
  "voting" : true,
  "last_zxid" : "0x100000004",
  "zabstate" : "broadcast",
  "command" : "zabstate",
  "error" : null
}"""
SYNCING_ZAB = SERVING_ZAB.replace('"broadcast"', '"synchronization"')
OUT_OF_QUORUM_ZAB = """{
  "voting" : false,
  "zabstate" : "",
  "command" : "zabstate",
  "error" : null
}"""
NO_CONNECTIONS = (
    '{\n  "connections" : [ ],\n  "secure_connections" : [ ],\n'
    '  "command" : "connections",\n  "error" : null\n}'
)
ONE_CONNECTION = (
    '{\n  "connections" : [ {\n    "remote_socket_address" : "10.1.0.9:50000"\n  } ],\n'
    '  "secure_connections" : [ ],\n  "command" : "connections",\n  "error" : null\n}'
)


@contextmanager
def admin_server(answers: dict[str, str]) -> Iterator[int]:
    """A stand-in AdminServer on 127.0.0.1 answering ``/commands/<name>`` from ``answers``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = answers.get(self.path.removeprefix("/commands/"), "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
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


@pytest.mark.parametrize(
    ("answer", "expected"),
    [(SERVING_ZAB, SERVING), (SYNCING_ZAB, UP), (OUT_OF_QUORUM_ZAB, UP), ("", DOWN)],
)
def test_bash_and_python_classify_alike(answer: str, expected: str) -> None:
    if answer:
        with admin_server({"zabstate": answer}) as port:
            printed, _ = run_script(port)
    else:  # nothing listens
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        printed, _ = run_script(port)
    assert printed == server_state(answer) == expected


@pytest.mark.parametrize(("answer", "passes"), [(NO_CONNECTIONS, True), (ONE_CONNECTION, False)])
def test_the_plain_clients_check_passes_only_without_plain_connections(
    answer: str, passes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zookeeper_plain_port

    with admin_server({"connections": answer}) as port:
        monkeypatch.setattr(zookeeper_plain_port, "ADMIN_PORT", port)
        script = connections_script("127.0.0.1")
        out = subprocess.run(["/bin/bash", "-c", script], timeout=10, check=False)
    assert (out.returncode == 0) is passes
    expected = 0 if passes else 1
    assert zookeeper_plain_port.plain_connection_count(answer) == expected


def test_frozen_server_is_down_within_the_check_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        printed, took = run_script(sock.getsockname()[1])
    assert printed == DOWN
    assert took < 1.0
