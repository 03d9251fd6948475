"""Shared fixtures of the pulsar-proxy-k8s unit tests: no real HTTP, no real sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    webs: list[Any] = field(default_factory=list)  # how each probe reached it (ProxyWeb)


@pytest.fixture(autouse=True)
def fake_http(monkeypatch: pytest.MonkeyPatch) -> FakeProxyHttp:
    fake = FakeProxyHttp()

    def answers(_self, web: Any = None) -> bool:
        fake.polls += 1
        fake.webs.append(web)
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


@dataclass
class Calls:
    """The workload calls a reconcile made (the spies of ``calls``)."""

    log: list[tuple[str, Any]] = field(default_factory=list)

    def names(self) -> list[str]:
        return [name for name, _ in self.log]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorded = Calls()
    for name in ("push", "add_layer", "start_proxy", "restart_proxy", "stop_proxy"):
        original = getattr(ProxyWorkload, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            recorded.log.append((_name, args))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ProxyWorkload, name, spy)
    return recorded
