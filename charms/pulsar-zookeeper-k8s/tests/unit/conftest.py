"""Shared fixtures of the pulsar-zookeeper-k8s unit tests: the ops.testing context and seams."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ops
import pytest
import yaml
import zookeeper_ensemble
from charms.pulsar_k8s.v0.workload import Workload
from ops import testing
from zookeeper_charm import ZooKeeperCharm
from zookeeper_render import parse_members

CHARM_ROOT = Path(__file__).parents[2]
APP = "pulsar-zookeeper-k8s"


@pytest.fixture
def make_ctx() -> Callable[..., testing.Context]:
    raw = yaml.safe_load((CHARM_ROOT / "charmcraft.yaml").read_text())

    def make(unit_id: int = 0) -> testing.Context:
        return testing.Context(
            ZooKeeperCharm,
            meta=raw,
            app_name=APP,
            unit_id=unit_id,
            charm_root=CHARM_ROOT,
        )

    return make


@pytest.fixture
def ctx(make_ctx: Callable[..., testing.Context]) -> testing.Context:
    return make_ctx()


@dataclasses.dataclass
class EnsembleRecorder:
    """Stands in for zookeeper_ensemble.ZooKeeperEnsemble; records calls in order."""

    view: dict[int, str] = dataclasses.field(default_factory=dict)
    calls: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    unreachable: bool = False
    is_ok: bool = True
    is_serving: bool = True
    plain_connections: int = 0
    """Plain-text client connections each server's AdminServer reports."""
    tls_cas: list[str] = dataclasses.field(default_factory=list)
    """Each session's ``tls_ca`` ("" for a plain-text session), in order."""


@pytest.fixture
def ensemble(monkeypatch: pytest.MonkeyPatch) -> Iterator[EnsembleRecorder]:
    recorder = EnsembleRecorder()

    class FakeEnsemble:
        def __init__(
            self, hosts: list[str], super_password: str, *, tls_ca: str = "", **_: object
        ):
            recorder.calls.append(("connect", tuple(hosts)))
            recorder.tls_cas.append(tls_ca)

        def __enter__(self) -> FakeEnsemble:
            if recorder.unreachable:
                raise zookeeper_ensemble.EnsembleError("connection refused")
            return self

        def __exit__(self, *args: object) -> None:
            pass

        def members(self) -> dict[int, str]:
            recorder.calls.append(("members",))
            return dict(recorder.view)

        def remove_servers(self, ids: list[int]) -> dict[int, str]:
            recorder.calls.append(("remove", list(ids)))
            for sid in ids:
                recorder.view.pop(sid, None)
            return dict(recorder.view)

        def add_servers(self, lines: list[str]) -> dict[int, str]:
            recorder.calls.append(("add", list(lines)))
            recorder.view.update(parse_members("\n".join(lines)))
            return dict(recorder.view)

        def move_client_addresses(self, addresses: dict[int, str], state: str) -> bool:
            recorder.calls.append(("move-client-addresses", state))
            return True

        def grant(
            self,
            chroot: str,
            username: str,
            password: str,
            letters: str,
            *,
            exclusive=False,
            also=(),
        ) -> int:
            recorder.calls.append(("grant", chroot, username, letters, exclusive))
            if also:
                recorder.calls.append(("grant-also", chroot, tuple(user for user, _ in also)))
            return 0

        def mirror(self, chroot: str, old_user: str, new_user: str, new_password: str) -> int:
            recorder.calls.append(("mirror", chroot, old_user, new_user))
            return 0

        def revoke(self, chroot: str, username: str, *, recursive=False) -> None:
            recorder.calls.append(("revoke", chroot, username, recursive))

    monkeypatch.setattr(zookeeper_ensemble, "ZooKeeperEnsemble", FakeEnsemble)

    def admin_command(host: str, command: str, **_: object) -> str:
        """The AdminServer's JSON answers (as ZooKeeper 3.9 words them); "" : no answer."""
        if not recorder.is_ok:
            return ""
        if command == "zabstate":
            state = "broadcast" if recorder.is_serving else ""
            return json.dumps({"is_leader": False, "zabstate": state, "error": None})
        if not recorder.is_serving:
            return json.dumps(
                {
                    "command": command,
                    "error": "This ZooKeeper instance is not currently serving requests",
                }
            )
        if command == "connections":
            plain = [{"remote_socket_address": "10.1.0.9:50000"}] * recorder.plain_connections
            return json.dumps({"connections": plain, "secure_connections": [], "error": None})
        return json.dumps({"command": command, "error": None})

    monkeypatch.setattr(zookeeper_ensemble, "admin_command", admin_command)
    yield recorder


@dataclasses.dataclass
class PebbleCalls:
    """Counts of the container calls that change something."""

    pushes: list[str] = dataclasses.field(default_factory=list)
    layers: int = 0
    starts: int = 0
    restarts: int = 0


@pytest.fixture
def pebble_calls(monkeypatch: pytest.MonkeyPatch) -> PebbleCalls:
    calls = PebbleCalls()
    original_push = ops.Container.push
    original_add_layer = ops.Container.add_layer
    original_start = Workload.start
    original_restart = ops.Container.restart

    def push(self: ops.Container, path: str, *args: Any, **kwargs: Any) -> None:
        calls.pushes.append(str(path))
        original_push(self, path, *args, **kwargs)

    def add_layer(self: ops.Container, *args: Any, **kwargs: Any) -> None:
        calls.layers += 1
        original_add_layer(self, *args, **kwargs)

    def start(self: Workload, service: str, *, wait: bool = True) -> None:
        # counted where the charm asks: a first start goes to Pebble without waiting (not
        # through ops.Container.start)
        calls.starts += 1
        original_start(self, service, wait=wait)

    def restart(self: ops.Container, *services: str) -> None:
        calls.restarts += 1
        original_restart(self, *services)

    monkeypatch.setattr(ops.Container, "push", push)
    monkeypatch.setattr(ops.Container, "add_layer", add_layer)
    monkeypatch.setattr(Workload, "start", start)
    monkeypatch.setattr(ops.Container, "restart", restart)
    return calls
