"""ZooKeeper TLS (issue 9): the settled bundle, under the rig's producer, gets a certificates
provider on ``pulsar-zookeeper-k8s:certificates``.

1. every ZooKeeper server gets its certificate and serves TLS clients on 2182; the leader walks
   the quorum through ``unify`` -> ``tls-unified`` -> ``tls`` (one rolling restart each, at most
   one server down at a time); the ``zookeeper`` relation then publishes the 2182 endpoints,
   ``tls`` enabled and the CA; bookies and the broker restart onto them (their ZooKeeper
   clients on Netty with the CA as PEM trust store, SASL inside); nothing acknowledged is lost;
2. a real TLS handshake on each server's 2182 trusting only the provider's CA: the chain
   verifies and the SANs are the pod name and the Service name; a plain-text client on 2182
   gets no answer; the quorum runs TLS only (``sslQuorum``, no port unification) and serves;
2b. with ``tls-plaintext-enabled`` false (the default) 2181 refuses connections on every pod
   address once nobody uses it (each server's plain listener moved to its pod's loopback by a
   reconfig); ``tls-plaintext-enabled=true`` reopens it and ``false`` closes it again, neither
   restarting a server;
3. bookies, the broker and a proxy run against the 2182 endpoints (which only speak TLS; the
   brokers pass the CA to the proxy) and messages still go round, directly and through the
   proxy;
3b. the ZooKeeper charm's own super-user session (a new client's chroot and ACLs, then their
   revocation) goes to 2182 over TLS: its digest credential never crosses in the clear;
4. (``slow``) a CA rotation under the producer and a kazoo writer: every server first trusts
   both CAs (the ``zookeeper`` relation publishes both), then presents a certificate from the new
   CA, then the old CA leaves every trust store and the published bundle; never two servers down
   at once, every write goes through (bounded retries), nothing acknowledged lost;
5. (``slow``) removing the certificates relation walks everything back to plain text under a
   producer: 2182 closed, 2181 open again on the pod network, the quorum plain, clients on
   2181, nothing acknowledged lost.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import ssl
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, PROXY, ZOOKEEPER, small_config
from tests.cluster.rig_juju import Model
from tests.cluster.rig_net import unit_fqdn

sys.path.insert(0, str(Path(__file__).parent / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # pyright: ignore[reportMissingImports]

sys.path.insert(0, str(Path(__file__).parent / "zookeeper_client_charm" / "src"))
from rig_zookeeper_client_charm import (  # pyright: ignore[reportMissingImports]
    RigZooKeeperClientCharm,
)

TLS_APP = "zk-tls"
THIRD = "third-app"
SERVICE_FQDN = f"{ZOOKEEPER}.rig.svc.cluster.local"
ZK_CONF = "/pulsar/conf/zookeeper.conf"


def zk_fqdn(number: int) -> str:
    return f"{ZOOKEEPER}-{number}.{ZOOKEEPER}-endpoints.rig.svc.cluster.local"


def settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def zk_conf(model: Model, unit: str) -> dict[str, str]:
    try:
        return settings(model.pod(unit).read(ZK_CONF))
    except Exception:  # not pushed yet, or Pebble restarting
        return {}


def quorum_stage(model: Model) -> str:
    (peer,) = model.relations_of(ZOOKEEPER, "cluster")
    return model.app_data(peer.id, ZOOKEEPER).get("quorum-tls-stage", "off")


def read(model: Model, unit: str, path: str) -> str:
    try:
        return model.pod(unit).read(path)
    except Exception:
        return ""


def plain_client_port(model: Model) -> str:
    (peer,) = model.relations_of(ZOOKEEPER, "cluster")
    return model.app_data(peer.id, ZOOKEEPER).get("plain-client-port", "open")


def everything_on_tls(model: Model) -> bool:
    if not model.all_active() or quorum_stage(model) != "tls":
        return False
    if plain_client_port(model) != "closed":  # the default tls-plaintext-enabled=false
        return False
    (peer,) = model.relations_of(ZOOKEEPER, "cluster")
    for unit in model.units(ZOOKEEPER):
        if model.unit_data(peer.id, unit.name).get("quorum-tls") != "tls":
            return False
    bookies_on_2182 = all(
        ":2182" in read(model, u.name, "/pulsar/conf/bookkeeper.conf")
        for u in model.units(BOOKKEEPER)
    )
    broker_on_2182 = ":2182" in read(model, f"{BROKER}/0", "/pulsar/conf/broker.conf")
    proxy_on_2182 = ":2182" in read(model, f"{PROXY}/0", "/pulsar/conf/proxy.conf")
    return bookies_on_2182 and broker_on_2182 and proxy_on_2182


def provider_ca(model: Model) -> str:
    (relation,) = model.relations_of(TLS_APP, "certificates")
    issued = json.loads(model.app_data(relation.id, TLS_APP).get("certificates") or "[]")
    assert issued, "no certificate issued"
    return issued[0]["ca"]


def handshake(host: str, port: int, context: ssl.SSLContext) -> tuple[str, set[str]]:
    with (
        socket.create_connection((host, port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return cert.issuer.rfc4514_string(), set(sans.value.get_values_for_type(x509.DNSName))


def admin(host: str, command: str) -> str:
    """The server's AdminServer answer to ``command`` ("" : no answer); 2181 may be closed."""
    try:
        with urllib.request.urlopen(f"http://{host}:9990/commands/{command}", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def server_answers(number: int) -> bool:
    """The server's JVM answers (its AdminServer), in a quorum or not."""
    return bool(admin(zk_fqdn(number), "ruok"))


def plain_ruok(host: str, port: int) -> bytes:
    """A plain-text four-letter word: what a client without TLS gets back."""
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"ruok")
            sock.settimeout(5)
            return sock.recv(64)
    except OSError:
        return b""


