"""Shared fixtures of the pulsar-proxy-k8s unit tests: no real HTTP, no real sleeping."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from ops import testing
from proxy_charm import PulsarProxyCharm
from proxy_workload import ProxyWorkload

CHARM_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeProxyHttp:
    """Stands in for the proxy's /status.html: ``answers`` is what it says."""

    answers: bool = True
    polls: int = 0


@pytest.fixture(autouse=True)
def fake_http(monkeypatch: pytest.MonkeyPatch) -> FakeProxyHttp:
    fake = FakeProxyHttp()

    def answers(_self) -> bool:
        fake.polls += 1
        return fake.answers

    monkeypatch.setattr(ProxyWorkload, "answers", answers)
    return fake


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(seconds: float) -> None:
        raise AssertionError(f"a hook slept {seconds}s")

    monkeypatch.setattr("time.sleep", forbidden)


@pytest.fixture
def ctx(no_sleep: None) -> testing.Context:
    return testing.Context(PulsarProxyCharm, charm_root=CHARM_ROOT)
