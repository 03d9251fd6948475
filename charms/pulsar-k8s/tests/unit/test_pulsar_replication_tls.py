"""Geo-replication over TLS: the TLS keys of ``pulsar_replication``, the peer's CA file on every
unit, and the registration's TLS fields (``serviceUrlTls``, ``brokerServiceUrlTls``,
``brokerClientTlsEnabled``, ``brokerClientTrustCertsFilePath``)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import ops
import pulsar_replication
import pytest
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
)
from charms.pulsar_k8s.v0.tls import split_certificates
from charms.pulsar_k8s.v0.validation import InvalidField
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing
from pulsar_replication import (
    TOKEN_AUTH_PLUGIN,
    PeerLink,
    PeerTls,
    parse_peer_ca,
    parse_peer_cluster,
    parse_peer_tls,
    peer_ca_path,
    published_cluster,
    registration_differs,
)
from pulsar_tls import BrokerTls
from test_pulsar_charm import peers
from test_pulsar_replication import (
    ACTIVE,
    PEER_TOKEN,
    SCHEMA,
    FakeAdmin,
    FakeCluster,
    link,
    peer_secret,
    run,
)
from test_pulsar_tls import _answered

SOURCE = "replication"
EAST = "pulsar-east.east.svc.cluster.local"
EAST_TLS = {
    "broker-service-url-tls": f"pulsar+ssl://{EAST}:6651",
    "web-service-url-tls": f"https://{EAST}:8443",
}
CA_FILE = "/pulsar/conf/tls/replication/east.pem"


def _ca_pem(name: str = "east-ca") -> str:
    key = PrivateKey.generate()
    attributes = CertificateRequestAttributes(common_name=name, is_ca=True)
    return str(Certificate.generate_self_signed_ca(attributes, key, timedelta(days=1))) + "\n"


CA = _ca_pem()
OTHER_CA = _ca_pem("other-ca")


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster()

    def factory(url: str, token: str, timeout: float = 0, web: Any = None) -> FakeAdmin:
        assert url.endswith((":8080", ":8443"))
        return FakeAdmin(fake)

    monkeypatch.setattr(pulsar_replication, "ReplicationAdmin", factory)
    return fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


def _file(root: Path, path: str) -> Path:
    return root / Path(path).relative_to("/pulsar")


def tls_link(secret: testing.Secret | None = None, plain: bool = True, **overrides: str):
    relation = link(secret=secret, **{**EAST_TLS, "tls-ca": CA, **overrides})
    if not plain:
        data = {
            k: v
            for k, v in relation.remote_app_data.items()
            if k not in ("broker-service-url", "web-service-url")
        }
        relation = dataclasses.replace(relation, remote_app_data=data)
    return relation


# -- pure: parsing what the peer published ------------------------------------------------------


def test_no_tls_keys_is_no_tls():
    assert parse_peer_tls(SOURCE, {"cluster-name": "east"}) is None


def test_tls_keys_parse_to_urls_and_a_normalised_bundle():
    tls = parse_peer_tls(SOURCE, {**EAST_TLS, "tls-ca": "junk\n" + CA.replace("\n", "\r\n")})
    assert tls == PeerTls(EAST_TLS["broker-service-url-tls"], EAST_TLS["web-service-url-tls"], CA)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"web-service-url-tls": "https://x:8443", "tls-ca": CA}, "broker-service-url-tls"),
        ({"broker-service-url-tls": "pulsar+ssl://x:6651", "tls-ca": CA}, "web-service-url-tls"),
        ({**EAST_TLS}, "tls-ca"),
        ({**EAST_TLS, "broker-service-url-tls": "pulsar://x:6650", "tls-ca": CA}, None),
        ({**EAST_TLS, "web-service-url-tls": "http://x:8443", "tls-ca": CA}, None),
        ({**EAST_TLS, "web-service-url-tls": "https://a b:8443", "tls-ca": CA}, None),
        ({**EAST_TLS, "tls-ca": "not a certificate ${x}"}, "tls-ca"),
        # base64 that is not a certificate: Java would refuse the whole trust file
        (
            {
                **EAST_TLS,
                "tls-ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            },
            "tls-ca",
        ),
    ],
)
def test_a_refused_tls_key_is_named(data: dict[str, str], field: str | None):
    with pytest.raises(InvalidField) as caught:
        parse_peer_tls(SOURCE, data)
    named = field or next(k for k, v in data.items() if k in EAST_TLS and v != EAST_TLS[k])
    assert caught.value.field == named
    assert caught.value.source == SOURCE
    assert "${x}" not in str(caught.value)


def test_a_peer_may_publish_tls_urls_only_or_plain_urls_only():
    only_tls = parse_peer_cluster(SOURCE, {"cluster-name": "east", **EAST_TLS, "tls-ca": CA})
    assert only_tls is not None and only_tls.broker_service_url == "" and only_tls.tls is not None
    plain = {"broker-service-url": f"pulsar://{EAST}:6650", "web-service-url": f"http://{EAST}:80"}
    only_plain = parse_peer_cluster(SOURCE, {"cluster-name": "east", **plain})
    assert only_plain is not None and only_plain.tls is None
    assert parse_peer_cluster(SOURCE, {"cluster-name": "east"}) is None
    assert parse_peer_cluster(SOURCE, {**plain}) is None
    with pytest.raises(InvalidField) as caught:
        parse_peer_cluster(
            SOURCE, {"cluster-name": "east", "broker-service-url": plain["broker-service-url"]}
        )
    assert caught.value.field == "web-service-url"


_KEYS = [
    "cluster-name",
    "broker-service-url",
    "web-service-url",
    "broker-service-url-tls",
    "web-service-url-tls",
    "tls-ca",
]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(_KEYS),
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(
                ["east", CA, f"pulsar+ssl://{EAST}:6651", f"https://{EAST}:8443", "http://x:8080"]
            ),
        ),
    )
)
def test_parsing_never_raises_anything_but_a_refusal(data: dict[str, str]):
    try:
        peer = parse_peer_cluster(SOURCE, data)
    except InvalidField as exc:
        assert exc.source == SOURCE and exc.field in _KEYS
        return
    if peer is not None:
        assert peer.cluster == data["cluster-name"]
        assert peer.tls is None or split_certificates(peer.tls.ca) == split_certificates(CA)


def test_the_peer_ca_must_be_one_or_more_certificates():
    bundle = parse_peer_ca(SOURCE, OTHER_CA + CA)
    assert set(split_certificates(bundle)) == {
        *split_certificates(CA),
        *split_certificates(OTHER_CA),
    }
    for bad in (None, "", 42, "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"):
        with pytest.raises(InvalidField):
            parse_peer_ca(SOURCE, bad)


# -- pure: what this side publishes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "keys"),
    [
        (BrokerTls(), {"cluster-name", "broker-service-url", "web-service-url"}),
        (
            BrokerTls(enabled=True, plaintext=True),
            {"cluster-name", "broker-service-url", "web-service-url", *EAST_TLS, "tls-ca"},
        ),
        (BrokerTls(enabled=True, plaintext=False), {"cluster-name", *EAST_TLS, "tls-ca"}),
    ],
)
def test_published_cluster_follows_the_open_ports(tls: BrokerTls, keys: set[str]):
    data = published_cluster("west", "pulsar-west", "west", tls, CA)
    present = {k: v for k, v in data.items() if v}
    assert set(present) == keys
    # every key is always written: "" removes what the previous state published
    assert set(data) == set(_KEYS)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(present)
    if tls.enabled:
        assert present["broker-service-url-tls"] == (
            "pulsar+ssl://pulsar-west.west.svc.cluster.local:6651"
        )
        assert present["web-service-url-tls"] == "https://pulsar-west.west.svc.cluster.local:8443"
        assert present["tls-ca"] == CA


def test_the_schema_refuses_half_a_tls_set():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    assert not validator.is_valid({"cluster-name": "a", **EAST_TLS})
    assert not validator.is_valid({"cluster-name": "a"})
    assert validator.is_valid({"cluster-name": "a", **EAST_TLS, "tls-ca": CA})


# -- pure: the registration ---------------------------------------------------------------------


def test_cluster_data_with_tls_names_the_peer_ca_file():
    tls = PeerTls(EAST_TLS["broker-service-url-tls"], EAST_TLS["web-service-url-tls"], CA)
    data = PeerLink(1, "pulsar-east", "east", "", "", PEER_TOKEN, tls).cluster_data()
    assert data == {
        "serviceUrlTls": f"https://{EAST}:8443",
        "brokerServiceUrlTls": f"pulsar+ssl://{EAST}:6651",
        "brokerClientTlsEnabled": True,
        "brokerClientTrustCertsFilePath": CA_FILE,
        "authenticationPlugin": TOKEN_AUTH_PLUGIN,
        "authenticationParameters": f"token:{PEER_TOKEN}",
    }
    assert peer_ca_path("east") == CA_FILE


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "serviceUrl": st.sampled_from(["http://a:8080", "http://b:8080"]),
            "serviceUrlTls": st.sampled_from(["https://a:8443", "https://b:8443"]),
            "brokerClientTlsEnabled": st.booleans(),
            "brokerClientTrustCertsFilePath": st.sampled_from(["/x.pem", "/y.pem"]),
        },
    ),
    st.sampled_from([None, "", False]),
)
def test_registration_differs_only_in_a_set_field(wanted: dict[str, Any], unset: object):
    # Pulsar answers unset fields as null, "" or false, and adds fields the charm never sets.
    answered: dict[str, Any] = {**wanted, "proxyProtocol": None, "peerClusterNames": None}
    for key in ("serviceUrl", "brokerServiceUrl", "brokerServiceUrlTls"):
        answered.setdefault(key, unset)
    assert not registration_differs(answered, wanted)
    for key in ("serviceUrlTls", "brokerClientTlsEnabled"):
        changed = {**answered, key: "https://c:8443" if key == "serviceUrlTls" else True}
        assert registration_differs(changed, wanted) == (
            str(wanted.get(key, "")).lower() not in ("https://c:8443", "true")
        )


# -- the reconcile: the peer serves TLS ---------------------------------------------------------


def test_every_unit_writes_the_peer_ca_and_the_leader_registers_with_tls(ctx, root, cluster):
    secret = peer_secret()
    relation = tls_link(secret)
    out = run(ctx, root, relation, secrets=[secret], event=ctx.on.relation_changed(relation))
    assert _file(root, CA_FILE).read_text() == CA
    assert cluster.clusters["east"] == {
        "serviceUrl": f"http://{EAST}:8080",
        "brokerServiceUrl": f"pulsar://{EAST}:6650",
        "serviceUrlTls": f"https://{EAST}:8443",
        "brokerServiceUrlTls": f"pulsar+ssl://{EAST}:6651",
        "brokerClientTlsEnabled": True,
        "brokerClientTrustCertsFilePath": CA_FILE,
        "authenticationPlugin": TOKEN_AUTH_PLUGIN,
        "authenticationParameters": f"token:{PEER_TOKEN}",
    }
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}, replicating with east")

    # Converged: nothing is written, neither the file nor the registration.
    cluster.calls.clear()
    before = _file(root, CA_FILE).stat().st_mtime_ns
    again = ctx.run(ctx.on.update_status(), out)
    assert cluster.writes() == []
    assert _file(root, CA_FILE).stat().st_mtime_ns == before
    assert again.unit_status == out.unit_status


def test_a_non_leader_writes_the_same_file_and_calls_nothing(ctx, root, cluster):
    secret = peer_secret()
    relation = tls_link(secret, plain=False)
    done = json.dumps(
        {"peers": {"east": {"relation": relation.id, "namespaces": ["geo/orders"]}}, "stopped": []}
    )
    peer = peers(app_data={pulsar_replication.PEERS_KEY: done})
    out = run(ctx, root, relation, secrets=[secret], peer=peer, leader=False)
    assert _file(root, CA_FILE).read_text() == CA
    assert cluster.calls == []
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}, replicating with east")


def test_a_tls_only_peer_is_registered_without_plain_urls(ctx, root, cluster):
    secret = peer_secret()
    run(ctx, root, tls_link(secret, plain=False), secrets=[secret])
    registered = cluster.clusters["east"]
    assert "serviceUrl" not in registered and "brokerServiceUrl" not in registered
    assert registered["brokerServiceUrlTls"] == f"pulsar+ssl://{EAST}:6651"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"tls-ca": "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"}, "tls-ca"),
        ({"tls-ca": "INJ\n${x}"}, "tls-ca"),
        ({"broker-service-url-tls": "pulsar://x:6651"}, "broker-service-url-tls"),
        ({"web-service-url-tls": ""}, "web-service-url-tls"),
    ],
)
def test_a_malformed_tls_key_is_named_and_nothing_is_written(ctx, root, cluster, overrides, field):
    secret = peer_secret()
    out = run(ctx, root, tls_link(secret, **overrides), secrets=[secret])
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert f"replication relation: {field} " in out.unit_status.message
    assert "(from pulsar-east)" in out.unit_status.message
    assert "${x}" not in out.unit_status.message
    assert not _file(root, CA_FILE).exists()
    assert cluster.writes() == []


def test_the_peer_switching_tls_off_and_on_updates_the_registration(ctx, root, cluster):
    secret = peer_secret()
    relation = tls_link(secret)
    out = run(ctx, root, relation, secrets=[secret])
    assert cluster.clusters["east"]["brokerClientTlsEnabled"] is True

    plain = {k: v for k, v in relation.remote_app_data.items() if k not in (*EAST_TLS, "tls-ca")}
    off = dataclasses.replace(out.get_relation(relation.id), remote_app_data=plain)
    cluster.calls.clear()
    out = ctx.run(
        ctx.on.relation_changed(off),
        dataclasses.replace(
            out, relations=[off if r.id == relation.id else r for r in out.relations]
        ),
    )
    assert [c[0] for c in cluster.calls if c[0] != "get_cluster"][:1] == ["update_cluster"]
    assert set(cluster.clusters["east"]) == {
        "serviceUrl",
        "brokerServiceUrl",
        "authenticationPlugin",
        "authenticationParameters",
    }
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}, replicating with east")

    # On again, with another CA: the file follows, then the registration.
    on_data = {**plain, **EAST_TLS, "tls-ca": OTHER_CA}
    on = dataclasses.replace(out.get_relation(relation.id), remote_app_data=on_data)
    cluster.calls.clear()
    out = ctx.run(
        ctx.on.relation_changed(on),
        dataclasses.replace(
            out, relations=[on if r.id == relation.id else r for r in out.relations]
        ),
    )
    assert _file(root, CA_FILE).read_text() == OTHER_CA
    assert "update_cluster" in cluster.writes()
    assert cluster.clusters["east"]["brokerClientTrustCertsFilePath"] == CA_FILE


# -- the reconcile: this cluster serves TLS -----------------------------------------------------


def _with_tls(ctx, root, calls, relation, secret, config=None) -> testing.State:
    state, _ = _answered(ctx, root, calls)
    relations = [*state.relations, relation]
    return dataclasses.replace(
        state,
        relations=relations,
        secrets=[*state.secrets, secret],
        config={"replicated-namespaces": "geo/orders", **(config or {})},
    )


def test_with_tls_this_side_publishes_tls_urls_and_its_ca_and_closes_plain(
    ctx, root, calls, cluster
):
    secret = peer_secret()
    relation = tls_link(secret)
    out = ctx.run(ctx.on.config_changed(), _with_tls(ctx, root, calls, relation, secret))
    data = dict(out.get_relation(relation.id).local_app_data)
    service = "pulsar-k8s.pulsar.svc.cluster.local"
    assert data["broker-service-url-tls"] == f"pulsar+ssl://{service}:6651"
    assert data["web-service-url-tls"] == f"https://{service}:8443"
    assert "broker-service-url" not in data and "web-service-url" not in data
    own_ca = _file(root, "/pulsar/conf/tls/ca.pem").read_text()
    assert split_certificates(data["tls-ca"]) == split_certificates(own_ca)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(data)
    assert cluster.clusters["east"]["brokerClientTlsEnabled"] is True
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}, replicating with east")


def test_with_tls_plaintext_enabled_both_sets_are_published(ctx, root, calls, cluster):
    secret = peer_secret()
    relation = tls_link(secret)
    state = _with_tls(ctx, root, calls, relation, secret, {"tls-plaintext-enabled": True})
    out = ctx.run(ctx.on.config_changed(), state)
    data = out.get_relation(relation.id).local_app_data
    assert {"broker-service-url", "web-service-url", *EAST_TLS, "tls-ca"} <= set(data)


def test_with_tls_a_plain_peer_is_named_in_the_status(ctx, root, calls, cluster):
    secret = peer_secret()
    relation = link(secret=secret)
    out = ctx.run(ctx.on.config_changed(), _with_tls(ctx, root, calls, relation, secret))
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert (
        "pulsar-east serves no TLS, and these brokers reach peer clusters over TLS only; "
        "relate pulsar-east to a certificates provider"
    ) in out.unit_status.message
    # registered all the same: the registration is right once the peer serves TLS
    assert "brokerClientTlsEnabled" not in cluster.clusters["east"]


def test_the_leader_registers_only_once_its_own_ca_file_is_written(
    ctx, root, cluster, monkeypatch
):
    # The file is pushed before the registration in every reconcile; without it, no TLS
    # registration names a file that is not there.
    monkeypatch.setattr(pulsar_replication.PulsarReplication, "peer_ca_files", lambda *_: {})
    secret = peer_secret()
    out = run(ctx, root, tls_link(secret), secrets=[secret])
    assert "replication: waiting for the CA file of cluster east" in out.unit_status.message
    assert "east" not in cluster.clusters
