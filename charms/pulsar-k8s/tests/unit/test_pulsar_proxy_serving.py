"""The broker's side of the ``pulsar-proxy`` relation (ops.testing) and the interface library."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import ops
import pulsar_tokens
import pytest
from charms.pulsar_k8s.v0.pulsar_proxy import parse_client_answers, parse_offer
from charms.pulsar_k8s.v0.tls import TlsMaterial, TlsState
from charms.pulsar_k8s.v0.validation import InvalidField
from charms.pulsar_zookeeper_k8s.v0.zookeeper import ZooKeeperConnection
from hypothesis import given, settings
from hypothesis import strategies as st
from ops import testing
from pulsar_config import PulsarConfig
from pulsar_proxy_serving import PulsarProxyServing
from test_pulsar_charm import AUTH, PASSWORD, SIGNING_KEY, USERNAME, ZK_HOSTS
from test_pulsar_clients import admin, root, running_state  # noqa: F401 (fixtures)

from tests.fuzz_support import FUZZ_SETTINGS, MARKER, injected, maybe_bad, mostly

SERVICE = "pulsar-k8s.pulsar.svc.cluster.local"
SCHEMAS = Path(__file__).resolve().parents[4] / "interfaces" / "pulsar_proxy" / "v0"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def proxy_relation() -> testing.Relation:
    return testing.Relation("pulsar-proxy", remote_app_name="pulsar-proxy-k8s")


def test_leader_publishes_the_offer_and_its_credentials_in_a_secret(ctx, root, admin):  # noqa: F811
    relation = proxy_relation()
    out = ctx.run(ctx.on.relation_joined(relation), running_state(root, relation))
    data = out.get_relation(relation.id).local_app_data
    assert data["cluster-name"] == "pulsar"
    assert data["broker-service-url"] == f"pulsar://{SERVICE}:6650"
    assert data["web-service-url"] == f"http://{SERVICE}:8080"
    assert data["metadata-store"] == f"zk:{ZK_HOSTS}/pulsar"
    secret = out.get_secret(label=f"pulsar-proxy.{relation.id}.secret")
    assert data["secret-proxy"] == secret.id
    assert secret.remote_grants == {relation.id: {"pulsar-proxy-k8s"}}
    content = secret.tracked_content
    assert pulsar_tokens.token_role(SIGNING_KEY, content["token"]) == "pulsar-proxy"
    assert content["token-key"] == SIGNING_KEY
    assert content["zookeeper-username"] == USERNAME
    assert content["zookeeper-password"] == PASSWORD
    bag = json.dumps(dict(data))
    for value in (content["token"], SIGNING_KEY, PASSWORD, AUTH.admin_token):
        assert value not in bag
    # The contract: the schemas of interfaces/pulsar_proxy/v0 (no extra field allowed).
    jsonschema.Draft202012Validator(schema("provider")).validate({"app": dict(data), "unit": {}})
    jsonschema.Draft202012Validator(schema("secret")).validate(dict(content))
    # What the library reads back on the proxy's side is the same offer.
    offer = parse_offer("pulsar-proxy", dict(data), dict(content))
    assert offer is not None and offer.token == content["token"]
    assert out.unit_status.name == "active"


ZK_CA = "-----BEGIN CERTIFICATE-----\n" + "QUJD" * 16 + "\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(("tls", "ca"), [(False, ""), (True, ZK_CA)])
def test_the_offer_carries_the_ca_of_a_tls_zookeeper(tls, ca):
    """With ZooKeeper TLS on, the proxies get the secure endpoints and the CA they trust."""
    port = 2182 if tls else 2181
    zookeeper = ZooKeeperConnection(
        endpoints=(f"zk-0.zk-endpoints.pulsar.svc.cluster.local:{port}",),
        chroot="/pulsar",
        username=USERNAME,
        password=PASSWORD,
        uris="",
        tls=tls,
        tls_ca=ca,
    )
    charm = SimpleNamespace(
        app=SimpleNamespace(name="pulsar-k8s"),
        model=SimpleNamespace(name="pulsar"),
        tls_state=TlsState(),
    )
    offer = PulsarProxyServing.offer(
        SimpleNamespace(_charm=charm),  # type: ignore[arg-type]
        PulsarConfig(),
        AUTH,
        zookeeper,
    )
    assert offer.zookeeper_tls_ca == ca
    assert offer.metadata_store_url.endswith(f":{port}/pulsar")
    data = {
        "cluster-name": offer.cluster_name,
        "broker-service-url": offer.broker_service_url,
        "web-service-url": offer.web_service_url,
        "metadata-store": offer.metadata_store_url,
        "secret-proxy": "secret:abc",
    }
    if ca:
        data["zookeeper-tls-ca"] = ca
    jsonschema.Draft202012Validator(schema("provider")).validate({"app": data, "unit": {}})
    parsed = parse_offer("pulsar-proxy", data, offer.secret_content())
    assert parsed is not None and parsed.zookeeper_tls_ca == ca


BROKER_CA = "-----BEGIN CERTIFICATE-----\n" + "Q0FD" * 16 + "\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("tls", [False, True])
def test_the_offer_carries_the_brokers_tls_urls_and_ca(tls):
    """With its certificate the broker leader offers its TLS URLs and CA; none without."""
    zookeeper = ZooKeeperConnection(
        endpoints=("zk-0.zk-endpoints.pulsar.svc.cluster.local:2181",),
        chroot="/pulsar",
        username=USERNAME,
        password=PASSWORD,
        uris="",
        tls=False,
    )
    material = TlsMaterial(certificate=BROKER_CA, ca=BROKER_CA, private_key="k")
    charm = SimpleNamespace(
        app=SimpleNamespace(name="pulsar-k8s"),
        model=SimpleNamespace(name="pulsar"),
        tls_state=TlsState(related=tls, material=material if tls else None),
    )
    offer = PulsarProxyServing.offer(
        SimpleNamespace(_charm=charm),  # type: ignore[arg-type]
        PulsarConfig(),
        AUTH,
        zookeeper,
    )
    data = {
        "cluster-name": offer.cluster_name,
        "broker-service-url": offer.broker_service_url,
        "web-service-url": offer.web_service_url,
        "metadata-store": offer.metadata_store_url,
        "secret-proxy": "secret:abc",
        "broker-service-url-tls": offer.broker_service_url_tls,
        "web-service-url-tls": offer.web_service_url_tls,
        "tls-ca": offer.tls_ca,
    }
    data = {k: v for k, v in data.items() if v}
    jsonschema.Draft202012Validator(schema("provider")).validate({"app": data, "unit": {}})
    parsed = parse_offer("pulsar-proxy", data, offer.secret_content())
    assert parsed is not None and parsed.broker_tls is tls
    if tls:
        assert parsed.broker_service_url_tls == f"pulsar+ssl://{SERVICE}:6651"
        assert parsed.web_service_url_tls == f"https://{SERVICE}:8443"
        assert parsed.tls_ca == BROKER_CA
    else:
        assert not (parsed.broker_service_url_tls or parsed.web_service_url_tls)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"broker-service-url-tls": f"pulsar+ssl://{SERVICE}:6651"}, "tls-ca"),
        ({"tls-ca": BROKER_CA, "web-service-url-tls": f"https://{SERVICE}:8443"}, "broker-"),
        (
            {"tls-ca": BROKER_CA, "broker-service-url-tls": f"pulsar://{SERVICE}:6651"},
            "broker-service-url-tls",
        ),
        (
            {
                "tls-ca": "not pem",
                "broker-service-url-tls": f"pulsar+ssl://{SERVICE}:6651",
                "web-service-url-tls": f"https://{SERVICE}:8443",
            },
            "tls-ca",
        ),
    ],
)
def test_a_partial_or_bad_tls_offer_is_refused_naming_the_field(extra, field):
    data = {
        "cluster-name": "pulsar",
        "broker-service-url": f"pulsar://{SERVICE}:6650",
        "web-service-url": f"http://{SERVICE}:8080",
        "metadata-store": f"zk:{ZK_HOSTS}/pulsar",
        "secret-proxy": "secret:abc",
        **extra,
    }
    content = {
        "token": "t" * 20,
        "token-key": SIGNING_KEY,
        "zookeeper-username": USERNAME,
        "zookeeper-password": PASSWORD,
    }
    with pytest.raises(InvalidField) as caught:
        parse_offer("pulsar-proxy", data, content)
    assert str(caught.value).startswith(f"pulsar-proxy relation: {field}")


def test_an_unchanged_reconcile_writes_the_same_offer(ctx, root, admin):  # noqa: F811
    relation = proxy_relation()
    out = ctx.run(ctx.on.relation_joined(relation), running_state(root, relation))
    first = dict(out.get_relation(relation.id).local_app_data)
    secret = out.get_secret(label=f"pulsar-proxy.{relation.id}.secret")
    again = ctx.run(ctx.on.update_status(), out)
    assert dict(again.get_relation(relation.id).local_app_data) == first
    assert again.get_secret(id=secret.id).tracked_content == secret.tracked_content
    assert again.get_secret(id=secret.id).latest_content == secret.latest_content


def test_non_leader_publishes_nothing(ctx, root, admin):  # noqa: F811
    relation = proxy_relation()
    out = ctx.run(ctx.on.relation_joined(relation), running_state(root, relation, leader=False))
    assert dict(out.get_relation(relation.id).local_app_data) == {}


def test_gone_relation_secret_is_removed(ctx, root, admin):  # noqa: F811
    relation = proxy_relation()
    out = ctx.run(ctx.on.relation_joined(relation), running_state(root, relation))
    secret = out.get_secret(label=f"pulsar-proxy.{relation.id}.secret")
    broken = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    with pytest.raises(KeyError):
        broken.get_secret(id=secret.id)


def test_brokers_know_the_proxy_role():
    from pulsar_config import PulsarConfig
    from pulsar_render import BrokerInputs, broker_properties

    props = broker_properties(BrokerInputs(PulsarConfig(), "broker-0", ZK_HOSTS, "zk+x"))
    assert props["proxyRoles"] == "pulsar-proxy"
    assert "pulsar-proxy" in props["superUserRoles"].split(",")


@pytest.mark.parametrize(
    ("data", "content", "field"),
    [
        ({"metadata-store": "zk:h:2181"}, {}, "metadata-store"),
        ({"broker-service-url": "pulsar://h"}, {}, "broker-service-url"),
        ({}, {"token-key": "c2hvcnQ="}, "token-key"),
        ({}, {"zookeeper-username": "bad user"}, "zookeeper-username"),
    ],
)
def test_the_library_refuses_bad_data_naming_the_field(data, content, field):
    good_data = {
        "cluster-name": "pulsar",
        "broker-service-url": f"pulsar://{SERVICE}:6650",
        "web-service-url": f"http://{SERVICE}:8080",
        "metadata-store": f"zk:{ZK_HOSTS}/pulsar",
        "secret-proxy": "secret:x",
    }
    good_content = {
        "token": "a.b.c",
        "token-key": SIGNING_KEY,
        "zookeeper-username": USERNAME,
        "zookeeper-password": PASSWORD,
    }
    assert parse_offer("pulsar-proxy", good_data, good_content) is not None
    with pytest.raises(InvalidField) as refused:
        parse_offer("pulsar-proxy", {**good_data, **data}, {**good_content, **content})
    assert refused.value.field == field
    assert isinstance(refused.value, ValueError) and not isinstance(refused.value, ops.ModelError)


# -- client relations forwarded by a proxy ----------------------------------------------------

FORWARDED = {
    "namespace": "shop/orders",
    "extra-user-roles": "produce,consume",
    "requested-secrets": '["username", "token"]',
}


def forwarding_relation(requests: object) -> testing.Relation:
    raw = requests if isinstance(requests, str) else json.dumps(requests)
    return testing.Relation(
        "pulsar-proxy",
        remote_app_name="pulsar-proxy-k8s",
        remote_app_data={"client-requests": raw},
    )


def client_answers(out: testing.State, relation: testing.Relation) -> dict:
    return json.loads(out.get_relation(relation.id).local_app_data.get("client-answers", "{}"))


def served_record(out: testing.State) -> dict:
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    return json.loads(peer.local_app_data.get("clients", "{}"))


def test_a_forwarded_request_is_served_like_a_direct_client(ctx, root, admin):  # noqa: F811
    relation = forwarding_relation({"7": FORWARDED})
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    role = f"proxy-{relation.id}-relation-7"
    assert ("create_namespace", "shop/orders") in admin.calls
    assert ("grant", "shop/orders", role, ["consume", "produce"]) in admin.calls
    (answer,) = client_answers(out, relation).values()
    secret = out.get_secret(label=f"pulsar-proxy.{relation.id}.client-7.secret")
    assert answer == {"namespace": "shop/orders", "secret-user": secret.id}
    assert secret.remote_grants == {relation.id: {"pulsar-proxy-k8s"}}
    content = secret.tracked_content
    assert content["username"] == role
    assert pulsar_tokens.token_role(SIGNING_KEY, content["token"]) == role
    assert content["token"] not in json.dumps(dict(out.get_relation(relation.id).local_app_data))
    assert served_record(out) == {role: "shop/orders"}
    jsonschema.Draft202012Validator(schema("provider")).validate(
        {"app": dict(out.get_relation(relation.id).local_app_data), "unit": {}}
    )
    assert "1 client" in out.unit_status.message
    # The same reconcile again changes nothing.
    again = ctx.run(ctx.on.update_status(), out)
    assert (
        again.get_relation(relation.id).local_app_data
        == out.get_relation(relation.id).local_app_data
    )
    assert again.get_secret(id=secret.id).latest_content == content


def test_a_request_gone_at_the_proxy_is_revoked_and_its_secret_removed(ctx, root, admin):  # noqa: F811
    relation = forwarding_relation({"7": FORWARDED})
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    secret = out.get_secret(label=f"pulsar-proxy.{relation.id}.client-7.secret")
    gone = dataclasses.replace(out.get_relation(relation.id), remote_app_data={})
    relations = [r for r in out.relations if r.id != relation.id] + [gone]
    admin.calls.clear()
    after = ctx.run(ctx.on.relation_changed(gone), dataclasses.replace(out, relations=relations))
    role = f"proxy-{relation.id}-relation-7"
    assert ("revoke", "shop/orders", role) in admin.calls
    assert client_answers(after, gone) == {}
    with pytest.raises(KeyError):
        after.get_secret(id=secret.id)
    assert served_record(after) == {}


def test_the_proxy_relation_removed_revokes_its_clients(ctx, root, admin):  # noqa: F811
    relation = forwarding_relation({"7": FORWARDED})
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    secret = out.get_secret(label=f"pulsar-proxy.{relation.id}.client-7.secret")
    admin.calls.clear()
    broken = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert ("revoke", "shop/orders", f"proxy-{relation.id}-relation-7") in admin.calls
    with pytest.raises(KeyError):
        broken.get_secret(id=secret.id)
    assert served_record(broken) == {}


def test_an_invalid_forwarded_request_is_refused_on_the_proxy_relation(ctx, root, admin):  # noqa: F811
    relation = forwarding_relation({"7": {**FORWARDED, "namespace": "nope"}, "8": ["x"]})
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    answers = client_answers(out, relation)
    assert [s["code"] for s in answers["7"]["status"]] == [5002]
    assert [s["code"] for s in answers["8"]["status"]] == [5000]
    assert "secret-user" not in answers["7"]
    assert not [c for c in admin.calls if c[0] == "grant"]
    assert out.unit_status.name == "active"


def test_unreadable_forwarded_requests_keep_the_served_roles(ctx, root, admin):  # noqa: F811
    relation = forwarding_relation({"7": FORWARDED})
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    bad = dataclasses.replace(
        out.get_relation(relation.id), remote_app_data={"client-requests": "{not json"}
    )
    relations = [r for r in out.relations if r.id != relation.id] + [bad]
    admin.calls.clear()
    after = ctx.run(ctx.on.relation_changed(bad), dataclasses.replace(out, relations=relations))
    assert not [c for c in admin.calls if c[0] == "revoke"]
    assert served_record(after) == {f"proxy-{relation.id}-relation-7": "shop/orders"}
    assert after.unit_status.name == "active"
    assert "pulsar-proxy relation: client-requests is not JSON" in after.unit_status.message


def test_proxied_roles_are_refused_by_the_permission_actions():
    from pulsar_actions import _RELATION_ROLE

    assert _RELATION_ROLE.fullmatch("proxy-3-relation-7")
    assert _RELATION_ROLE.fullmatch("relation-7")
    assert not _RELATION_ROLE.fullmatch("proxy-3")


# What a proxy may forward: the serving broker answers every value without a hook error,
# revokes nothing it should keep, and no forwarded value reaches a log line.
_forwarded_entry = st.fixed_dictionaries(
    {"namespace": maybe_bad(st.sampled_from(["shop/orders", "a/b", "nope"]), 3)},
    optional={
        "extra-user-roles": maybe_bad(st.sampled_from(["produce", "consume,admin", "x"]), 3),
        "requested-secrets": maybe_bad(st.sampled_from(['["token"]', "[]", "{"]), 3),
        "functions": st.just('[{"name": "f"}]'),
    },
)
_forwarded = mostly(
    st.dictionaries(st.sampled_from(["1", "7", "x", "-1"]), _forwarded_entry, max_size=3).map(
        json.dumps
    ),
    st.sampled_from(["{", "[]", '{"7": ["x"]}', '{"7": {"namespace": 1}}']) | injected(),
    4,
)


@settings(FUZZ_SETTINGS, max_examples=150)
@given(raw=_forwarded)
def test_fuzz_forwarded_requests_never_break_the_serving_broker(ctx, root, admin, raw):  # noqa: F811
    relation = forwarding_relation(raw)
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    assert out.unit_status.name == "active"
    answers = out.get_relation(relation.id).local_app_data.get("client-answers")
    # Whatever was asked, the answer is what the proxy's library reads without refusing.
    parse_client_answers("pulsar-proxy", answers)
    assert all(MARKER not in log.message for log in ctx.juju_log)
