"""TLS through the ``certificates`` relation, on the real broker (issue 9, first increment).

The settled bundle (module scope), under the rig's producer, plus ``tls``, a self-signed CA
application (``tls_provider_charm/``, the provider side of charmlibs-interfaces-tls-certificates),
related to ``pulsar-k8s:certificates``, and a test client ``client-tls`` on ``pulsar-k8s:pulsar``.
The tests run in order and share the model:

1. with ``tls-plaintext-enabled`` true (the migration path of docs/how-to/enable-tls.md) the
   broker gets its certificate and restarts with TLS under a producer on ``pulsar://``: nothing
   acknowledged is lost, the publish gap is recorded; then ``tls-plaintext-enabled`` false closes
   6650 (a second restart); the relation carries a CSR for the unit and the signed certificate;
2. real TLS handshakes (Python ``ssl``, trusting only the provider's CA) on 6651 and 8443: the
   chain verifies and the SANs are the unit's pod name and the Service name; a handshake that
   trusts only the system CAs fails; the plain-text binary port 6650 refuses connections, and
   so does the plain HTTP port 8080: the broker's Pebble checks are up over 8443 (curl trusting
   the CA), the charm's admin calls work (an action creates a tenant; the leader wrote the TLS
   URLs into the cluster's metadata record), and ``/metrics`` scrapes over HTTPS with the CA;
3. the client relation publishes ``pulsar+ssl://`` / ``https://`` / ``wss://`` URLs and the CA
   (in the TLS secret the client asked for); the client charm produces and consumes over
   ``pulsar+ssl`` with that CA and host-name verification;
4. a renewal (the provider signs the same request again) reaches the broker without a restart:
   Pulsar re-reads the PEM files (``tlsCertRefreshCheckDurationSec``);
5. a CA rotation (a new CA signs the request): the broker serves the new chain without a
   restart, the client relation publishes the new CA and the client moves messages trusting it;
6. a proxy (fixture ``tls_proxy``: pulsar-proxy-k8s related to the TLS brokers, whose 6650 is
   closed, and to the CA; a client ``client-ptls`` on the PROXY's ``pulsar`` endpoint): the
   brokers offer their TLS URLs and CA, the proxy reaches them over TLS only; handshakes on the
   proxy's 6651 and 8443 verify the chain and SANs, its 6650 refuses; the client gets the
   proxy's ``pulsar+ssl``/``https``/``wss`` URLs and CA and moves messages through the proxy
   with its relation token, over the binary protocol and over WebSocket (wss);
7. the proxy's own certificate under a producer through the proxy over ``pulsar+ssl`` whose
   client trusts the relation's ``tls-ca`` as it is updated: a renewal is served at once, a CA
   rotation publishes both CAs before the proxy presents the new one, then the new one alone;
   no acknowledged message lost, no handshake (trusting what the relation publishes) refused.

BookKeeper (still under the producer, before 6650 closes): ``tls`` is related to
``bookkeeper-k8s:certificates`` too; each bookie restarts once onto TLS (one at a time), then
the ``bookkeeper`` relation says ``tls`` and the broker restarts once with its BookKeeper client
on TLS. The test after (1) proves it on the real workload: a real ``START_TLS`` exchange on each
bookie's port, then a TLS handshake verified against the CA only (the pod and Service names as
SANs), the broker's log of its TLS connections to the bookies, and messages going round.
"""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import struct
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import ops
import pytest
from cryptography import x509

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, PROXY, small_config
from tests.cluster.rig_juju import Model
from tests.cluster.rig_net import service_fqdn, unit_fqdn

