"""Bookies connect to ZooKeeper over TLS when the zookeeper relation says so (issue 9)."""

from __future__ import annotations

import ops
from bookkeeper_config import BookKeeperConfig
from bookkeeper_render import bookie_env, tool_env
from charms.bookkeeper_k8s.v0.bookkeeper import ZOOKEEPER_SECRET_LABEL
from charms.pulsar_zookeeper_k8s.v0.zookeeper import (
    CLIENT_TLS_CA_PATH,
    ZooKeeperConnection,
    client_tls_jvm_options,
    usable_tls_ca,
)
from ops import testing
from test_bookkeeper_charm import PASSWORD, USERNAME, container, peers, zk_relation

TLS_ENDPOINTS = (
    "pulsar-zookeeper-k8s-0.pulsar-zookeeper-k8s-endpoints.pulsar.svc.cluster.local:2182"
)
CA = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"


def tls_state(cont: testing.Container, tls_secret: dict[str, str], **extra) -> testing.State:
    user = testing.Secret(
        tracked_content={
            "username": USERNAME,
            "password": PASSWORD,
            "uris": f"{TLS_ENDPOINTS}/pulsar",
        }
    )
    tls = testing.Secret(tracked_content=tls_secret)
    relation = zk_relation(
        user, endpoints=TLS_ENDPOINTS, **{"secret-tls": tls.id, "tls": "disabled"}
    )
    return testing.State(
        leader=True,
        model=testing.Model(name="pulsar"),
        containers={cont},
        relations=[peers(), relation, *extra.get("relations", ())],
        secrets={user, tls},
    )


def test_the_zookeeper_client_options_are_netty_secure_and_a_pem_trust_store():
    opts = client_tls_jvm_options()
    assert "-Dzookeeper.client.secure=true" in opts
    assert "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty" in opts
    assert f"-Dzookeeper.ssl.trustStore.location={CLIENT_TLS_CA_PATH}" in opts
    assert "-Dzookeeper.ssl.trustStore.type=PEM" in opts
    config = BookKeeperConfig()
    for env in (bookie_env(config, True), tool_env(config, True)):
        assert all(o in env["BOOKIE_EXTRA_OPTS"] for o in opts)
        assert env["BOOKIE_EXTRA_OPTS"] == env["PULSAR_EXTRA_OPTS"]
        assert "-Djava.security.auth.login.config=" in env["BOOKIE_EXTRA_OPTS"]  # SASL stays
    assert "zookeeper.client.secure" not in bookie_env(config)["BOOKIE_EXTRA_OPTS"]


def _connection(tls: bool, ca: str) -> ZooKeeperConnection:
    return ZooKeeperConnection(("h:2182",), "/pulsar", "u", "p", "h:2182/pulsar", tls, ca)


def test_usable_tls_ca():
    assert usable_tls_ca(_connection(False, "")) == ""
    assert usable_tls_ca(_connection(True, CA.strip())) == CA
    assert usable_tls_ca(_connection(True, CA + CA)) == CA + CA
    for bad in ("", "not a cert", CA + "-Dinjected=1\n", CA.replace("QUJD", "QU\nJD'")):
        assert usable_tls_ca(_connection(True, bad)) is None, bad


def test_tls_on_the_relation_starts_the_bookie_with_the_ca_and_shares_it(
    ctx, storage, tmp_path, fake_http
):
    brokers = testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")
    cont = container(storage, tmp_path)
    st = tls_state(cont, {"tls": "enabled", "tls-ca": CA}, relations=(brokers,))
    out = ctx.run(ctx.on.pebble_ready(cont), st)
    assert (tmp_path / "conf" / "zookeeper-ca.pem").read_text() == CA
    env = out.get_container("pulsar").plan.services["bookie"].environment
    assert "-Dzookeeper.client.secure=true" in env["BOOKIE_EXTRA_OPTS"]
    conf = (tmp_path / "conf" / "bookkeeper.conf").read_text()
    assert "2182/pulsar/ledgers" in conf
    shared = next(s for s in out.secrets if s.label == ZOOKEEPER_SECRET_LABEL)
    assert shared.tracked_content["tls-ca"] == CA


def test_tls_without_a_usable_ca_waits_naming_the_field(ctx, storage, tmp_path):
    cont = container(storage, tmp_path)
    out = ctx.run(ctx.on.pebble_ready(cont), tls_state(cont, {"tls": "enabled"}))
    assert isinstance(out.unit_status, ops.WaitingStatus)
    assert "zookeeper relation: tls-ca" in out.unit_status.message
    assert not (tmp_path / "conf" / "bookkeeper.conf").exists()
