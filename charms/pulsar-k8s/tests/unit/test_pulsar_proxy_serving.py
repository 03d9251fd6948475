"""The broker's side of the ``pulsar-proxy`` relation (ops.testing) and the interface library."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ops
import pulsar_tokens
import pytest
from charms.pulsar_k8s.v0.pulsar_proxy import parse_offer
from charms.pulsar_k8s.v0.validation import InvalidField
from ops import testing
from test_pulsar_charm import AUTH, PASSWORD, SIGNING_KEY, USERNAME, ZK_HOSTS
from test_pulsar_clients import admin, root, running_state  # noqa: F401 (fixtures)

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