@pytest.fixture(scope="module")
def zk_secure(bundle: Model) -> Model:
    from proxy_charm import PulsarProxyCharm  # type: ignore[import-not-found]

    model = bundle
    # A proxy reads policies in ZooKeeper too: it must follow the move to TLS.
    model.deploy(PROXY, PulsarProxyCharm, config=small_config(PROXY, PulsarProxyCharm))
    model.integrate(f"{BROKER}:pulsar-proxy", f"{PROXY}:pulsar-proxy")
    model.settle(timeout=600)
    model.deploy(TLS_APP, RigTlsProviderCharm)
    zookeepers = model.units(ZOOKEEPER)
    watcher = workload.PidWatcher(
        {u.name: (u.pod, "zookeeper", lambda n=u.number: server_answers(n)) for u in zookeepers}
    ).start()
    producer = workload.BackgroundProducer().start()
    try:
        producer.wait_acks(50)
        started = time.monotonic()
        model.integrate(f"{ZOOKEEPER}:certificates", f"{TLS_APP}:certificates")
        model.settle(until=lambda: everything_on_tls(model), timeout=900)
        record("zk_tls.enable_to_all_on_tls_s", time.monotonic() - started)
        producer.wait_acks(len(producer.acked) + 50)
    finally:
        producer.stop()
        watcher.stop()
    record("zk_tls.enable_publish_gap_s", producer.longest_gap(since=started))
    restarts = {u.name: len(watcher.pids(u.name)) - 1 for u in zookeepers}
    record("zk_tls.zookeeper_restarts_per_server", max(restarts.values()))
    # at most one ZooKeeper server down at a time
    downs = sorted((a, b, u.name) for u in zookeepers for a, b in watcher.down_intervals(u.name))
    for (_, a1, ua), (b0, _, ub) in itertools.pairwise(downs):
        assert ua == ub or b0 >= a1 - 0.5, (downs, restarts)
    producer.check_nothing_lost()
    return model


def test_every_server_serves_tls_on_2182_with_the_ca_chain(zk_secure: Model):
    model = zk_secure
    trusting_ca = ssl.create_default_context(cadata=provider_ca(model))
    for unit in model.units(ZOOKEEPER):
        host = zk_fqdn(unit.number)
        issuer, sans = handshake(host, 2182, trusting_ca)
        assert "CN=rig-ca" in issuer.split(","), issuer
        assert {host, SERVICE_FQDN} <= sans, sans
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(host, 2182, ssl.create_default_context())
        # a plain-text client on the secure port gets nothing back
        assert plain_ruok(host, 2182) != b"imok"
        # the key never left the unit but in its secret; ZooKeeper reads key + chain as PEM
        keystore = read(model, unit.name, "/pulsar/conf/tls/keystore.pem")
        assert keystore.startswith("-----BEGIN PRIVATE KEY-----"), unit.name


