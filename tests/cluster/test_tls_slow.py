"""slow: TLS on two brokers under a producer, one broker restarting at a time; a CA rotation.

A fresh model: the bundle's shape with two brokers, the self-signed CA stand-in
(``tls_provider_charm/``) and a test client. With ``tls-plaintext-enabled`` true, relating the
CA restarts the brokers through the rolling-restart lock: their down intervals (sampled by a
``PidWatcher``) never overlap, and a producer on both brokers' plain-text URLs loses nothing
acknowledged. Then the client moves messages on several topics over ``pulsar+ssl`` (lookups
send it to whichever broker owns each topic: both names are in the certificates' SANs).

CA rotation (a second fresh model, TLS brokers and TLS bookies from the start): the CA changes
under a producer whose messages reach the bookies over TLS; brokers and bookies go through the
trust bundles (trust both CAs, switch certificates, drop the old CA) without a restart. Real
handshakes on every broker's 6651 and every bookie's 3181, each trusting only what the client
and bookkeeper relations publish at that moment, never fail; the rotation ends with every unit
presenting and trusting the new CA alone; nothing acknowledged is lost.
"""

from __future__ import annotations

import os
import ssl
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER, deploy_bundle
from tests.cluster.rig_juju import Model
from tests.cluster.rig_net import unit_fqdn
from tests.cluster.test_scenarios_slow import broker_ready, brokers_url, overlap, service_pids
from tests.cluster.test_tls import bookie_fqdn, handshake, provider_ca, start_tls

