"""The charm's reconcile: request written by the leader, statuses, bad config -> Blocked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest
from ops import testing
from pulsar_client_test_fakes import answered_relation, request_of, token_secret

REQUIRER_SCHEMA = Path(__file__).resolve().parents[5] / "interfaces/pulsar_client/v0/requirer.json"


def test_no_relation_waits(ctx: testing.Context):
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True))
    assert out.unit_status == testing.WaitingStatus("waiting for pulsar relation")


def test_leader_writes_default_request(ctx: testing.Context):
    relation = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    out = ctx.run(
        ctx.on.relation_created(relation), testing.State(leader=True, relations=[relation])
    )
    assert request_of(out.get_relation(relation.id)) == {
        "namespace": "pulsar-client-test/default",
        "extra-user-roles": "produce,consume",
        "requested-secrets": ["username", "token", "tls", "tls-ca"],
    }
    assert out.unit_status == testing.WaitingStatus(
        "waiting for namespace pulsar-client-test/default"
    )


def test_leader_writes_configured_request(ctx: testing.Context):
    relation = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    state = testing.State(
        leader=True,
        relations=[relation],
        config={"namespace": "orders/eu", "permissions": " consume , produce,consume"},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert request_of(out.get_relation(relation.id)) == {
        "namespace": "orders/eu",
        "extra-user-roles": "consume,produce",
        "requested-secrets": ["username", "token", "tls", "tls-ca"],
    }


def test_config_change_updates_request(ctx: testing.Context):
    relation = testing.Relation(
        "pulsar",
        remote_app_name="pulsar-k8s",
        local_app_data={"namespace": "a/b", "extra-user-roles": "produce"},
    )
    state = testing.State(leader=True, relations=[relation], config={"namespace": "c/d"})
    out = ctx.run(ctx.on.config_changed(), state)
    assert request_of(out.get_relation(relation.id)) == {
        "namespace": "c/d",
        "extra-user-roles": "produce,consume",
        "requested-secrets": ["username", "token", "tls", "tls-ca"],
    }


def test_non_leader_writes_nothing(ctx: testing.Context):
    relation = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    out = ctx.run(
        ctx.on.relation_joined(relation), testing.State(leader=False, relations=[relation])
    )
    assert dict(out.get_relation(relation.id).local_app_data) == {}
    assert out.unit_status == testing.WaitingStatus(
        "waiting for namespace pulsar-client-test/default"
    )


def test_answered_relation_is_active(ctx: testing.Context):
    secret = token_secret(role="relation-7")
    relation = answered_relation(secret)
    state = testing.State(leader=True, relations=[relation], secrets=[secret])
    out = ctx.run(ctx.on.relation_changed(relation), state)
    assert out.unit_status == testing.ActiveStatus(
        "namespace pulsar-client-test/default ready (role relation-7)"
    )


def test_non_leader_active_once_answered(ctx: testing.Context):
    secret = token_secret()
    relation = answered_relation(secret)
    out = ctx.run(
        ctx.on.update_status(), testing.State(leader=False, relations=[relation], secrets=[secret])
    )
    assert out.unit_status == testing.ActiveStatus(
        "namespace pulsar-client-test/default ready (role relation-3)"
    )


def test_answer_for_old_namespace_waits(ctx: testing.Context):
    secret = token_secret()
    relation = answered_relation(secret, namespace="old/ns")
    state = testing.State(
        leader=True, relations=[relation], secrets=[secret], config={"namespace": "new/ns"}
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus("waiting for namespace new/ns")
    assert out.get_relation(relation.id).local_app_data["namespace"] == "new/ns"


def test_missing_secret_waits(ctx: testing.Context):
    secret = token_secret()
    relation = answered_relation(secret)
    out = ctx.run(ctx.on.relation_changed(relation), testing.State(relations=[relation]))
    assert out.unit_status == testing.WaitingStatus(
        "waiting for namespace pulsar-client-test/default"
    )


def test_provider_refusal_blocks_with_the_way_out(ctx: testing.Context):
    status = {"code": 5002, "message": "namespace 'x': bad", "resolution": "ask for a/b"}
    relation = testing.Relation(
        "pulsar", remote_app_name="pulsar-k8s", remote_app_data={"status": json.dumps([status])}
    )
    out = ctx.run(ctx.on.relation_changed(relation), testing.State(relations=[relation]))
    assert out.unit_status == testing.BlockedStatus(
        "pulsar refused the request on pulsar: namespace 'x': bad (ask for a/b)"
    )


def test_transient_provider_status_waits(ctx: testing.Context):
    status = {"code": 4001, "message": "not served yet: HTTP 500", "resolution": "none"}
    relation = testing.Relation(
        "pulsar", remote_app_name="pulsar-k8s", remote_app_data={"status": json.dumps([status])}
    )
    out = ctx.run(ctx.on.relation_changed(relation), testing.State(relations=[relation]))
    assert out.unit_status == testing.WaitingStatus(
        "waiting for namespace pulsar-client-test/default"
    )


def test_two_endpoints_two_namespaces_both_requested_and_active(ctx: testing.Context):
    first = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    second = testing.Relation("pulsar-second", remote_app_name="pulsar-k8s")
    config = {"namespace": "team/orders", "second-namespace": "team/audit"}
    out = ctx.run(
        ctx.on.config_changed(),
        testing.State(leader=True, relations=[first, second], config=config),
    )
    assert request_of(out.get_relation(first.id))["namespace"] == "team/orders"
    assert request_of(out.get_relation(second.id))["namespace"] == "team/audit"
    schema = json.loads(REQUIRER_SCHEMA.read_text())
    for relation in out.relations:
        jsonschema.validate({"app": dict(relation.local_app_data)}, schema)
    assert out.unit_status == testing.WaitingStatus(
        "waiting for namespace team/orders, team/audit"
    )

    orders_secret = token_secret("tok-a", "relation-3")
    audit_secret = token_secret("tok-b", "relation-4")
    orders = answered_relation(orders_secret, "team/orders")
    audit = answered_relation(audit_secret, "team/audit", endpoint="pulsar-second")
    state = testing.State(
        leader=True,
        relations=[orders, audit],
        secrets=[orders_secret, audit_secret],
        config=config,
    )
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status == testing.ActiveStatus(
        "namespace team/orders ready (role relation-3); "
        "namespace team/audit ready (role relation-4)"
    )


def test_second_endpoint_alone_defaults_to_app_slash_second(ctx: testing.Context):
    relation = testing.Relation("pulsar-second", remote_app_name="pulsar-k8s")
    out = ctx.run(
        ctx.on.relation_created(relation), testing.State(leader=True, relations=[relation])
    )
    assert request_of(out.get_relation(relation.id))["namespace"] == "pulsar-client-test/second"


def test_relation_broken_waits(ctx: testing.Context):
    secret = token_secret()
    relation = answered_relation(secret)
    state = testing.State(leader=True, relations=[relation], secrets=[secret])
    out = ctx.run(ctx.on.relation_broken(relation), state)
    assert out.unit_status == testing.WaitingStatus("waiting for pulsar relation")


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"namespace": "no-slash"}, "namespace"),
        ({"namespace": "a/b/c"}, "namespace"),
        ({"namespace": "../x"}, "namespace"),
        ({"second-namespace": "x"}, "second-namespace"),
        ({"permissions": "produce,delete"}, "permissions"),
        ({"permissions": " , "}, "permissions"),
        ({"permissions": ""}, "permissions"),
    ],
)
def test_bad_config_blocks_and_requests_nothing(ctx: testing.Context, config, option):
    relation = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    state = testing.State(leader=True, relations=[relation], config=config)
    out = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert out.unit_status.message.startswith(f"{option}: "), out.unit_status.message
    assert dict(out.get_relation(relation.id).local_app_data) == {}


def test_namespace_created_event_reaches_reconcile(ctx: testing.Context):
    """The library's namespace_created is observed: the status is active in that same hook."""
    secret = token_secret()
    relation = answered_relation(secret)
    state = testing.State(leader=True, relations=[relation], secrets=[secret])
    ctx.run(ctx.on.relation_changed(relation), state)
    emitted = [type(e).__name__ for e in ctx.emitted_events]
    assert "NamespaceCreatedEvent" in emitted