sys.path.insert(0, str(Path(__file__).parent / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # pyright: ignore[reportMissingImports]

TLS_APP = "tls"
CLIENT = "client-tls"
NAMESPACE = "secure/orders"
UNIT_FQDN = f"{BROKER}-0.{BROKER}-endpoints.rig.svc.cluster.local"
SERVICE_FQDN = f"{BROKER}.rig.svc.cluster.local"
BROKER_CONF = "/pulsar/conf/broker.conf"


def broker_active_with_tls(model: Model) -> bool:
    if model.unit(f"{BROKER}/0").status.name != "active":
        return False
    try:
        return "brokerServicePortTls=6651" in model.pod(f"{BROKER}/0").read(BROKER_CONF)
    except Exception:  # not pushed yet, or Pebble restarting
        return False


def plaintext_closed(model: Model) -> bool:
    try:
        return "brokerServicePort=\n" in model.pod(f"{BROKER}/0").read(BROKER_CONF)
    except Exception:
        return False


def client_active(model: Model) -> bool:
    status = model.unit(f"{CLIENT}/0").status
    return status.name == "active" and NAMESPACE in status.message


def certificates_relation(model: Model, app: str = BROKER):
    (relation,) = [
        r for r in model.relations_of(TLS_APP, "certificates") if r.remote_app(TLS_APP) == app
    ]
    return relation


def provider_certificates(model: Model, app: str = BROKER) -> list[dict[str, Any]]:
    relation = certificates_relation(model, app)
    return json.loads(model.app_data(relation.id, TLS_APP).get("certificates") or "[]")


def provider_ca(model: Model, app: str = BROKER) -> str:
    """The CA of the certificates issued to ``app`` (one per unit, all from the same CA)."""
    (ca,) = {certificate["ca"] for certificate in provider_certificates(model, app)}
    return ca


def handshake(host: str, port: int, context: ssl.SSLContext) -> dict[str, Any]:
    with (
        socket.create_connection((host, port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return {
            "serial": cert.serial_number,
            "version": tls.version(),
            "issuer": cert.issuer.rfc4514_string(),
            "sans": set(sans.value.get_values_for_type(x509.DNSName)),
        }


BOOKIE_CONF = "/pulsar/conf/bookkeeper.conf"
BOOKIE_SERVICE_FQDN = f"{BOOKKEEPER}.rig.svc.cluster.local"
# BookKeeper's v3 START_TLS request (BookkeeperProtocol.proto): Request{header=BKPacketHeader{
# version=VERSION_THREE(3), operation=START_TLS(9), txnId=1}, startTLSRequest(106)={}},
# length-prefixed as on the wire.
_START_TLS = bytes.fromhex("0a06080310091801d20600")
START_TLS_FRAME = struct.pack(">i", len(_START_TLS)) + _START_TLS


def bookie_fqdn(number: int) -> str:
    return f"{BOOKKEEPER}-{number}.{BOOKKEEPER}-endpoints.rig.svc.cluster.local"


def bookies_serve_tls(model: Model) -> bool:
    """Every bookie active with TLS in its config, and the broker's BookKeeper client on TLS."""
    try:
        for unit in model.units(BOOKKEEPER):
            if unit.status.name != "active" or "tlsProviderFactoryClass=" not in unit.pod.read(
                BOOKIE_CONF
            ):
                return False
        conf = model.pod(f"{BROKER}/0").read(BROKER_CONF)
    except Exception:  # not pushed yet, or Pebble restarting
        return False
    return (
        "bookkeeperTLSClientAuthentication=true" in conf
        and model.unit(f"{BROKER}/0").status.name == "active"
    )


def enable_bookkeeper_tls(model: Model, producer: workload.BackgroundProducer) -> None:
    """Relate the CA to the bookies under ``producer``: one bookie down at a time."""
    bookies = model.units(BOOKKEEPER)
    watcher = workload.PidWatcher({u.name: (u.pod, "bookie", None) for u in bookies}).start()
    try:
        started = time.monotonic()
        model.integrate(f"{BOOKKEEPER}:certificates", f"{TLS_APP}:certificates")
        model.settle(until=lambda: bookies_serve_tls(model), timeout=400)
        record("bk_tls.enable_to_active_s", time.monotonic() - started)
        producer.wait_acks(len(producer.acked) + 50)
    finally:
        watcher.stop()
    restarts = {u.name: len(watcher.pids(u.name)) - 1 for u in bookies}
    assert set(restarts.values()) == {1}, restarts  # each bookie restarted once
    downs = sorted((a, b, u.name) for u in bookies for a, b in watcher.down_intervals(u.name))
    for (_, a1, ua), (b0, _, ub) in itertools.pairwise(downs):
        assert ua == ub or b0 >= a1 - 0.5, downs  # never two bookies down at once
    record("bk_tls.longest_bookie_down_s", max((b - a for a, b, _ in downs), default=0.0))


@pytest.fixture(scope="module")
def secure(bundle: Model) -> Model:
    from pulsar_client_test_charm import PulsarClientTestCharm  # type: ignore[import-not-found]

    model = bundle
    # Without TLS the option changes nothing (no restart); it keeps 6650 open while TLS comes.
    model.config(BROKER, **{"tls-plaintext-enabled": True})
    model.deploy(TLS_APP, RigTlsProviderCharm)
    model.deploy(CLIENT, PulsarClientTestCharm, config={"namespace": NAMESPACE})
    producer = workload.BackgroundProducer().start()
    try:
        producer.wait_acks(50)
        started = time.monotonic()
        model.integrate(f"{BROKER}:certificates", f"{TLS_APP}:certificates")
        model.integrate(f"{BROKER}:pulsar", f"{CLIENT}:pulsar")
        model.settle(
            until=lambda: broker_active_with_tls(model) and client_active(model), timeout=300
        )
        record("tls.enable_to_active_s", time.monotonic() - started)
        producer.wait_acks(len(producer.acked) + 50)
        bookies_started = time.monotonic()
        enable_bookkeeper_tls(model, producer)
    finally:
        producer.stop()
    record("tls.enable_publish_gap_s", producer.longest_gap(since=started, until=bookies_started))
    record("bk_tls.enable_publish_gap_s", producer.longest_gap(since=bookies_started))
    producer.check_nothing_lost()  # read back over 6650, still open
    closing = time.monotonic()
    model.config(BROKER, **{"tls-plaintext-enabled": False})
    model.settle(until=lambda: broker_active_with_tls(model) and plaintext_closed(model))
    record("tls.plaintext_off_to_active_s", time.monotonic() - closing)
    return model


def test_broker_gets_a_certificate_and_serves_tls(secure: Model):
    model = secure
    relation = certificates_relation(model)
    requests = json.loads(
        model.unit_data(relation.id, f"{BROKER}/0").get("certificate_signing_requests") or "[]"
    )
    assert len(requests) == 1 and requests[0]["ca"] is False, requests
    csr = x509.load_pem_x509_csr(requests[0]["certificate_signing_request"].encode())
    csr_sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert {UNIT_FQDN, SERVICE_FQDN} <= set(csr_sans.value.get_values_for_type(x509.DNSName))
    (issued,) = provider_certificates(model)
    assert (
        issued["certificate_signing_request"].strip()
        == requests[0]["certificate_signing_request"].strip()
    )
    # The key never left the unit except in its own secret: not in any databag.
    assert "PRIVATE KEY" not in json.dumps(model.relation(relation.id).app_data)
    assert "PRIVATE KEY" not in json.dumps(model.unit_data(relation.id, f"{BROKER}/0"))
    key = model.pod(f"{BROKER}/0").read("/pulsar/conf/tls/private-key.pem") or ""
    assert key.startswith("-----BEGIN PRIVATE KEY-----"), "PKCS#8 for Pulsar"


def test_every_tls_listener_serves_the_ca_chain_and_the_plain_port_is_closed(secure: Model):
    model = secure
    ca = provider_ca(model)
    trusting_ca = ssl.create_default_context(cadata=ca)
    for port in (6651, 8443):
        seen = handshake(UNIT_FQDN, port, trusting_ca)
        assert "CN=rig-ca" in seen["issuer"].split(","), seen
        assert {UNIT_FQDN, SERVICE_FQDN} <= seen["sans"], seen
        assert seen["version"] in ("TLSv1.2", "TLSv1.3"), seen
        # The Service name is covered too (it is what the client relation publishes).
        handshake(SERVICE_FQDN, port, trusting_ca)
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(UNIT_FQDN, port, ssl.create_default_context())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((UNIT_FQDN, 6650), timeout=5).close()
    assert model.unit(f"{BROKER}/0").status.name == "active"


def https_get(path: str, ca: str, token: str | None = None) -> tuple[int, bytes]:
    """GET ``https://<unit>:8443<path>`` verifying the chain against ``ca`` and the host name."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"https://{UNIT_FQDN}:8443{path}", headers=headers)
    context = ssl.create_default_context(cadata=ca)
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return response.status, response.read()


def test_plain_http_is_closed_and_the_charm_works_over_8443(secure: Model):
    model = secure
    conf = model.pod(f"{BROKER}/0").read(BROKER_CONF)
    assert "webServicePort=\n" in conf and "webServicePortTls=8443\n" in conf, conf
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((UNIT_FQDN, 8080), timeout=5).close()
    # every check of the broker goes over 8443 (real curl, real TLS): alive and ready are up;
    # the view check (an event source: it fails whenever the charm's record is stale) passes
    client = model.pod(f"{BROKER}/0").client()
    plan = client.get_plan().to_dict().get("checks", {})
    for name in ("broker-alive", "broker-ready", "broker-view"):
        assert f"https://{UNIT_FQDN}:8443/" in json.dumps(plan[name]), plan[name]
    model.run_for(6)  # a few check periods; the unit stays active

    def checks() -> dict[str, ops.pebble.CheckInfo]:
        return {check.name: check for check in client.get_checks()}

    # A run may time out on a loaded machine (the CI of c423b0d saw one failure, under the
    # threshold of 3); what counts is that every check passes over 8443 and none went down.
    model.wait_for(
        lambda: all((checks()[n].successes or 0) > 0 for n in ("broker-ready", "broker-view")),
        timeout=60,
    )
    states = checks()
    for name in ("broker-alive", "broker-ready"):
        assert states[name].status == ops.pebble.CheckStatus.UP, states[name]
    assert model.unit(f"{BROKER}/0").status.name == "active"
    # the charm's own admin calls: an action, and the leader's cluster record
    started = time.monotonic()
    model.run_action(f"{BROKER}/0", "create-tenant", {"tenant": "over-https"})
    record("tls.admin_action_over_https_s", time.monotonic() - started)
    ca = provider_ca(model)
    token = model.secret("pulsar-internal", owner=BROKER).content()["admin-token"]
    status, body = https_get("/admin/v2/tenants", ca, token)
    assert status == 200 and "over-https" in json.loads(body), body
    status, body = https_get("/admin/v2/clusters/pulsar", ca, token)
    cluster = json.loads(body)
    assert cluster["serviceUrlTls"] == f"https://{SERVICE_FQDN}:8443", cluster
    assert cluster["brokerServiceUrlTls"] == f"pulsar+ssl://{SERVICE_FQDN}:6651", cluster
    # Prometheus' view: /metrics/ over HTTPS with the CA (no token: metrics are not authenticated)
    status, body = https_get("/metrics/", ca)
    assert status == 200 and b"pulsar_" in body


def start_tls(host: str, context: ssl.SSLContext) -> dict[str, Any]:
    """BookKeeper's in-band TLS as its client does it: START_TLS, its answer, the handshake."""
    with socket.create_connection((host, 3181), timeout=10) as sock:
        sock.sendall(START_TLS_FRAME)
        (length,) = struct.unpack(">i", _recv_exact(sock, 4))
        response = _recv_exact(sock, length)
        # Response{header (field 1) echoed, status (field 2) EOK = 0, startTLSResponse}
        assert response[0] == 0x0A, response
        status = response[2 + response[1] : 4 + response[1]]
        assert status == b"\x10\x00", f"START_TLS refused: {response.hex()}"
        with context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            cert = x509.load_der_x509_certificate(der)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            return {
                "version": tls.version(),
                "issuer": cert.issuer.rfc4514_string(),
                "sans": set(sans.value.get_values_for_type(x509.DNSName)),
            }


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def test_bookies_serve_tls_and_the_broker_talks_tls_to_them(secure: Model):
    model = secure
    ca = provider_ca(model)
    assert provider_ca(model, BOOKKEEPER) == ca
    trusting_ca = ssl.create_default_context(cadata=ca)
    for unit in model.units(BOOKKEEPER):
        host = bookie_fqdn(unit.number)
        seen = start_tls(host, trusting_ca)
        assert "CN=rig-ca" in seen["issuer"].split(","), seen
        assert {host, BOOKIE_SERVICE_FQDN} <= seen["sans"], seen
        assert seen["version"] in ("TLSv1.2", "TLSv1.3"), seen
        with pytest.raises(ssl.SSLCertVerificationError):
            start_tls(host, ssl.create_default_context())
        # the bookie logged the handshakes it completed
        assert "Session is protected by" in unit.pod.service_logs(lines=3000)
        # the key stays in the unit (its secret and this 0600 PKCS#8 file)
        key = unit.pod.read("/pulsar/conf/tls/private-key.pem")
        assert key.startswith("-----BEGIN PRIVATE KEY-----")
    # the relation tells the brokers, with the CA
    (relation,) = model.relations_of(BOOKKEEPER, "bookkeeper")
    data = model.app_data(relation.id, BOOKKEEPER)
    assert data["tls"] == "enabled" and data["tls-ca"].strip() == ca.strip(), data
    # the broker's BookKeeper client starts TLS, trusting that CA (the v2 protocol inside)
    broker = model.pod(f"{BROKER}/0")
    conf = broker.read(BROKER_CONF)
    for line in (
        "bookkeeperTLSProviderFactoryClass=org.apache.bookkeeper.tls.TLSContextFactory",
        "bookkeeperTLSTrustCertsFilePath=/pulsar/conf/tls/bookkeeper-ca.pem",
        "bookkeeperTLSTrustCertTypes=PEM",
    ):
        assert line in conf.splitlines(), line
    assert broker.read("/pulsar/conf/tls/bookkeeper-ca.pem").strip() == ca.strip()
    # and messages written through those connections go round (the client over pulsar+ssl)
    topic = f"bk-tls-{uuid.uuid4().hex[:8]}"
    sent = model.run_action(
        f"{CLIENT}/0", "produce", {"topic": topic, "count": 5, "payload-prefix": "b"}
    )
    assert int(sent["count"]) == 5, sent
    got = model.run_action(
        f"{CLIENT}/0", "consume", {"topic": topic, "count": 5, "timeout-seconds": 30}
    )
    assert int(got["count"]) == 5 and got["last-payload"] == "b-4", got
    # the broker (restarted when 6650 closed) opened its bookie connections for them: over TLS
    deadline = time.monotonic() + 30
    while "Successfully connected to bookie using TLS" not in broker.service_logs(lines=20000):
        assert time.monotonic() < deadline, "the broker logged no TLS connection to a bookie"
        time.sleep(1)


def test_client_gets_tls_urls_and_the_ca_and_moves_messages_over_tls(secure: Model):
    model = secure
    (relation,) = model.relations_of(CLIENT, "pulsar")
    data = model.app_data(relation.id, BROKER)
    assert data["broker-service-url"] == f"pulsar+ssl://{SERVICE_FQDN}:6651", data
    assert data["web-service-url"] == f"https://{SERVICE_FQDN}:8443", data
    assert data["websocket-url"] == f"wss://{SERVICE_FQDN}:8443/ws/v2", data
    tls = model.secret(data["secret-tls"]).content()
    assert tls == {"tls": "enabled", "tls-ca": provider_ca(model).strip() + "\n"}, tls

    topic = f"tls-{uuid.uuid4().hex[:8]}"
    count = 10
    started = time.monotonic()
    sent = model.run_action(
        f"{CLIENT}/0", "produce", {"topic": topic, "count": count, "payload-prefix": "t"}
    )
    assert int(sent["count"]) == count, sent
    got = model.run_action(
        f"{CLIENT}/0", "consume", {"topic": topic, "count": count, "timeout-seconds": 30}
    )
    assert int(got["count"]) == count, got
    assert got["first-payload"] == "t-0" and got["last-payload"] == f"t-{count - 1}", got
    record("tls.client_round_trip_s", time.monotonic() - started)


def served_serial(ca: str, port: int = 6651) -> int | None:
    """The serial of the certificate ``port`` serves, if it verifies against ``ca``."""
    try:
        return handshake(UNIT_FQDN, port, ssl.create_default_context(cadata=ca))["serial"]
    except (OSError, ssl.SSLError):
        return None


def wait_served(model: Model, ca: str, serial: int, timeout: float = 150) -> float:
    """Let time pass (Juju's events delivered) until 6651 and 8443 serve ``serial``."""
    started = time.monotonic()
    while any(served_serial(ca, port) != serial for port in (6651, 8443)):
        assert time.monotonic() - started < timeout, f"serial {serial} not served in {timeout}s"
        model.run_for(5)
    return time.monotonic() - started


def issued_serial(model: Model) -> int:
    (issued,) = provider_certificates(model)
    return x509.load_pem_x509_certificate(issued["certificate"].encode()).serial_number


def test_renewal_is_served_without_a_restart(secure: Model):
    model = secure
    pid = model.pod(f"{BROKER}/0").service_pid("broker")
    ca = provider_ca(model)
    before = issued_serial(model)
    assert served_serial(ca) == before
    model.config(TLS_APP, **{"certificate-validity-hours": 48})
    model.settle(until=lambda: issued_serial(model) != before, timeout=120)
    record("tls.renewal_reload_s", wait_served(model, ca, issued_serial(model)))
    assert model.pod(f"{BROKER}/0").service_pid("broker") == pid, "renewal restarted the broker"
    assert model.unit(f"{BROKER}/0").status.name == "active"


def test_ca_rotation_is_served_and_published_without_a_restart(secure: Model):
    model = secure
    pid = model.pod(f"{BROKER}/0").service_pid("broker")
    old_ca = provider_ca(model)
    model.config(TLS_APP, **{"ca-common-name": "rig-ca-2"})
    model.settle(until=lambda: provider_ca(model) != old_ca, timeout=120)
    new_ca = provider_ca(model)
    # the broker trusts both CAs first (the client relation publishes both), presents the new
    # certificate once it has re-read that bundle, then drops the old CA (three settle periods)
    record(
        "tls.ca_rotation_reload_s", wait_served(model, new_ca, issued_serial(model), timeout=300)
    )
    seen = handshake(UNIT_FQDN, 8443, ssl.create_default_context(cadata=new_ca))
    assert "CN=rig-ca-2" in seen["issuer"].split(","), seen
    assert model.pod(f"{BROKER}/0").service_pid("broker") == pid, "rotation restarted the broker"

    (relation,) = model.relations_of(CLIENT, "pulsar")
    secret_id = model.app_data(relation.id, BROKER)["secret-tls"]
    model.settle(
        until=lambda: (
            model.secret(secret_id).content().get("tls-ca", "").strip() == new_ca.strip()
        ),
        timeout=240,
    )
    topic = f"rotated-{uuid.uuid4().hex[:8]}"
    sent = model.run_action(
        f"{CLIENT}/0", "produce", {"topic": topic, "count": 3, "payload-prefix": "r"}
    )
    assert int(sent["count"]) == 3, sent
    got = model.run_action(
        f"{CLIENT}/0", "consume", {"topic": topic, "count": 3, "timeout-seconds": 30}
    )
    assert int(got["count"]) == 3, got


# -- a proxy in front of the TLS brokers, with its own certificate ----------------------------

PROXY_CLIENT = "client-ptls"
PROXY_NAMESPACE = "proxied/orders"
PROXY_UNIT_FQDN = unit_fqdn(PROXY, 0)
PROXY_SERVICE_FQDN = service_fqdn(PROXY)
PROXY_CONF = "/pulsar/conf/proxy.conf"


def proxy_serving_tls(model: Model) -> bool:
    if model.unit(f"{PROXY}/0").status.name != "active":
        return False
    try:
        conf = model.pod(f"{PROXY}/0").read(PROXY_CONF) or ""
    except Exception:  # not pushed yet, or Pebble restarting
        return False
    return "servicePortTls=6651" in conf and "tlsEnabledWithBroker=true" in conf


def proxy_client_active(model: Model) -> bool:
    status = model.unit(f"{PROXY_CLIENT}/0").status
    return status.name == "active" and PROXY_NAMESPACE in status.message


def provider_certificates_of(model: Model, app: str) -> dict[str, Any]:
    """The certificate the CA application issued to ``app``'s unit 0 (its own relation)."""
    (relation,) = model.relations_of(app, "certificates")
    (certificate,) = json.loads(model.app_data(relation.id, TLS_APP).get("certificates") or "[]")
    return certificate


def proxy_ca(model: Model) -> str:
    return provider_certificates_of(model, PROXY)["ca"]


@pytest.fixture(scope="module")
def tls_proxy(secure: Model) -> Model:
    from proxy_charm import PulsarProxyCharm  # type: ignore[import-not-found]
    from pulsar_client_test_charm import PulsarClientTestCharm  # type: ignore[import-not-found]

    model = secure
    started = time.monotonic()
    model.deploy(PROXY, PulsarProxyCharm, config=small_config(PROXY, PulsarProxyCharm))
    # The certificate first: the proxy then starts once, with TLS (no half TLS, no restart).
    model.integrate(f"{PROXY}:certificates", f"{TLS_APP}:certificates")
    model.integrate(f"{BROKER}:pulsar-proxy", f"{PROXY}:pulsar-proxy")
    model.deploy(PROXY_CLIENT, PulsarClientTestCharm, config={"namespace": PROXY_NAMESPACE})
    model.integrate(f"{PROXY}:pulsar", f"{PROXY_CLIENT}:pulsar")
    model.settle(
        until=lambda: proxy_serving_tls(model) and proxy_client_active(model), timeout=300
    )
    record("proxy_tls.ready_s", time.monotonic() - started)
    return model


def test_proxy_reaches_tls_only_brokers_and_serves_tls_with_the_ca_chain(tls_proxy: Model):
    model = tls_proxy
    # The brokers' plain-text port is closed: the proxy can only be reaching them over TLS.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((UNIT_FQDN, 6650), timeout=5).close()
    (relation,) = model.relations_of(PROXY, "pulsar-proxy")
    offer = model.app_data(relation.id, BROKER)
    assert offer["broker-service-url-tls"] == f"pulsar+ssl://{SERVICE_FQDN}:6651", offer
    assert offer["web-service-url-tls"] == f"https://{SERVICE_FQDN}:8443", offer
    broker_ca = provider_certificates_of(model, BROKER)["ca"]
    assert offer["tls-ca"].strip() == broker_ca.strip()
    conf = model.pod(f"{PROXY}/0").read(PROXY_CONF) or ""
    assert "tlsEnabledWithBroker=true" in conf and "tlsHostnameVerificationEnabled=true" in conf
    assert "servicePort=\n" in conf, "tls-plaintext-enabled defaults to false: 6650 closed"

    ca = proxy_ca(model)
    trusting_ca = ssl.create_default_context(cadata=ca)
    for port in (6651, 8443):
        seen = handshake(PROXY_UNIT_FQDN, port, trusting_ca)
        assert {PROXY_UNIT_FQDN, PROXY_SERVICE_FQDN} <= seen["sans"], seen
        assert seen["version"] in ("TLSv1.2", "TLSv1.3"), seen
        handshake(PROXY_SERVICE_FQDN, port, trusting_ca)  # what the client relation publishes
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(PROXY_UNIT_FQDN, port, ssl.create_default_context())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((PROXY_UNIT_FQDN, 6650), timeout=5).close()
    # 8080 closed too: the proxy's checks probe 8443 with curl trusting the CA, and are up
    assert "webServicePort=\n" in conf, conf
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((PROXY_UNIT_FQDN, 8080), timeout=5).close()
    proxy_pebble = model.pod(f"{PROXY}/0").client()
    plan = proxy_pebble.get_plan().to_dict().get("checks", {})
    states = {check.name: check for check in proxy_pebble.get_checks()}
    for name in ("proxy-alive", "proxy-ready"):
        assert f"https://{PROXY_UNIT_FQDN}:8443/status.html" in json.dumps(plan[name])
        assert states[name].status == ops.pebble.CheckStatus.UP, states[name]
    assert "TLS" in model.unit(f"{PROXY}/0").status.message


def test_a_client_of_the_proxy_moves_messages_through_it_over_tls(tls_proxy: Model):
    model = tls_proxy
    (relation,) = model.relations_of(PROXY_CLIENT, "pulsar")
    data = model.app_data(relation.id, PROXY)
    assert data["broker-service-url"] == f"pulsar+ssl://{PROXY_SERVICE_FQDN}:6651", data
    assert data["web-service-url"] == f"https://{PROXY_SERVICE_FQDN}:8443", data
    assert data["websocket-url"] == f"wss://{PROXY_SERVICE_FQDN}:8443/ws/v2", data
    tls = model.secret(data["secret-tls"]).content()
    assert tls == {"tls": "enabled", "tls-ca": proxy_ca(model).strip() + "\n"}, tls

    topic = f"ptls-{uuid.uuid4().hex[:8]}"
    count = 10
    started = time.monotonic()
    sent = model.run_action(
        f"{PROXY_CLIENT}/0", "produce", {"topic": topic, "count": count, "payload-prefix": "p"}
    )
    assert int(sent["count"]) == count, sent
    got = model.run_action(
        f"{PROXY_CLIENT}/0", "consume", {"topic": topic, "count": count, "timeout-seconds": 30}
    )
    assert int(got["count"]) == count, got
    assert got["first-payload"] == "p-0" and got["last-payload"] == f"p-{count - 1}", got
    record("proxy_tls.client_round_trip_s", time.monotonic() - started)


def test_websocket_over_tls_through_the_proxy_to_tls_only_brokers(tls_proxy: Model, tmp_path):
    import base64

    import websocket

    model = tls_proxy
    (relation,) = model.relations_of(PROXY_CLIENT, "pulsar")
    data = model.app_data(relation.id, PROXY)
    token = model.secret(data["secret-user"]).content()["token"]
    ca_file = tmp_path / "proxy-ca.pem"
    ca_file.write_text(proxy_ca(model))
    base = f"wss://{PROXY_UNIT_FQDN}:8443/ws/v2"
    path = f"persistent/{PROXY_NAMESPACE}/wss-{uuid.uuid4().hex[:6]}"
    options = {
        "header": [f"Authorization: Bearer {token}"],
        "timeout": 20,
        "sslopt": {"ca_certs": str(ca_file), "check_hostname": True},
    }
    started = time.monotonic()
    consumer = websocket.create_connection(f"{base}/consumer/{path}/wss-sub", **options)
    producer = websocket.create_connection(f"{base}/producer/{path}", **options)
    sent = [f"wss-{i}".encode() for i in range(3)]
    try:
        for payload in sent:
            producer.send(json.dumps({"payload": base64.b64encode(payload).decode()}))
            answer = json.loads(producer.recv())
            assert answer.get("result") == "ok", answer
        got = []
        for _ in sent:
            message = json.loads(consumer.recv())
            got.append(base64.b64decode(message["payload"]))
            consumer.send(json.dumps({"messageId": message["messageId"]}))
    finally:
        producer.close()
        consumer.close()
    assert got == sent
    record("proxy_tls.wss_round_trip_s", time.monotonic() - started)


# -- the proxy's own certificate: a renewal, then a CA rotation, under a client of the proxy --


def _fingerprints(pem: str) -> set[str]:
    """The certificates of a PEM text, whitespace-normalised."""
    blocks = pem.split("-----END CERTIFICATE-----")
    return {"".join(b.split("-----BEGIN CERTIFICATE-----")[-1].split()) for b in blocks[:-1]}


def proxy_client_data(model: Model) -> tuple[str, str, str]:
    """What the proxy's client relation publishes now: (binary URL, tls-ca, token)."""
    (relation,) = model.relations_of(PROXY_CLIENT, "pulsar")
    data = model.app_data(relation.id, PROXY)
    ca = model.secret(data["secret-tls"]).content().get("tls-ca", "")
    token = model.secret(data["secret-user"]).content()["token"]
    return data["broker-service-url"], ca, token


def proxy_issued_serial(model: Model) -> int:
    pem = provider_certificates_of(model, PROXY)["certificate"]
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


class ProxyClientTrust:
    """A client of the proxy that trusts what its relation publishes, as it is updated.

    ``poll`` rewrites the client's CA file when the relation's ``tls-ca`` changes (the Pulsar
    client reads it for each new connection) and, every 2 s, handshakes with the proxy's 6651
    trusting that CA only: a verification failure is a client the rotation broke.
    """

    def __init__(self, model: Model, path: Path):
        self.model = model
        self.path = path
        self.ca = ""
        self.published: list[tuple[float, set[str]]] = []
        self.served: list[tuple[float, str]] = []  # (when, issuer) of each good handshake
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.count = 0
        self._last = 0.0

    def poll(self) -> None:
        _, ca, _ = proxy_client_data(self.model)
        if ca and ca != self.ca:
            staged = self.path.with_suffix(".new")
            staged.write_text(ca)
            staged.replace(self.path)
            self.ca = ca
            self.published.append((time.monotonic(), _fingerprints(ca)))
        if time.monotonic() - self._last < 2.0:
            return
        self._last = time.monotonic()
        self.count += 1
        try:
            seen = handshake(PROXY_UNIT_FQDN, 6651, ssl.create_default_context(cadata=self.ca))
            self.served.append((time.monotonic(), seen["issuer"]))
        except ssl.SSLCertVerificationError as exc:
            self.failed.append(f"{time.monotonic():.1f} {exc}")
        except (OSError, ssl.SSLError) as exc:  # e.g. the proxy restarting
            self.errors.append(f"{time.monotonic():.1f} {exc!r}")

    def served_with(self, ca: str) -> int | None:
        """The serial 6651 serves, if it verifies against ``ca`` alone."""
        try:
            context = ssl.create_default_context(cadata=ca)
            return handshake(PROXY_UNIT_FQDN, 6651, context)["serial"]
        except (OSError, ssl.SSLError):
            return None


def test_the_proxys_own_certificate_renews_and_changes_ca_under_its_client(
    tls_proxy: Model, tmp_path
):
    """The renewal is served at once; a new CA is published with the old one first, served
    once the clients had it, then published alone: nothing acknowledged is lost and no client
    trusting what its relation publishes fails a handshake."""
    model = tls_proxy
    url, _, token = proxy_client_data(model)
    assert url == f"pulsar+ssl://{PROXY_SERVICE_FQDN}:6651", url
    trust = ProxyClientTrust(model, tmp_path / "proxy-client-ca.pem")
    trust.poll()
    producer = workload.BackgroundProducer(
        topic=f"persistent://{PROXY_NAMESPACE}/proxy-ca-{uuid.uuid4().hex[:6]}",
        url=url,
        token=token,
        tls_ca_file=str(trust.path),
        send_timeout_ms=60_000,
    )
    producer.start()
    try:
        producer.wait_acks(50)
        # 1. a renewal (the provider signs the same request again): served without the wait
        before = proxy_issued_serial(model)
        renewing = time.monotonic()
        model.config(TLS_APP, **{"certificate-validity-hours": 50})

        def renewed() -> bool:
            trust.poll()
            issued = proxy_issued_serial(model)
            return issued != before and trust.served_with(trust.ca) == issued

        model.settle(until=renewed, timeout=240)
        record("proxy_tls.renewal_served_s", time.monotonic() - renewing)
        producer.wait_acks(len(producer.acked) + 50)

        # 2. a new CA
        old_ca = proxy_ca(model)
        rotating = time.monotonic()
        model.config(TLS_APP, **{"ca-common-name": "rig-ca-proxy"})

        def new_ca_issued() -> bool:
            trust.poll()
            return proxy_ca(model) != old_ca

        model.settle(until=new_ca_issued, timeout=120)
        new_ca = proxy_ca(model)

        def on_new_ca_alone() -> bool:
            trust.poll()
            return _fingerprints(trust.ca) == _fingerprints(new_ca) and (
                trust.served_with(new_ca) == proxy_issued_serial(model)
            )

        model.settle(until=on_new_ca_alone, timeout=900)
        record("proxy_tls.ca_rotation_to_new_ca_alone_s", time.monotonic() - rotating)
        producer.wait_acks(len(producer.acked) + 50)
    finally:
        producer.stop()
    record("proxy_tls.renewal_publish_gap_s", producer.longest_gap(since=renewing, until=rotating))
    record("proxy_tls.ca_rotation_publish_gap_s", producer.longest_gap(since=rotating))
    record("proxy_tls.ca_rotation_handshakes", trust.count)
    record("proxy_tls.ca_rotation_handshake_errors", len(trust.errors))
    assert not trust.failed, trust.failed[:5]
    # the clients had both CAs before the proxy presented the new one
    old, new = _fingerprints(old_ca), _fingerprints(new_ca)
    both_at = min(t for t, fps in trust.published if old | new <= fps)
    new_at = min(t for t, issuer in trust.served if "CN=rig-ca-proxy" in issuer.split(","))
    assert both_at < new_at, (both_at, new_at)
    record("proxy_tls.ca_rotation_both_cas_to_new_served_s", new_at - both_at)
    assert producer.check_nothing_lost() >= len(producer.acked)