def test_the_quorum_runs_tls_only_and_serves(zk_secure: Model):
    model = zk_secure
    for unit in model.units(ZOOKEEPER):
        conf = zk_conf(model, unit.name)
        assert (conf.get("sslQuorum"), conf.get("portUnification")) == ("true", "false"), conf
        assert '"is_leader"' in admin(zk_fqdn(unit.number), "leader")


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def plain_port_everywhere(model: Model, state: str) -> bool:
    """Every server's plain port is ``state`` on its pod address and the leader recorded it."""
    if plain_client_port(model) != state or not model.all_active():
        return False
    hosts = [zk_fqdn(u.number) for u in model.units(ZOOKEEPER)]
    if state == "closed":
        return all(refused(host, 2181) for host in hosts)
    return all(plain_ruok(host, 2181) == b"imok" for host in hosts)


def test_2181_refuses_and_reopens_without_a_restart(zk_secure: Model):
    """tls-plaintext-enabled=false (the default): 2181 refuses on every pod address; the charm's
    own checks live on the AdminServer. true reopens it, false closes it again: a reconfig
    re-binds each running server's plain listener, no server restarts."""
    model = zk_secure
    zookeepers = model.units(ZOOKEEPER)
    assert plain_port_everywhere(model, "closed")
    pids = {u.name: u.pod.service_pid("zookeeper") for u in zookeepers}
    # each server's listener is on its pod's loopback, in ZooKeeper's own (agreed) config
    (peer,) = model.relations_of(ZOOKEEPER, "cluster")
    for unit in zookeepers:
        dynamic = read(model, unit.name, zk_conf(model, unit.name)["dynamicConfigFile"])
        sid = unit.number + 1
        assert f"server.{sid}={zk_fqdn(unit.number)}:2888:3888:participant;127.0.0.1:" in dynamic
        # the plain-clients count the leader waited for
        assert model.unit_data(peer.id, unit.name).get("plain-clients", "") == ""
    started = time.monotonic()
    model.config(ZOOKEEPER, **{"tls-plaintext-enabled": True})
    model.settle(until=lambda: plain_port_everywhere(model, "open"), timeout=300)
    record("zk_tls.plain_port_reopen_s", time.monotonic() - started)
    started = time.monotonic()
    model.config(ZOOKEEPER, **{"tls-plaintext-enabled": False})
    model.settle(until=lambda: plain_port_everywhere(model, "closed"), timeout=300)
    record("zk_tls.plain_port_close_s", time.monotonic() - started)
    assert {u.name: u.pod.service_pid("zookeeper") for u in zookeepers} == pids


def test_clients_get_tls_and_bookies_and_broker_serve_over_it(zk_secure: Model):
    model = zk_secure
    ca = provider_ca(model).strip()
    for relation in model.relations_of(ZOOKEEPER, "zookeeper"):
        data = model.app_data(relation.id, ZOOKEEPER)
        if not data:  # the brokers use the bookies' identity: no chroot of their own
            continue
        assert all(e.endswith(":2182") for e in data["endpoints"].split(",")), data
        tls = model.secret(data["secret-tls"]).content()
        assert tls["tls"] == "enabled" and tls["tls-ca"].strip() == ca, tls
    for unit in [*model.units(BOOKKEEPER), *model.units(BROKER), *model.units(PROXY)]:
        assert read(model, unit.name, "/pulsar/conf/zookeeper-ca.pem").strip() == ca
        assert model.unit(unit.name).status.name == "active"
    started = time.monotonic()
    workload.round_trip([f"zk-tls-{n}".encode() for n in range(10)])
    record("zk_tls.round_trip_after_s", time.monotonic() - started)
    # through the proxy, whose ZooKeeper client now speaks TLS (the policies it authorizes with)
    workload.round_trip(
        [f"zk-tls-proxy-{n}".encode() for n in range(10)],
        url=f"pulsar://{unit_fqdn(PROXY, 0)}:6650",
    )


