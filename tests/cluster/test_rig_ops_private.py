"""The rig's uses of ``ops`` internals (``rig_ops_private``), checked without root or a JVM.

When an ``ops`` upgrade removes or changes what a hook relies on, the test of that hook fails
and its message names the hook: fix ``tests/cluster/rig_ops_private.py`` (and only it).
Part of the cluster run (``tox -e cluster``; alone: ``tox -e cluster -- tests/cluster/
test_rig_ops_private.py``), which uses the ``ops`` version the rig runs.
"""

from __future__ import annotations

import http.server
import json
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import ops
import pytest
from ops import testing

from tests.cluster import rig_ops_private

BROKEN = "rig_ops_private.{hook} no longer works with ops {version}: {why}"


def broken(hook: str, why: str) -> str:
    return BROKEN.format(hook=hook, version=ops.__version__, why=why)


class ProbeCharm(ops.CharmBase):
    """Does what a test asks in any event, and keeps what it saw."""

    seen: ClassVar[dict[str, Any]] = {}
    action: ClassVar[Any] = None

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.update_status, self._run)

    def _run(self, event: ops.EventBase) -> None:
        type(self).action(self)


META = {"name": "probe", "containers": {"workload": {}}}


def run(action: Any, state: testing.State) -> testing.State:
    ProbeCharm.seen = {}
    ProbeCharm.action = action
    ctx = testing.Context(ProbeCharm, meta=META)
    return ctx.run(ctx.on.update_status(), state)


def test_real_pebble_hands_the_charm_the_given_client():
    assert hasattr(rig_ops_private.MOCK_BACKEND, "get_pebble"), broken(
        "real_pebble", "scenario.mocking._MockModelBackend.get_pebble is gone"
    )
    client = ops.pebble.Client(socket_path="/nonexistent/pebble.socket")  # never connected

    def grab(charm: ops.CharmBase) -> None:
        ProbeCharm.seen["pebble"] = charm.unit.get_container("workload").pebble

    with rig_ops_private.real_pebble(client):
        run(grab, testing.State(containers=[testing.Container("workload", can_connect=True)]))
    assert ProbeCharm.seen["pebble"] is client, broken(
        "real_pebble", "the charm's container no longer gets its client from get_pebble"
    )


def test_secret_revisions_reach_the_charm_and_come_back():
    hook = "secret_with_revisions/secret_revisions"
    consumer_view = rig_ops_private.secret_with_revisions(
        testing.Secret({"val": "one"}, latest_content={"val": "two"}, id="secret:probe-1"),
        tracked=1,
        latest=2,
    )

    def read(charm: ops.CharmBase) -> None:
        secret = charm.model.get_secret(id="secret:probe-1")
        ProbeCharm.seen["peek"] = secret.peek_content()
        ProbeCharm.seen["tracked"] = secret.get_content()

    out = run(read, testing.State(secrets=[consumer_view]))
    assert ProbeCharm.seen == {"peek": {"val": "two"}, "tracked": {"val": "one"}}
    assert rig_ops_private.secret_revisions(out.get_secret(id="secret:probe-1")) == (1, 2), broken(
        hook, "a consumer that did not refresh no longer keeps its tracked revision"
    )

    def refresh(charm: ops.CharmBase) -> None:
        charm.model.get_secret(id="secret:probe-1").get_content(refresh=True)

    out = run(refresh, testing.State(secrets=[consumer_view]))
    assert rig_ops_private.secret_revisions(out.get_secret(id="secret:probe-1")) == (2, 2), broken(
        hook, "a refresh no longer moves the tracked revision to the latest"
    )

    owned = rig_ops_private.secret_with_revisions(
        testing.Secret({"val": "two"}, id="secret:probe-2", owner="app"), tracked=2, latest=2
    )

    def rotate(charm: ops.CharmBase) -> None:
        charm.model.get_secret(id="secret:probe-2").set_content({"val": "three"})

    out = run(rotate, testing.State(leader=True, secrets=[owned]))
    secret = out.get_secret(id="secret:probe-2")
    assert secret.latest_content == {"val": "three"}
    assert rig_ops_private.secret_revisions(secret)[1] == 3, broken(
        hook, "set_content no longer makes the next revision number"
    )


class _Health(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = json.dumps(
            {"type": "sync", "status-code": 200, "status": "OK", "result": {"healthy": True}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> Any:
        request, _ = super().get_request()
        return request, ("pebble", 0)  # BaseHTTPRequestHandler wants a (host, port)


@pytest.fixture
def fake_pebble_socket() -> Iterator[str]:
    path = str(Path(tempfile.mkdtemp(prefix="rig-ops-")) / "pebble.socket")
    server = _UnixHTTPServer(path, _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_pebble_get_returns_the_result_of_a_get(fake_pebble_socket: str):
    _Health.requests = []
    client = ops.pebble.Client(socket_path=fake_pebble_socket)
    assert hasattr(client, "_request"), broken("pebble_get", "ops.pebble.Client._request is gone")
    result = rig_ops_private.pebble_get(client, "/v1/health", {"level": "ready"})
    assert result == {"healthy": True}, broken("pebble_get", f"got {result!r}")
    assert _Health.requests == ["/v1/health?level=ready"]
