"""ZooKeeper credential rotation on the real workload, under a producer (slow).

The bundle (3 ZooKeeper servers, 3 bookies, 1 broker). A ``BackgroundProducer`` writes while
``rotate-zookeeper-credentials`` replaces the bookkeeper relation's ZooKeeper user, the cluster's
one ZooKeeper identity (the broker logs in with it too): the servers roll to know both users,
the new user gets the old one's ACLs and is published, the bookies and then the broker restart
with it, and only when every one of them reports it are the old user's ACLs revoked and the
servers rolled without it.

Asserted: 0 acknowledged messages lost; a re-run while it rolls starts nothing; afterwards a
real SASL session with the old password is refused by ZooKeeper and one with the new password
reads the chroot; the bookies and the broker run with the new user. Measured: figures
``zk_rotation.*`` (the publish gap, the roll's duration).
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, SERVICES, ZOOKEEPER
from tests.cluster.rig_juju import Model
from tests.cluster.test_zookeeper_contract import as_user, granted

pytestmark = pytest.mark.extended


# restarts of each process: servers learn the new user, then lose the old one; clients move once
EXPECTED_RESTARTS = {ZOOKEEPER: 2, BOOKKEEPER: 1, BROKER: 1}


def rotations(model: Model) -> str | None:
    peer = model.peer_relation(ZOOKEEPER)
    return model.app_data(peer.id, ZOOKEEPER).get("rotations")


def test_rotate_the_bookkeeper_relation_under_a_producer(bundle: Model):
    model = bundle
    (relation,) = model.relations_of(BOOKKEEPER, "zookeeper")
    old = granted(model, BOOKKEEPER)
    assert old["username"] == f"relation-{relation.id}"
    assert (
        as_user(model, old["username"], old["password"], lambda c: c.get_children("/pulsar"))[:3]
        == "ok:"
    )

    watcher = workload.PidWatcher(
        {
            unit.name: (unit.pod, service, None)
            for app, service in SERVICES.items()
            for unit in model.units(app)
        }
    ).start()
    producer = workload.BackgroundProducer(
        topic=f"persistent://public/default/zk-rotation-{uuid.uuid4().hex[:6]}"
    ).start()
    try:
        producer.wait_acks(50)
        leader = model.app(ZOOKEEPER).leader
        assert leader is not None
        started = time.monotonic()
        results = model.run_action(
            leader.name, "rotate-zookeeper-credentials", {"relation-id": relation.id}
        )
        new_user = f"relation-{relation.id}-r1"
        assert results == {
            "status": "started",
            f"relation-{relation.id}": f"started: {old['username']} -> {new_user}",
        }, results
        again = model.run_action(leader.name, "rotate-zookeeper-credentials")
        assert again["status"] == "in-progress", again

        # the clients get the new user once every server knows it
        model.settle(until=lambda: granted(model, BOOKKEEPER)["username"] == new_user, timeout=600)
        published = time.monotonic()
        # then every client moves, the old user goes, the servers roll once more
        model.settle(until=lambda: rotations(model) is None and model.all_active(), timeout=900)
        finished = time.monotonic()
        model.run_for(10)
    finally:
        producer.stop()
        watcher.stop()

    restarts = {
        unit.name: len(watcher.pids(unit.name)) - 1
        for app in SERVICES
        for unit in model.units(app)
    }
    print("restarts:", restarts)
    for app, expected in EXPECTED_RESTARTS.items():
        for unit in model.units(app):
            assert restarts[unit.name] == expected, (unit.name, restarts)

    new = granted(model, BOOKKEEPER)
    assert new["username"] == new_user and new["password"] != old["password"]
    # every client process runs with the new user, and says so to ZooKeeper's charm
    jaas_of = {
        BOOKKEEPER: "/pulsar/conf/bookkeeper-jaas.conf",
        BROKER: "/pulsar/conf/zookeeper-jaas.conf",
    }
    for app, path in jaas_of.items():
        (zk_relation,) = model.relations_of(app, "zookeeper")
        for unit in model.units(app):
            assert f'username="{new_user}"' in unit.pod.read(path), (unit.name, path)
            reported = model.unit_data(zk_relation.id, unit.name).get("zookeeper-username")
            assert reported == new_user, (unit.name, reported)
    for unit in model.units(ZOOKEEPER):
        server_jaas = unit.pod.read("/pulsar/conf/zookeeper-jaas.conf")
        assert f"user_{old['username']}=" not in server_jaas
        assert f"user_{new_user}=" in server_jaas

    # ZooKeeper itself: the old password is refused, the new one reads the chroot
    def list_chroot(client):
        return client.get_children("/pulsar")

    refused = as_user(model, old["username"], old["password"], list_chroot)
    assert not refused.startswith("ok"), refused
    allowed = as_user(model, new_user, new["password"], list_chroot)
    assert allowed.startswith("ok"), allowed
    # control: the refusal is ZooKeeper's answer to failed SASL, as for a wrong password
    wrong = as_user(model, new_user, new["password"] + "x", list_chroot)
    assert refused.split(":")[0] == wrong.split(":")[0], (refused, wrong)

    workload.round_trip([f"after-rotation-{n}".encode() for n in range(5)])
    read = producer.check_nothing_lost()
    assert read >= len(producer.acked)

    record("zk_rotation.publish_gap_s", round(producer.longest_gap(since=started), 2))
    record("zk_rotation.published_s", round(published - started, 1))
    record("zk_rotation.total_s", round(finished - started, 1))
    record("zk_rotation.producer_acked", len(producer.acked))
    record("zk_rotation.producer_failed_sends", producer.failures)
    record("zk_rotation.restarts", restarts)
    print("old password:", refused[:120], "| wrong password:", wrong[:120])
