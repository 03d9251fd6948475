"""The view check's bash agrees with the charm's Python reading of the same four-letter words."""

from __future__ import annotations

import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from zookeeper_view import DOWN, SERVING, UP, server_state, state_script

SERVING_SRVR = "Zookeeper version: 3.9.3\nLatency min/avg/max: 0/0.0/0\nMode: follower\n"
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


@contextmanager
def answering(ruok: str, srvr: str) -> Iterator[int]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            word = self.request.recv(4)
            self.request.sendall((ruok if word == b"ruok" else srvr).encode())

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
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
    ("ruok", "srvr", "expected"),
    [("imok", SERVING_SRVR, SERVING), ("imok", NOT_SERVING, UP), ("", "", DOWN)],
)
def test_bash_and_python_classify_alike(ruok: str, srvr: str, expected: str) -> None:
    with answering(ruok, srvr) as port:
        printed, _ = run_script(port)
    assert printed == server_state(ruok, srvr) == expected


def test_frozen_server_is_down_within_the_check_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        printed, took = run_script(sock.getsockname()[1])
    assert printed == DOWN
    assert took < 1.0