def test_a_declared_function_is_written_on_the_pulsar_relation_only(ctx: testing.Context):
    function = {"tenant": "orders", "namespace": "eu", "name": "up", "py": "/x/up.py"}
    pulsar = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    second = testing.Relation("pulsar-second", remote_app_name="pulsar-k8s")
    state = testing.State(
        leader=True,
        relations=[pulsar, second],
        config={"namespace": "orders/eu", "function": json.dumps(function)},
    )
    out = ctx.run(ctx.on.config_changed(), state)
    data = out.get_relation(pulsar.id).local_app_data
    assert json.loads(data["functions"]) == [function]
    jsonschema.validate({"app": dict(data)}, json.loads(REQUIRER_SCHEMA.read_text()))
    assert "functions" not in out.get_relation(second.id).local_app_data
    # Emptied: the declaration is withdrawn from the relation.
    out = ctx.run(
        ctx.on.config_changed(), dataclasses.replace(out, config={"namespace": "orders/eu"})
    )
    assert "functions" not in out.get_relation(pulsar.id).local_app_data


def test_a_function_that_is_not_a_json_object_blocks(ctx: testing.Context):
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True, config={"function": "[1]"}))
    assert out.unit_status == testing.BlockedStatus(
        "function: a JSON object (a Pulsar Function config dict), or empty"
    )