sys.path.insert(0, str(Path(__file__).parent / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # pyright: ignore[reportMissingImports]

pytestmark = pytest.mark.extended

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


# -- CA rotation on two brokers and three TLS bookies -----------------------------------------

TLS_DIR = "/pulsar/conf/tls"
BOOKIE_CONF = "/pulsar/conf/bookkeeper.conf"


def _pem_set(text: str) -> set[str]:
    """The certificates of a PEM text, whitespace-normalised."""
    blocks = text.split("-----END CERTIFICATE-----")
    return {"".join(b.split("-----BEGIN CERTIFICATE-----")[-1].split()) for b in blocks[:-1]}


def _client_ca(model: Model) -> str:
    (relation,) = model.relations_of(CLIENT, "pulsar")
    secret_id = model.app_data(relation.id, BROKER).get("secret-tls")
    return model.secret(secret_id).content().get("tls-ca", "") if secret_id else ""


def _bookies_ca(model: Model) -> str:
    (relation,) = model.relations_of(BOOKKEEPER, "bookkeeper")
    return model.app_data(relation.id, BOOKKEEPER).get("tls-ca", "")


def _tls_ready(model: Model) -> bool:
    try:
        for unit in model.units(BOOKKEEPER):
            if "tlsProviderFactoryClass=" not in unit.pod.read(BOOKIE_CONF):
                return False
        for unit in model.units(BROKER):
            conf = unit.pod.read(BROKER_CONF)
            if "bookkeeperTLSClientAuthentication=true" not in conf:
                return False
    except Exception:
        return False
    return model.all_active() and bool(_client_ca(model)) and bool(_bookies_ca(model))


class Probes:
    """Handshakes with every broker (6651) and bookie (3181, START_TLS), each trusting only
    what the relations publish now; a verification failure is a client that the rotation
    broke."""

    def __init__(self, model: Model):
        self.model = model
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.count = 0
        self._last = 0.0

    def run(self) -> None:
        if time.monotonic() - self._last < 2.0:
            return
        self._last = time.monotonic()
        targets = [
            (unit_fqdn(BROKER, u.number), _client_ca(self.model), False)
            for u in self.model.units(BROKER)
        ] + [
            (bookie_fqdn(u.number), _bookies_ca(self.model), True)
            for u in self.model.units(BOOKKEEPER)
        ]
        for host, ca, bookie in targets:
            self.count += 1
            try:
                context = ssl.create_default_context(cadata=ca)
                if bookie:
                    start_tls(host, context)
                else:
                    handshake(host, 6651, context)
            except ssl.SSLCertVerificationError as exc:
                self.failed.append(f"{time.monotonic():.1f} {host} {exc}")
            except (OSError, AssertionError, ssl.SSLError) as exc:
                self.errors.append(f"{time.monotonic():.1f} {host} {exc!r}")


def _on_new_ca_alone(model: Model, new_ca: str) -> bool:
    new = _pem_set(new_ca)
    try:
        for app in (BROKER, BOOKKEEPER):
            for unit in model.units(app):
                if _pem_set(unit.pod.read(f"{TLS_DIR}/ca.pem")) != new:
                    return False
                if _pem_set(unit.pod.read(f"{TLS_DIR}/presented-ca.pem")) != new:
                    return False
    except Exception:
        return False
    if _pem_set(_client_ca(model)) != new or _pem_set(_bookies_ca(model)) != new:
        return False
    context = ssl.create_default_context(cadata=new_ca)
    try:
        for unit in model.units(BROKER):
            handshake(unit_fqdn(BROKER, unit.number), 6651, context)
        for unit in model.units(BOOKKEEPER):
            start_tls(bookie_fqdn(unit.number), context)
    except (OSError, AssertionError, ssl.SSLError):
        return False
    return True


def test_a_ca_rotation_on_two_brokers_and_tls_bookies_loses_nothing(model: Model):
    from pulsar_client_test_charm import PulsarClientTestCharm  # type: ignore[import-not-found]

    deploy_bundle(model, brokers=2, config={BROKER: {"tls-plaintext-enabled": True}})
    model.deploy(TLS_APP, RigTlsProviderCharm)
    model.deploy(CLIENT, PulsarClientTestCharm, config={"namespace": NAMESPACE})
    model.integrate(f"{BROKER}:certificates", f"{TLS_APP}:certificates")
    model.integrate(f"{BOOKKEEPER}:certificates", f"{TLS_APP}:certificates")
    model.integrate(f"{BROKER}:pulsar", f"{CLIENT}:pulsar")
    model.settle(until=lambda: _tls_ready(model), timeout=SETTLE)
    old_ca = _client_ca(model)
    assert _pem_set(old_ca) == _pem_set(_bookies_ca(model)), "one CA for brokers and bookies"
    workload.Operator.of(model)
    pids = {a: service_pids(model, a) for a in (BROKER, BOOKKEEPER)}
    probes = Probes(model)
    # the producer's messages reach the bookies over TLS (the brokers' BookKeeper clients)
    producer = workload.BackgroundProducer(url=brokers_url(model), send_timeout_ms=60_000)
    producer.start()
    try:
        producer.wait_acks(100)
        started = time.monotonic()
        model.config(TLS_APP, **{"ca-common-name": "rig-ca-2"})
        model.settle(until=lambda: _client_ca(model) != old_ca, timeout=300)
        record("tls_slow.ca_rotation_to_two_ca_bundle_s", time.monotonic() - started)
        assert _pem_set(old_ca) < _pem_set(_client_ca(model)), "both CAs published first"
        new_ca = provider_ca(model)

        def done() -> bool:
            probes.run()
            return _on_new_ca_alone(model, new_ca)

        model.settle(until=done, timeout=900)
        record("tls_slow.ca_rotation_to_new_ca_alone_s", time.monotonic() - started)
        producer.wait_acks(len(producer.acked) + 100)
    finally:
        producer.stop()
    record("tls_slow.ca_rotation_publish_gap_s", producer.longest_gap(since=started))
    record("tls_slow.ca_rotation_handshakes", probes.count)
    assert not probes.failed, probes.failed[:5]
    record("tls_slow.ca_rotation_handshake_errors", len(probes.errors))
    assert probes.count > 0
    # a rotation restarts nothing: the servers re-read their PEM files
    assert {a: service_pids(model, a) for a in (BROKER, BOOKKEEPER)} == pids
    producer.check_nothing_lost()
    # messages still go round over pulsar+ssl with the new CA
    topic = f"rotated-{uuid.uuid4().hex[:6]}"
    sent = model.run_action(
        f"{CLIENT}/0", "produce", {"topic": topic, "count": 5, "payload-prefix": "r"}
    )
    assert int(sent["count"]) == 5, sent
    got = model.run_action(
        f"{CLIENT}/0", "consume", {"topic": topic, "count": 5, "timeout-seconds": 30}
    )
    assert int(got["count"]) == 5, got
