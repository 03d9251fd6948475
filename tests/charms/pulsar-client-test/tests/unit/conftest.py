"""Fixtures of the pulsar-client-test unit tests: pulsar-client replaced by a fake."""

from __future__ import annotations

from pathlib import Path

import pulsar_client_test_io
import pytest
from ops import testing
from pulsar_client_test_charm import PulsarClientTestCharm
from pulsar_client_test_fakes import FakePulsar

CHARM_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fake_pulsar(monkeypatch: pytest.MonkeyPatch) -> FakePulsar:
    fake = FakePulsar()
    monkeypatch.setattr(pulsar_client_test_io, "make_client", fake.client)
    return fake


@pytest.fixture
def ctx() -> testing.Context:
    return testing.Context(PulsarClientTestCharm, charm_root=CHARM_ROOT)