class _KazooConnects(logging.Handler):
    """kazoo's "Connecting to host(ip):port, use_ssl: bool" records (the charm's sessions:
    only the ZooKeeper charm uses kazoo, in the rig's process)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.connects: list[tuple[int, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("Connecting to") and isinstance(record.args, tuple):
            _host, _ip, port, use_ssl = record.args
            self.connects.append((int(str(port)), bool(use_ssl)))


def test_the_charms_super_user_session_goes_over_tls(zk_secure: Model):
    """A new client's chroot and ACLs are made by the leader's super-user session, which adds
    the super user's digest credential in the clear: with TLS on it goes to 2182 over TLS."""
    model = zk_secure
    capture = _KazooConnects()
    logger = logging.getLogger("kazoo.client")  # connection.py logs as kazoo.client
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(capture)
    try:
        model.deploy(THIRD, RigZooKeeperClientCharm, config={"chroot": "/third-app"})
        relation = model.integrate(f"{ZOOKEEPER}:zookeeper", f"{THIRD}:zookeeper")
        model.settle(timeout=600)
        assert model.unit(f"{THIRD}/0").status.name == "active", model.status_table()
        data = model.app_data(relation.id, ZOOKEEPER)
        assert all(e.endswith(":2182") for e in data["endpoints"].split(",")), data
        model.remove_relation(relation.id)  # the leader revokes the ACLs: a session again
        model.settle(until=lambda: True, timeout=600)  # the client app is blocked: no relation
        model.remove_unit(THIRD)
        model.settle(timeout=600)
    finally:
        logger.removeHandler(capture)
        logger.setLevel(previous)
    record("zk_tls.super_user_sessions", len(capture.connects))
    assert len(capture.connects) >= 2, capture.connects
    assert set(capture.connects) == {(2182, True)}, capture.connects


def fingerprints(pem: str) -> frozenset[bytes]:
    """The SHA-256 fingerprints of every certificate of a PEM text (none if unreadable)."""
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return frozenset()
    return frozenset(c.fingerprint(hashes.SHA256()) for c in certificates)


def zk_trust(model: Model, unit: str) -> frozenset[bytes]:
    return fingerprints(read(model, unit, "/pulsar/conf/tls/ca.pem"))


def client_bundles(model: Model) -> list[frozenset[bytes]]:
    """What ZooKeeper's clients trust: the relation's ``tls-ca`` and each client's file."""
    bundles = []
    for relation in model.relations_of(ZOOKEEPER, "zookeeper"):
        data = model.app_data(relation.id, ZOOKEEPER)
        if data:
            bundles.append(fingerprints(model.secret(data["secret-tls"]).content()["tls-ca"]))
    for unit in [*model.units(BOOKKEEPER), *model.units(BROKER), *model.units(PROXY)]:
        bundles.append(fingerprints(read(model, unit.name, "/pulsar/conf/zookeeper-ca.pem")))
    return bundles


def everything_on_ca(model: Model, ca: str) -> bool:
    """Every server presents a certificate from ``ca`` and trusts only it; so do the clients."""
    if not model.all_active():
        return False
    only = fingerprints(ca)
    for unit in model.units(ZOOKEEPER):
        if zk_trust(model, unit.name) != only:
            return False
        leaf = read(model, unit.name, "/pulsar/conf/tls/certificate.pem")
        issued = x509.load_pem_x509_certificate(leaf.encode()) if leaf else None
        if issued is None or issued.issuer != x509.load_pem_x509_certificate(ca.encode()).subject:
            return False
    return all(bundle == only for bundle in client_bundles(model))


