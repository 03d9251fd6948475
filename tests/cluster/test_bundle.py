"""The bundle's shape on the rig: the three charms bring up a working Pulsar by themselves."""

from __future__ import annotations

import uuid

from tests.cluster import rig_pods, workload
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER
from tests.cluster.rig_juju import Model


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
