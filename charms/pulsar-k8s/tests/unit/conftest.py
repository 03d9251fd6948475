"""Shared fixtures of the pulsar-k8s unit tests: no real HTTP, no real sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulsar_admin
import pytest
from ops import testing
from pulsar_charm import PulsarBrokerCharm
from pulsar_workload import PulsarWorkload

CHARM_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeBroker:
    """Stands in for the broker's admin API: ``ready`` is what /brokers/ready answers."""

    ready: bool = True
    polls: int = 0
    worker_ready: bool = True  # the functions worker has a leader
    # how each readiness poll reached the broker (pulsar_probes.WebAccess)
    webs: list[Any] = field(default_factory=list)
    # the cluster record's TLS URLs the leader converged (pulsar_cluster_record), and its answer
    cluster_urls: list[dict[str, str]] = field(default_factory=list)
    cluster_status: int = 204


@pytest.fixture(autouse=True)
def fake_broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    fake = FakeBroker()

    def broker_ready(
        _address: str, timeout: float = 0, token: str | None = None, web: Any = None
    ) -> bool:
        fake.polls += 1
        fake.webs.append(web)
        return fake.ready

    monkeypatch.setattr(pulsar_admin, "broker_ready", broker_ready)
    monkeypatch.setattr(
        pulsar_admin, "functions_worker_ready", lambda *_a, **_k: fake.worker_ready
    )

    def converge_cluster_record(_admin: Any, _cluster: str, urls: dict[str, str]) -> Any:
        fake.cluster_urls.append(urls)
        return pulsar_admin.AdminResult(fake.cluster_status)

    monkeypatch.setattr("pulsar_charm.converge_cluster_record", converge_cluster_record)
    return fake


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Sleeps (drain period, readiness polls) are recorded, not waited."""
    slept: list[float] = []
    monkeypatch.setattr("pulsar_workload.time.sleep", slept.append)
    monkeypatch.setattr("pulsar_admin.time.sleep", slept.append)
    return slept


@dataclass
class Calls:
    """The workload's mutating calls, in order, so tests can assert what was (not) touched."""

    log: list[tuple[str, Any]] = field(default_factory=list)

    def names(self) -> list[str]:
        return [name for name, _ in self.log]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorded = Calls()
    for name in (
        "push",
        "add_broker_layer",
        "start_broker",
        "stop_draining",
        "run",
        "create_status_file",
    ):
        original = getattr(PulsarWorkload, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            recorded.log.append((_name, args))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(PulsarWorkload, name, spy)
    return recorded


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(PulsarBrokerCharm, charm_root=CHARM_ROOT)