CODE = (
    "from pulsar import Function\n\n"
    "class Up(Function):\n    def process(self, i, c):\n        return i\n"
)
IN_SECRET = {"tenant": "orders", "namespace": "eu", "name": "up", "className": "up.Up", "py": CODE}


def _code_secret(out: testing.State, relation_id: int) -> testing.Secret:
    (secret,) = [s for s in out.secrets if s.label == f"pulsar.{relation_id}.function-up.code"]
    return secret


def test_function_code_in_a_secret_granted_on_the_relation(ctx: testing.Context):
    pulsar = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    config = {
        "namespace": "orders/eu",
        "function": json.dumps(IN_SECRET),
        "function-code-in-secret": True,
    }
    state = testing.State(leader=True, relations=[pulsar], config=config)
    out = ctx.run(ctx.on.config_changed(), state)
    data = out.get_relation(pulsar.id).local_app_data
    (declared,) = json.loads(data["functions"])
    secret = _code_secret(out, pulsar.id)
    assert "py" not in declared and declared["code-secret"] == secret.id
    assert {k: v for k, v in declared.items() if k != "code-secret"} == {
        k: v for k, v in IN_SECRET.items() if k != "py"
    }
    assert secret.latest_content == {"code": CODE}
    assert secret.remote_grants == {pulsar.id: {"pulsar-k8s"}}
    jsonschema.validate({"app": dict(data)}, json.loads(REQUIRER_SCHEMA.read_text()))
    # Unchanged: nothing is rewritten; new code: a new revision of the same secret.
    again = ctx.run(ctx.on.update_status(), out)
    assert _code_secret(again, pulsar.id) == secret
    new_code = CODE.replace("return i", "return str(i).upper()")
    changed = {**config, "function": json.dumps({**IN_SECRET, "py": new_code})}
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(again, config=changed))
    assert _code_secret(out, pulsar.id).latest_content == {"code": new_code}
    assert out.get_relation(pulsar.id).local_app_data["functions"] == data["functions"]


def test_function_code_in_a_secret_needs_inline_code(ctx: testing.Context):
    function = {**IN_SECRET, "py": "/x/up.py"}
    config = {"function": json.dumps(function), "function-code-in-secret": True}
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=True, config=config))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith("function-code-in-secret: needs a function")


def test_the_code_secret_goes_with_the_relation(ctx: testing.Context):
    pulsar = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    config = {"function": json.dumps(IN_SECRET), "function-code-in-secret": True}
    out = ctx.run(
        ctx.on.config_changed(), testing.State(leader=True, relations=[pulsar], config=config)
    )
    assert _code_secret(out, pulsar.id)
    out = ctx.run(ctx.on.relation_broken(out.get_relation(pulsar.id)), out)
    assert not [s for s in out.secrets if s.label == f"pulsar.{pulsar.id}.function-up.code"]