class TrustSampler:
    """Samples each ZooKeeper server's trust file in the background (every ``period`` s)."""

    def __init__(self, model: Model, period: float = 0.5):
        self.model = model
        self.period = period
        self.units = [u.name for u in model.units(ZOOKEEPER)]
        self.seen: dict[str, set[frozenset[bytes]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rig-trust")

    def start(self) -> TrustSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            for name in self.units:
                trust = zk_trust(self.model, name)
                if trust:
                    self.seen.setdefault(name, set()).add(trust)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.mark.extended
def test_a_ca_rotation_keeps_the_quorum_and_ends_on_the_new_ca(zk_secure: Model):
    from tests.cluster.test_scenarios_slow import ZnodeWriter

    model = zk_secure
    old_ca = provider_ca(model)
    zookeepers = model.units(ZOOKEEPER)
    password = model.secret("zookeeper-internal", owner=ZOOKEEPER).content()["super-password"]
    # the quorum, seen through the plain client port (SASL as super): every write must land;
    # 2181 is reopened for this plain-text writer (the option), and closed again at the end
    model.config(ZOOKEEPER, **{"tls-plaintext-enabled": True})
    model.settle(until=lambda: plain_port_everywhere(model, "open"), timeout=300)
    writer = ZnodeWriter(",".join(f"{zk_fqdn(u.number)}:2181" for u in zookeepers), password)
    watcher = workload.PidWatcher(
        {u.name: (u.pod, "zookeeper", lambda n=u.number: server_answers(n)) for u in zookeepers}
    ).start()
    sampler = TrustSampler(model).start()
    producer = workload.BackgroundProducer().start()
    writer.start()
    try:
        producer.wait_acks(len(producer.acked) + 50)
        started = time.monotonic()
        model.config(TLS_APP, **{"ca-common-name": "rig-ca-2"})
        model.settle(
            until=lambda: (
                provider_ca(model) != old_ca and everything_on_ca(model, provider_ca(model))
            ),
            timeout=1500,
        )
        new_ca = provider_ca(model)
        record("zk_tls.ca_rotation_s", time.monotonic() - started)
        producer.wait_acks(len(producer.acked) + 50)
    finally:
        producer.stop()
        sampler.stop()
        watcher.stop()
        children = writer.stop()
    model.config(ZOOKEEPER, **{"tls-plaintext-enabled": False})
    model.settle(until=lambda: plain_port_everywhere(model, "closed"), timeout=300)
    record("zk_tls.ca_rotation_publish_gap_s", producer.longest_gap(since=started))
    restarts = {u.name: len(watcher.pids(u.name)) - 1 for u in zookeepers}
    record("zk_tls.ca_rotation_restarts_per_server", max(restarts.values()))
    record("zk_tls.ca_rotation_writes", writer.writes)
    record("zk_tls.ca_rotation_write_retries", writer.retries)
    record("zk_tls.ca_rotation_longest_write_gap_s", writer.longest_gap())
    # the quorum was never lost: never two servers down at once, every write went through
    downs = sorted((a, b, u.name) for u in zookeepers for a, b in watcher.down_intervals(u.name))
    for (_, a1, ua), (b0, _, ub) in itertools.pairwise(downs):
        assert ua == ub or b0 >= a1 - 0.5, (downs, restarts)
    assert writer.failed == [], writer.failed[:5]
    assert children == writer.writes, (children, writer.writes)
    producer.check_nothing_lost()
    # trust both, then the new one only: every server held both CAs on the way
    both = fingerprints(old_ca) | fingerprints(new_ca)
    for unit in zookeepers:
        assert both in sampler.seen.get(unit.name, set()), (unit.name, sampler.seen)
    assert max(restarts.values()) <= 3, restarts
    # a real handshake: each server presents the new CA's chain, verified against it alone
    trusting_new = ssl.create_default_context(cadata=new_ca)
    for unit in zookeepers:
        issuer, _ = handshake(zk_fqdn(unit.number), 2182, trusting_new)
        assert "CN=rig-ca-2" in issuer.split(","), issuer
    workload.round_trip([f"zk-ca-rotated-{n}".encode() for n in range(5)])


def everything_plain(model: Model) -> bool:
    if not model.all_active() or quorum_stage(model) != "off":
        return False
    if not plain_port_everywhere(model, "open"):
        return False
    if any("secureClientPort" in zk_conf(model, u.name) for u in model.units(ZOOKEEPER)):
        return False
    return all(
        ":2181" in read(model, u.name, path)
        for u, path in [
            *((u, "/pulsar/conf/bookkeeper.conf") for u in model.units(BOOKKEEPER)),
            *((u, "/pulsar/conf/broker.conf") for u in model.units(BROKER)),
            *((u, "/pulsar/conf/proxy.conf") for u in model.units(PROXY)),
        ]
    )


@pytest.mark.extended
def test_removing_the_certificates_relation_returns_to_plain_text(zk_secure: Model):
    model = zk_secure
    assert plain_client_port(model) == "closed"
    (relation,) = model.relations_of(TLS_APP, "certificates")
    producer = workload.BackgroundProducer().start()
    try:
        producer.wait_acks(50)
        started = time.monotonic()
        model.remove_relation(relation.id)
        model.settle(until=lambda: everything_plain(model), timeout=900)
        record("zk_tls.disable_to_all_plain_s", time.monotonic() - started)
        producer.wait_acks(len(producer.acked) + 50)
    finally:
        producer.stop()
    record("zk_tls.disable_publish_gap_s", producer.longest_gap(since=started))
    producer.check_nothing_lost()
    for unit in model.units(ZOOKEEPER):
        conf = zk_conf(model, unit.name)
        assert (conf.get("sslQuorum"), conf.get("portUnification")) == ("false", "false"), conf
        with pytest.raises(OSError):
            socket.create_connection((zk_fqdn(unit.number), 2182), timeout=5).close()
    for zk_relation in model.relations_of(ZOOKEEPER, "zookeeper"):
        data = model.app_data(zk_relation.id, ZOOKEEPER)
        if data:
            assert all(e.endswith(":2181") for e in data["endpoints"].split(",")), data
            tls = model.secret(data["secret-tls"]).content()
            assert tls.get("tls") == "disabled", tls
