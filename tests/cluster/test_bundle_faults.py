"""Faults on the running bundle: killed JVMs and lost pods; the charms and Pebble recover."""

from __future__ import annotations

import uuid

import pytest

from tests.cluster import workload
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER
from tests.cluster.rig_juju import Model

pytestmark = pytest.mark.slow


def round_trip(payload: bytes) -> None:
    client = workload.client(timeout=90)
    try:
        topic = f"persistent://public/default/rig-{uuid.uuid4().hex[:8]}"
        consumer = client.subscribe(topic, "rig")
        client.create_producer(topic).send(payload)
        message = consumer.receive(timeout_millis=90_000)
        assert message.data() == payload
    finally:
        client.close()


def test_killed_zookeeper_is_restarted_by_pebble(bundle: Model):
    pod = bundle.pod(f"{ZOOKEEPER}/1")
    pid = bundle.kill_service(f"{ZOOKEEPER}/1", "zookeeper")
    bundle.settle(until=lambda: pod.service_pid("zookeeper") not in (None, pid), timeout=120)
    bundle.run_for(10)
    bundle.settle(timeout=300)
    round_trip(b"after a killed zookeeper")


def test_lost_bookie_pod_comes_back_with_its_storage(bundle: Model):
    inits_before = len(bundle.execs(contains="initnewcluster"))
    unit = f"{BOOKKEEPER}/2"
    ledgers = bundle.pod(unit).storage_path("ledgers")
    assert any(ledgers.rglob("*")), "the bookie wrote nothing to its ledgers storage"
    bundle.lose_pod(unit)
    bundle.run_for(10)
    bundle.settle(timeout=300)
    # The cluster was initialised once and for all: a new pod must not re-run initnewcluster.
    assert [
        c for c in bundle.execs(contains="initnewcluster")[inits_before:] if c.exit_code == 0
    ] == []
    round_trip(b"after a lost bookie pod")


def test_lost_broker_pod(bundle: Model):
    bundle.lose_pod(f"{BROKER}/0")
    bundle.run_for(10)
    bundle.settle(timeout=300)
    round_trip(b"after a lost broker pod")
