"""Geo-replication over TLS with plain text closed (issue 9), extended.

Two clusters as in test_geo_replication.py (``alpha``: zk-a/bk-a/pulsar-a, ``beta``:
zk-b/bk-b/pulsar-b; 1 ZooKeeper, 1 bookie, 1 broker each), each broker related to ITS OWN
self-signed CA application (``tls-a``, ``tls-b``: two different CAs) with the default
``tls-plaintext-enabled=false`` (6650 and 8080 closed), then related on
``replication-offer``/``replication``: each side publishes its TLS URLs and CA, every broker
writes the peer's CA to ``/pulsar/conf/tls/replication/<peer>.pem``, each leader registers the
peer with ``brokerServiceUrlTls``, ``brokerClientTlsEnabled`` and that file; a message produced
on one cluster over ``pulsar+ssl`` is consumed on the other, both ways, so each cluster's
replicator trusted the other cluster's CA through the relation alone.
Figures: replication latency each way over TLS (``georep_tls.*``).
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from charms.pulsar_k8s.v0.tls import split_certificates

from tests.cluster.conftest import new_model
from tests.cluster.figures import record
from tests.cluster.rig_juju import Model, RigEnv
from tests.cluster.rig_net import service_fqdn
from tests.cluster.test_geo_replication import (
    CLUSTERS,
    NAMESPACE,
    admin_token,
    apps,
    deploy_cluster,
    receive,
)

pytestmark = pytest.mark.extended

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
PEER = {"a": "b", "b": "a"}


def _provider_charm():
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "tls_provider_charm" / "src"))
    from rig_tls_provider_charm import (  # pyright: ignore[reportMissingImports]
        RigTlsProviderCharm,
    )

    return RigTlsProviderCharm


def provider(side: str) -> str:
    return f"tls-{side}"


def provider_ca(model: Model, side: str) -> str:
    (relation,) = model.relations_of(provider(side), "certificates")
    issued = json.loads(model.app_data(relation.id, provider(side)).get("certificates") or "[]")
    (ca,) = {certificate["ca"] for certificate in issued}
    return ca.strip() + "\n"


def wait_replicating(model: Model) -> None:
    def status(side: str) -> str:
        return model.unit(f"{apps(side)[2]}/0").status.message

    model.settle(
        until=lambda: (
            model.all_active()
            and "replicating with beta" in status("a")
            and "replicating with alpha" in status("b")
            and "replication:" not in status("a") + status("b")
        ),
        timeout=300,
    )


@pytest.fixture(scope="module")
def tls_clusters(rig_env: RigEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Model]:
    m = new_model(rig_env)
    try:
        charm = _provider_charm()
        for side in ("a", "b"):
            deploy_cluster(m, side)
            m.deploy(provider(side), charm, config={"ca-common-name": f"geo-{side}-ca"})
            m.integrate(f"{apps(side)[2]}:certificates", f"{provider(side)}:certificates")
        m.settle(timeout=SETTLE)
        yield m
    except Exception:
        print(f"\n===== rig report (geo-replication over TLS) =====\n{m.report()}")
        raise
    finally:
        m.teardown()


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return True
    return False


def https_get(model: Model, side: str, path: str, ca_file: Path) -> Any:
    import ssl

    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(
        f"https://{service_fqdn(apps(side)[2])}:8443{path}",
        headers={"Authorization": f"Bearer {admin_token(model, side)}"},
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return json.loads(response.read().decode())


def tls_client(model: Model, side: str, ca_file: Path):
    import pulsar

    return pulsar.Client(
        f"pulsar+ssl://{service_fqdn(apps(side)[2])}:6651",
        authentication=pulsar.AuthenticationToken(admin_token(model, side)),
        tls_trust_certs_file_path=str(ca_file),
        tls_validate_hostname=True,
        operation_timeout_seconds=60,
        connection_timeout_ms=5000,
    )


def one_way_tls(model: Model, src: str, dst: str, cas: dict[str, Path]) -> tuple[float, float]:
    """Produced on ``src``, consumed on ``dst``, both over pulsar+ssl: the latency (s) of the
    first message of a new topic and the median of the next four."""
    topic = f"persistent://{NAMESPACE}/tls-{uuid.uuid4().hex[:8]}"
    consumer_client, producer_client = (
        tls_client(model, dst, cas[dst]),
        tls_client(model, src, cas[src]),
    )
    try:
        consumer = consumer_client.subscribe(topic, "geo-tls-test")
        producer = producer_client.create_producer(topic, send_timeout_millis=60_000)
        latencies = []
        for i in range(5):
            payload = f"{src}->{dst} tls {i} {uuid.uuid4()}".encode()
            producer.send(payload)
            sent = time.monotonic()
            got, arrived = receive(consumer, 1, 120)
            assert got == [payload], f"{src} -> {dst} over TLS: message {i}: got {got}"
            latencies.append(arrived - sent)
    finally:
        consumer_client.close()
        producer_client.close()
    return latencies[0], sorted(latencies[1:])[2]


def test_two_tls_only_clusters_replicate_both_ways_over_tls(tls_clusters: Model, tmp_path: Path):
    model = tls_clusters
    cas = {}
    for side in ("a", "b"):
        cas[side] = tmp_path / f"{side}-ca.pem"
        cas[side].write_text(provider_ca(model, side))
        broker = service_fqdn(apps(side)[2])
        # plain text closed (the default tls-plaintext-enabled=false)
        assert refused(broker, 6650) and refused(broker, 8080), f"{side}: a plain port is open"

    started = time.monotonic()
    relation = model.integrate(f"{apps('a')[2]}:replication-offer", f"{apps('b')[2]}:replication")
    wait_replicating(model)
    record("georep_tls.relate_to_replicating_s", time.monotonic() - started)

    for side in ("a", "b"):
        peer, peer_name = PEER[side], CLUSTERS[PEER[side]]
        published = model.app_data(relation.id, apps(peer)[2])
        service = service_fqdn(apps(peer)[2])
        assert published["broker-service-url-tls"] == f"pulsar+ssl://{service}:6651", published
        assert published["web-service-url-tls"] == f"https://{service}:8443", published
        assert "broker-service-url" not in published and "web-service-url" not in published
        peer_ca = split_certificates(provider_ca(model, peer))
        assert split_certificates(published["tls-ca"]) == peer_ca
        # The peer's CA on the broker, and the registration naming it.
        path = f"/pulsar/conf/tls/replication/{peer_name}.pem"
        assert split_certificates(model.pod(f"{apps(side)[2]}/0").read(path)) == peer_ca
        registered = https_get(model, side, f"/admin/v2/clusters/{peer_name}", cas[side])
        assert registered["brokerServiceUrlTls"] == f"pulsar+ssl://{service}:6651", registered
        assert registered["serviceUrlTls"] == f"https://{service}:8443", registered
        assert registered["brokerClientTlsEnabled"] is True, registered
        assert registered["brokerClientTrustCertsFilePath"] == path, registered
        assert not registered.get("brokerServiceUrl"), registered
        replication = https_get(
            model, side, f"/admin/v2/namespaces/{NAMESPACE}/replication", cas[side]
        )
        assert sorted(replication) == ["alpha", "beta"]

    for src, dst in (("a", "b"), ("b", "a")):
        first, median = one_way_tls(model, src, dst, cas)
        record(f"georep_tls.first_message_latency_{src}_to_{dst}_s", first)
        record(f"georep_tls.median_latency_{src}_to_{dst}_s", median)
