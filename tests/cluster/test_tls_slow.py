"""slow: TLS enabled on two brokers under a producer, one broker restarting at a time.

A fresh model: the bundle's shape with two brokers, the self-signed CA stand-in
(``tls_provider_charm/``) and a test client. With ``tls-plaintext-enabled`` true, relating the
CA restarts the brokers through the rolling-restart lock: their down intervals (sampled by a
``PidWatcher``) never overlap, and a producer on both brokers' plain-text URLs loses nothing
acknowledged. Then the client moves messages on several topics over ``pulsar+ssl`` (lookups
send it to whichever broker owns each topic: both names are in the certificates' SANs).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER, deploy_bundle
from tests.cluster.rig_juju import Model
from tests.cluster.test_scenarios_slow import broker_ready, brokers_url, overlap, service_pids

sys.path.insert(0, str(Path(__file__).parent / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # pyright: ignore[reportMissingImports]

pytestmark = pytest.mark.slow

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
TLS_APP = "tls"
CLIENT = "client-tls"
NAMESPACE = "secure/fleet"
BROKER_CONF = "/pulsar/conf/broker.conf"


def tls_on(model: Model, unit: str) -> bool:
    try:
        return "brokerServicePortTls=6651" in model.pod(unit).read(BROKER_CONF)
    except Exception:
        return False


def test_two_brokers_enable_tls_one_at_a_time_under_a_producer(model: Model):
    from pulsar_client_test_charm import PulsarClientTestCharm  # type: ignore[import-not-found]

    deploy_bundle(model, brokers=2, config={BROKER: {"tls-plaintext-enabled": True}})
    model.deploy(TLS_APP, RigTlsProviderCharm)
    model.deploy(CLIENT, PulsarClientTestCharm, config={"namespace": NAMESPACE})
    model.settle(
        until=lambda: all(
            u.status.name == "active"
            for a in (ZOOKEEPER, BOOKKEEPER, BROKER)
            for u in model.units(a)
        ),
        timeout=SETTLE,
    )
    workload.Operator.of(model)
    brokers = [u.name for u in model.units(BROKER)]
    before = service_pids(model, BROKER)
    watcher = workload.PidWatcher(
        {
            u.name: (u.pod, "broker", lambda n=u.number: broker_ready(model, n))
            for u in model.units(BROKER)
        }
    ).start()
    producer = workload.BackgroundProducer(url=brokers_url(model), send_timeout_ms=60_000)
    producer.start()
    try:
        producer.wait_acks(100)
        started = time.monotonic()
        model.integrate(f"{BROKER}:certificates", f"{TLS_APP}:certificates")
        model.integrate(f"{BROKER}:pulsar", f"{CLIENT}:pulsar")

        def rolled() -> bool:
            now = service_pids(model, BROKER)
            return (
                model.all_active()
                and all(tls_on(model, b) for b in brokers)
                and all(now[b] not in (None, before[b]) for b in brokers)
            )

        model.settle(until=rolled, timeout=600)
        record("tls_slow.enable_two_brokers_s", time.monotonic() - started)
        producer.wait_acks(len(producer.acked) + 100)
    finally:
        producer.stop()
        watcher.stop()
    first, second = (watcher.down_intervals(b) for b in brokers)
    assert first and second, "both brokers restarted"
    assert overlap(first, second) == 0.0, (first, second)
    record("tls_slow.enable_publish_gap_s", producer.longest_gap(since=started))
    producer.check_nothing_lost()

    count = 5
    for n in range(6):
        topic = f"fleet-{n}-{uuid.uuid4().hex[:6]}"
        sent = model.run_action(
            f"{CLIENT}/0", "produce", {"topic": topic, "count": count, "payload-prefix": "f"}
        )
        assert int(sent["count"]) == count, sent
        got = model.run_action(
            f"{CLIENT}/0", "consume", {"topic": topic, "count": count, "timeout-seconds": 30}
        )
        assert int(got["count"]) == count, got
