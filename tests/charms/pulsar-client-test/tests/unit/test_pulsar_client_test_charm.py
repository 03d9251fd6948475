"""The charm's reconcile: request written by the leader, statuses, bad config -> Blocked."""

from __future__ import annotations

import json

import pytest
from ops import testing
from pulsar_client_test_fakes import answered_relation, request_of, token_secret


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
        "permissions": ["produce", "consume"],
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
        "permissions": ["consume", "produce"],
    }


def test_config_change_updates_request(ctx: testing.Context):
    relation = testing.Relation(
        "pulsar",
        remote_app_name="pulsar-k8s",
        local_app_data={"namespace": "a/b", "permissions": json.dumps(["produce"])},
    )
    state = testing.State(leader=True, relations=[relation], config={"namespace": "c/d"})
    out = ctx.run(ctx.on.config_changed(), state)
    assert request_of(out.get_relation(relation.id)) == {
        "namespace": "c/d",
        "permissions": ["produce", "consume"],
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
    secret = token_secret()
    relation = answered_relation(secret, role="relation-7")
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


def test_provider_error_blocks(ctx: testing.Context):
    relation = testing.Relation(
        "pulsar", remote_app_name="pulsar-k8s", remote_app_data={"error": "tenant is reserved"}
    )
    out = ctx.run(ctx.on.relation_changed(relation), testing.State(relations=[relation]))
    assert out.unit_status == testing.BlockedStatus(
        "pulsar refused the request: tenant is reserved"
    )


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


def test_namespace_ready_event_reaches_reconcile(ctx: testing.Context):
    """The library's namespace_ready is observed: the status is active in that same hook."""
    secret = token_secret()
    relation = answered_relation(secret)
    state = testing.State(leader=True, relations=[relation], secrets=[secret])
    ctx.run(ctx.on.relation_changed(relation), state)
    emitted = [type(e).__name__ for e in ctx.emitted_events]
    assert "NamespaceReadyEvent" in emitted
