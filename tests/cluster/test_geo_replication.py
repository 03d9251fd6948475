"""Geo-replication between two pulsar-k8s clusters in one rig (issue 11, item 2), slow.

Two clusters side by side, each 1 ZooKeeper, 1 bookie (ensemble and quorums 1) and 1 broker,
with their own application and cluster names (``alpha``, ``beta``), related with
``pulsar-a:replication-offer`` / ``pulsar-b:replication``: a message produced on one cluster
in the replicated namespace is consumed on the other, both ways; messages produced on alpha
while beta's only broker pod is lost arrive once it is back; removing the relation pauses
replication (both statuses say so, a message produced on alpha does not reach beta) and
relating again delivers what was produced meanwhile, in order; taking the namespace out of
``replicated-namespaces`` while unrelated stops it for good (relating again does not deliver
the messages of that period).
Figures: replication latency each way, catch-up after the outage and after relating again.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import workload
from tests.cluster.conftest import new_model
from tests.cluster.figures import record
from tests.cluster.rig_bundle import charm_classes, small_config
from tests.cluster.rig_juju import Model, RigEnv
from tests.cluster.rig_net import service_fqdn

pytestmark = pytest.mark.extended

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
NAMESPACE = "geo/orders"
CLUSTERS = {"a": "alpha", "b": "beta"}
OUTAGE_MESSAGES = 50
PAUSED_MESSAGES = 20
# How long a message produced while unrelated is watched for on the other side.
NOT_CROSSING_S = 10


def apps(side: str) -> tuple[str, str, str]:
    return f"zk-{side}", f"bk-{side}", f"pulsar-{side}"


def deploy_cluster(model: Model, side: str) -> None:
    zk, bk, broker = apps(side)
    classes = charm_classes()
    one_bookie = {
        "managed-ledger-ensemble-size": 1,
        "managed-ledger-write-quorum": 1,
        "managed-ledger-ack-quorum": 1,
    }
    config = {
        zk: {},
        bk: {},
        broker: {"cluster-name": CLUSTERS[side], "replicated-namespaces": NAMESPACE, **one_bookie},
    }
    for name, bundle_name in zip(
        (zk, bk, broker), ("pulsar-zookeeper-k8s", "bookkeeper-k8s", "pulsar-k8s"), strict=True
    ):
        charm = classes[bundle_name]
        small = small_config(bundle_name, charm, config[name])
        model.deploy(name, charm, units=1, config=small)
    model.integrate(f"{zk}:zookeeper", f"{bk}:zookeeper")
    model.integrate(f"{zk}:zookeeper", f"{broker}:zookeeper")
    model.integrate(f"{bk}:bookkeeper", f"{broker}:bookkeeper")


@pytest.fixture(scope="module")
def clusters(rig_env: RigEnv) -> Iterator[Model]:
    m = new_model(rig_env)
    try:
        deploy_cluster(m, "a")
        deploy_cluster(m, "b")
        m.settle(timeout=SETTLE)
        yield m
    except Exception:
        print(f"\n===== rig report (geo-replication) =====\n{m.report()}")
        raise
    finally:
        m.teardown()


def url(side: str) -> str:
    return f"pulsar://{service_fqdn(apps(side)[2])}:6650"


def admin_token(model: Model, side: str) -> str:
    return model.secret("pulsar-internal", owner=apps(side)[2]).content()["admin-token"]


def client(model: Model, side: str):
    import pulsar

    return pulsar.Client(
        url(side),
        authentication=pulsar.AuthenticationToken(admin_token(model, side)),
        operation_timeout_seconds=60,
        connection_timeout_ms=5000,
    )


def status(model: Model, side: str) -> str:
    return model.unit(f"{apps(side)[2]}/0").status.message


def new_topic() -> str:
    return f"persistent://{NAMESPACE}/t-{uuid.uuid4().hex[:8]}"


def produce(model: Model, side: str, topic: str, payloads: list[bytes]) -> float:
    """Send and wait for every ack; return the time of the last ack (monotonic)."""
    c = client(model, side)
    try:
        producer = c.create_producer(topic, send_timeout_millis=60_000)
        for payload in payloads:
            producer.send(payload)
        return time.monotonic()
    finally:
        c.close()


def receive(consumer, count: int, timeout_s: float) -> tuple[list[bytes], float]:
    """Messages until ``count`` distinct ones arrived or ``timeout_s`` passed (a replicator
    that reconnects may send one again); return them in order and the last arrival time."""
    got: list[bytes] = []
    last = time.monotonic()
    deadline = last + timeout_s
    while len(set(got)) < count and time.monotonic() < deadline:
        remaining = max(100, int((deadline - time.monotonic()) * 1000))
        try:
            message = consumer.receive(timeout_millis=min(remaining, 5000))
        except Exception:  # timeout: keep waiting until the deadline
            continue
        got.append(message.data())
        consumer.acknowledge(message)
        last = time.monotonic()
    return got, last


def collect(consumer, payloads: list[bytes], timeout_s: float) -> tuple[list[bytes], float]:
    """The messages of ``payloads`` received (others acknowledged and ignored) until every one
    arrived or ``timeout_s`` passed, in arrival order; and the last arrival time."""
    wanted, got = set(payloads), []
    last = time.monotonic()
    deadline = last + timeout_s
    while not wanted <= set(got) and time.monotonic() < deadline:
        remaining = max(100, int((deadline - time.monotonic()) * 1000))
        try:
            message = consumer.receive(timeout_millis=min(remaining, 1000))
        except Exception:  # timeout: keep waiting until the deadline
            continue
        consumer.acknowledge(message)
        if message.data() in wanted:
            got.append(message.data())
            last = time.monotonic()
    return got, last


def one_way(model: Model, src: str, dst: str) -> tuple[float, float]:
    """Messages produced on ``src`` are consumed on ``dst``; return the latency (s) of the
    first message of a new topic and the median of the next ten, sent one at a time."""
    topic = new_topic()
    consumer_client, producer_client = client(model, dst), client(model, src)
    try:
        consumer = consumer_client.subscribe(topic, "geo-test")
        producer = producer_client.create_producer(topic, send_timeout_millis=60_000)
        latencies = []
        for i in range(11):
            payload = f"{src}->{dst} {i} {uuid.uuid4()}".encode()
            producer.send(payload)
            sent = time.monotonic()
            got, arrived = receive(consumer, 1, 120)
            assert got == [payload], f"{src} -> {dst}: message {i}: got {got}"
            latencies.append(arrived - sent)
    finally:
        consumer_client.close()
        producer_client.close()
    return latencies[0], sorted(latencies[1:])[5]


def admin_get(model: Model, side: str, path: str) -> Any:
    import urllib.request

    request = urllib.request.Request(
        f"http://{service_fqdn(apps(side)[2])}:8080{path}",
        headers={"Authorization": f"Bearer {admin_token(model, side)}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read().decode())


def test_two_clusters_replicate_both_ways_survive_an_outage_pause_on_unrelate_and_stop(
    clusters: Model,
):
    model = clusters
    broker_a, broker_b = apps("a")[2], apps("b")[2]
    started = time.monotonic()
    relation = model.integrate(f"{broker_a}:replication-offer", f"{broker_b}:replication")
    wait_for_both(model, "replicating")
    record("georep.relate_to_replicating_s", time.monotonic() - started)
    # Each cluster did its half in its own configuration store.
    assert sorted(admin_get(model, "a", f"/admin/v2/namespaces/{NAMESPACE}/replication")) == [
        "alpha",
        "beta",
    ]
    assert sorted(admin_get(model, "b", f"/admin/v2/namespaces/{NAMESPACE}/replication")) == [
        "alpha",
        "beta",
    ]
    registered = admin_get(model, "a", "/admin/v2/clusters/beta")
    assert isinstance(registered, dict)
    assert registered["brokerServiceUrl"] == url("b")
    permissions = admin_get(model, "b", f"/admin/v2/namespaces/{NAMESPACE}/permissions")
    assert permissions == {"replicator-alpha": ["produce"]}

    # First message of a new topic: includes the replicator's start on the producing side.
    for src, dst in (("a", "b"), ("b", "a")):
        first, median = one_way(model, src, dst)
        record(f"georep.first_message_latency_{src}_to_{dst}_s", first)
        record(f"georep.median_latency_{src}_to_{dst}_s", median)

    # The link broken: beta's only broker pod is lost; alpha keeps accepting messages.
    topic = new_topic()
    c = client(model, "b")
    try:
        c.subscribe(topic, "geo-test").close()  # the subscription exists on beta beforehand
    finally:
        c.close()
    model.lose_pod(f"{broker_b}/0", restart=False)
    payloads = [f"outage {i}".encode() for i in range(OUTAGE_MESSAGES)]
    produce(model, "a", topic, payloads)
    model.run_for(10)
    restored = time.monotonic()
    model.restore_pod(f"{broker_b}/0")
    model.settle(timeout=SETTLE)
    c = client(model, "b")
    try:
        consumer = c.subscribe(topic, "geo-test")
        got, arrived = receive(consumer, OUTAGE_MESSAGES, 180)
    finally:
        c.close()
    ok, missing_at = workload.is_subsequence(payloads, got)
    assert ok, f"{missing_at}/{OUTAGE_MESSAGES} arrived in order after the outage"
    assert set(got) == set(payloads)
    record("georep.outage_messages", OUTAGE_MESSAGES)
    record("georep.outage_duplicates", len(got) - len(set(got)))
    record("georep.catch_up_after_restore_s", arrived - restored)

    # Unrelating pauses replication on both sides and says so: no message crosses, the peer
    # stays registered and in the replication clusters (the backlog is kept), its role revoked.
    model.remove_relation(relation.id)
    wait_for_both(model, "paused")
    for side, peer in (("a", "beta"), ("b", "alpha")):
        assert sorted(admin_get(model, side, f"/admin/v2/namespaces/{NAMESPACE}/replication")) == [
            "alpha",
            "beta",
        ]
        assert peer in admin_get(model, side, "/admin/v2/clusters")
        assert admin_get(model, side, f"/admin/v2/namespaces/{NAMESPACE}/permissions") == {}
    # Produced while paused, on both sides: on the outage topic (whose replicators were
    # connected before the removal) and on a new one. Nothing crosses for NOT_CROSSING_S.
    fresh = new_topic()
    a_to_b = {
        t: [f"{t[-8:]} alpha while unrelated {i}".encode() for i in range(PAUSED_MESSAGES)]
        for t in (topic, fresh)
    }
    b_to_a = [f"beta while unrelated {i}".encode() for i in range(PAUSED_MESSAGES)]
    ca, cb = client(model, "a"), client(model, "b")
    try:
        on_b = {t: cb.subscribe(t, "geo-test") for t in a_to_b}
        on_a = ca.subscribe(topic, "geo-back")
        for t, payloads in a_to_b.items():
            produce(model, "a", t, payloads)
        produce(model, "b", topic, b_to_a)
        deadline = time.monotonic() + NOT_CROSSING_S
        crossed = collect(on_b[topic], a_to_b[topic], NOT_CROSSING_S)[0]
        crossed += collect(on_b[fresh], a_to_b[fresh], max(1, deadline - time.monotonic()))[0]
        crossed += collect(on_a, b_to_a, 1)[0]
    finally:
        ca.close()
        cb.close()
    assert crossed == [], "a message crossed while the relation was removed"

    # Relating again resumes: what was produced meanwhile arrives, in order, both ways.
    started = time.monotonic()
    relation = model.integrate(f"{broker_a}:replication-offer", f"{broker_b}:replication")
    wait_for_both(model, "replicating")
    record("georep.relate_again_to_replicating_s", time.monotonic() - started)
    assert "paused" not in status(model, "a") and "paused" not in status(model, "b")
    ca, cb = client(model, "a"), client(model, "b")
    try:
        received = [(p, *collect(cb.subscribe(t, "geo-test"), p, 240)) for t, p in a_to_b.items()]
        received.append((b_to_a, *collect(ca.subscribe(topic, "geo-back"), b_to_a, 240)))
    finally:
        ca.close()
        cb.close()
    duplicates = 0
    for payloads, got, _ in received:
        ok, missing_at = workload.is_subsequence(payloads, got)
        assert ok, f"{missing_at}/{len(payloads)} produced while unrelated arrived in order"
        assert set(got) == set(payloads)
        duplicates += len(got) - len(set(got))
    record("georep.resume_messages", sum(len(p) for p, _, _ in received))
    record("georep.resume_catch_up_s", max(last for _, _, last in received) - started)
    record("georep.resume_duplicates", duplicates)
    first, _ = one_way(model, "a", "b")
    record("georep.first_message_latency_after_relating_again_s", first)

    # Stop for good: unrelated again, a namespace taken out of replicated-namespaces drops the
    # backlog and the registration; relating again with it listed again does not send it.
    model.remove_relation(relation.id)
    wait_for_both(model, "paused")
    stop_topic = new_topic()
    c = client(model, "b")
    try:
        c.subscribe(stop_topic, "geo-test").close()
    finally:
        c.close()
    produce(model, "a", stop_topic, [b"produced before the stop"])
    model.config(broker_a, **{"replicated-namespaces": ""})
    model.settle(
        until=lambda: model.all_active() and "replication with beta stopped" in status(model, "a"),
        timeout=300,
    )
    assert admin_get(model, "a", f"/admin/v2/namespaces/{NAMESPACE}/replication") == ["alpha"]
    assert "beta" not in admin_get(model, "a", "/admin/v2/clusters")
    assert "beta" not in admin_get(model, "a", "/admin/v2/tenants/geo")["allowedClusters"]
    model.config(broker_a, **{"replicated-namespaces": NAMESPACE})
    model.integrate(f"{broker_a}:replication-offer", f"{broker_b}:replication")
    wait_for_both(model, "replicating")
    c = client(model, "b")
    try:
        consumer = c.subscribe(stop_topic, "geo-test")
        produce(model, "a", stop_topic, [b"after relating again"])
        got, _ = receive(consumer, 1, 120)
    finally:
        c.close()
    # Replication is in order: a message of the dropped backlog would have come first.
    assert got and set(got) == {b"after relating again"}, got
    record(
        "georep.messages_dropped_by_stop_delivered_after", got.count(b"produced before the stop")
    )


def wait_for_both(model: Model, what: str) -> None:
    """Settle until both brokers are active and their statuses say ``what`` of the other."""
    texts = {
        "replicating": ("replicating with beta", "replicating with alpha"),
        "paused": ("replication with beta paused", "replication with alpha paused"),
    }[what]
    model.settle(
        until=lambda: (
            model.all_active()
            and texts[0] in status(model, "a")
            and texts[1] in status(model, "b")
        ),
        timeout=300,
    )
