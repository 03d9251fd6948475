"""The super-user kazoo session authenticates the way the server enforces (SASL first)."""

from __future__ import annotations

from typing import Any

import pytest
import zookeeper_ensemble
from kazoo.exceptions import SASLException


class _FakeKazoo:
    created: list[dict[str, Any]] = []
    fail_start: Exception | None = None

    def __init__(self, **kwargs: Any):
        type(self).created.append(kwargs)

    def start(self, timeout: float) -> None:
        if self.fail_start is not None:
            raise self.fail_start

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def fake_kazoo(monkeypatch: pytest.MonkeyPatch) -> type[_FakeKazoo]:
    _FakeKazoo.created = []
    _FakeKazoo.fail_start = None
    monkeypatch.setattr(zookeeper_ensemble, "KazooClient", _FakeKazoo)
    return _FakeKazoo


def test_session_logs_in_with_sasl_digest_md5_as_super_and_adds_the_super_digest(fake_kazoo):
    with zookeeper_ensemble.ZooKeeperEnsemble(["a", "b"], "s3cret"):
        pass
    (kwargs,) = fake_kazoo.created
    assert kwargs["hosts"] == "a:2181,b:2181"
    assert kwargs["sasl_options"] == {
        "mechanism": "DIGEST-MD5",
        "username": "super",
        "password": "s3cret",
    }
    assert kwargs["auth_data"] == [("digest", "super:s3cret")]


def test_sasl_options_are_a_fresh_dict_each_time():
    # kazoo adds a "service" key to the dict it is given
    first = zookeeper_ensemble.sasl_options("u", "p")
    first["service"] = "zookeeper"
    assert "service" not in zookeeper_ensemble.sasl_options("u", "p")


def test_sasl_failure_is_an_ensemble_error(fake_kazoo):
    fake_kazoo.fail_start = SASLException("Missing SASL support")
    ensemble = zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw")
    with pytest.raises(zookeeper_ensemble.EnsembleError, match="cannot connect"):
        ensemble.__enter__()
