"""The bundle's shape on the rig: the three charms bring up a working Pulsar by themselves."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import rig_pods, workload
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER
from tests.cluster.rig_juju import Model


class _Capture(logging.Handler):
    """Keeps every record, at every level, from every logger (libraries' included)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module", autouse=True)
def every_log_record() -> Iterator[_Capture]:
    """Capture at DEBUG from before the bring-up (module autouse runs before ``bundle``)."""
    capture = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield capture
    root.removeHandler(capture)
    root.setLevel(previous)


def _credentials(model: Model) -> set[str]:
    """Every password, token and key the model's secrets ever held."""
    found: set[str] = set()
    for secret in model.secrets.values():
        for revision in secret.revisions:
            for key, value in revision.items():
                if any(word in key for word in ("password", "token", "key")) and value:
                    found.add(str(value))
    return found


def test_no_credential_in_any_log_record(bundle: Model, every_log_record: _Capture):
    credentials = _credentials(bundle)
    # the bring-up created the ZooKeeper, client and token secrets
    assert len(credentials) >= 5, sorted(s.label or s.id for s in bundle.secrets.values())
    texts = [
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in every_log_record.records
    ]
    texts += [line for event in bundle.events() for line in event.juju_log]
    assert len(texts) > 1000, "the capture saw the bring-up"
    # report where, never the credential itself
    leaks = [
        f"record {n}: {text.split(':', 1)[0][:40]}"
        for n, text in enumerate(texts)
        if any(c in text for c in credentials)
    ]
    assert leaks == []


def test_every_unit_active(bundle: Model):
    assert bundle.all_active(), bundle.status_table()
    assert [len(bundle.units(a)) for a in (ZOOKEEPER, BOOKKEEPER, BROKER)] == [3, 3, 1]


def test_nothing_listens_on_the_wildcard_address(bundle: Model):
    assert rig_pods.wildcard_listeners([u.pod for u in bundle.units()]) == []


def test_one_off_initialisation_ran_once(bundle: Model):
    inits = [c for c in bundle.execs(contains="initnewcluster") if c.exit_code == 0]
    assert len(inits) == 1, [str(c) for c in bundle.execs(contains="initnewcluster")]
    assert inits[0].unit == bundle.app(BOOKKEEPER).leader.name  # type: ignore[union-attr]
    metadata = [
        c for c in bundle.execs(contains="initialize-cluster-metadata") if c.exit_code == 0
    ]
    assert len(metadata) >= 1


def test_produce_and_consume(bundle: Model):
    client = workload.client(timeout=60)
    try:
        topic = f"persistent://public/default/rig-{uuid.uuid4().hex[:8]}"
        consumer = client.subscribe(topic, "rig")
        producer = client.create_producer(topic)
        producer.send(b"hello from the rig")
        message = consumer.receive(timeout_millis=60_000)
        assert message.data() == b"hello from the rig"
        consumer.acknowledge(message)
    finally:
        client.close()
