"""Both sides of the pulsar_client library with ops.testing, and the provider databag shape."""

from __future__ import annotations

import json

import jsonschema
import ops
import pytest
from charms.pulsar_k8s.v0.pulsar_client import (
    Endpoints,
    EndpointsChangedEvent,
    NamespaceReadyEvent,
    PulsarClientProvider,
    PulsarClientRequirer,
    TokenRotatedEvent,
    validate_namespace,
    validate_permissions,
)
from hypothesis import given
from hypothesis import strategies as st
from ops import testing

# -- requirer side -----------------------------------------------------------------------------

REQUIRER_META = {"name": "shop", "requires": {"pulsar": {"interface": "pulsar_client"}}}


class RequirerCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.pulsar = PulsarClientRequirer(
            self, "pulsar", namespace="shop/orders", permissions=("produce", "consume")
        )


class DefaultRequirerCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.pulsar = PulsarClientRequirer(self)


URLS = {
    "broker-service-url": "pulsar://pulsar-k8s.m.svc.cluster.local:6650",
    "web-service-url": "http://pulsar-k8s.m.svc.cluster.local:8080",
    "websocket-url": "ws://pulsar-k8s.m.svc.cluster.local:8080/ws/v2",
}


def provider_answer(secret: testing.Secret, **overrides: str) -> dict[str, str]:
    return {
        **URLS,
        "namespace": "shop/orders",
        "role": "relation-4",
        "secret-token": secret.id,
        **overrides,
    }


def emitted(ctx: testing.Context) -> list[type]:
    return [
        type(e)
        for e in ctx.emitted_events
        if isinstance(e, NamespaceReadyEvent | EndpointsChangedEvent | TokenRotatedEvent)
    ]


def test_requirer_leader_writes_its_request():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    relation = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    out = ctx.run(
        ctx.on.relation_created(relation), testing.State(leader=True, relations=[relation])
    )
    data = out.get_relation(relation.id).local_app_data
    assert data == {"namespace": "shop/orders", "permissions": '["produce", "consume"]'}


def test_requirer_default_namespace_is_app_slash_default():
    ctx = testing.Context(DefaultRequirerCharm, meta=REQUIRER_META)
    relation = testing.Relation("pulsar")
    out = ctx.run(
        ctx.on.relation_joined(relation), testing.State(leader=True, relations=[relation])
    )
    data = out.get_relation(relation.id).local_app_data
    assert data["namespace"] == "shop/default"
    assert json.loads(data["permissions"]) == ["produce", "consume"]


def test_requirer_non_leader_writes_nothing():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    relation = testing.Relation("pulsar")
    out = ctx.run(
        ctx.on.relation_joined(relation), testing.State(leader=False, relations=[relation])
    )
    assert out.get_relation(relation.id).local_app_data == {}


def test_requirer_bad_arguments_are_a_programming_error():
    class Bad(ops.CharmBase):
        def __init__(self, framework):
            super().__init__(framework)
            PulsarClientRequirer(self, permissions=("fly",))

    ctx = testing.Context(Bad, meta=REQUIRER_META)
    with pytest.raises(testing.errors.UncaughtCharmError):
        ctx.run(ctx.on.start(), testing.State())


def test_requirer_events_and_connection_over_a_relation_lifetime():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    secret = testing.Secret(tracked_content={"token": "tok-1"}, latest_content={"token": "tok-1"})
    relation = testing.Relation("pulsar", remote_app_data={})
    state = testing.State(leader=True, relations=[relation], secrets=[secret])

    # Nothing published yet: no event, no connection.
    out = ctx.run(ctx.on.relation_changed(relation), state)
    assert emitted(ctx) == []

    # The provider answers: namespace_ready, and connection() carries the token.
    relation = testing.Relation("pulsar", id=relation.id, remote_app_data=provider_answer(secret))
    state = testing.State(
        leader=True, relations=[relation], secrets=[secret], stored_states=out.stored_states
    )
    with ctx(ctx.on.relation_changed(relation), state) as manager:
        out = manager.run()
        connection = manager.charm.pulsar.connection()
    assert emitted(ctx) == [NamespaceReadyEvent]
    assert connection is not None
    assert (connection.namespace, connection.role, connection.token) == (
        "shop/orders",
        "relation-4",
        "tok-1",
    )
    assert connection.broker_service_url == URLS["broker-service-url"]
    assert "tok-1" not in repr(connection)
    # The unit-local state holds a digest, never the token.
    assert "tok-1" not in repr(out.stored_states)

    # Same data again: no event.
    ctx.emitted_events.clear()
    state = testing.State(
        leader=True, relations=[relation], secrets=[secret], stored_states=out.stored_states
    )
    out = ctx.run(ctx.on.relation_changed(relation), state)
    assert emitted(ctx) == []

    # The URL changes: endpoints_changed.
    moved = testing.Relation(
        "pulsar",
        id=relation.id,
        remote_app_data=provider_answer(secret, **{"web-service-url": "http://elsewhere:8080"}),
    )
    state = testing.State(
        leader=True, relations=[moved], secrets=[secret], stored_states=out.stored_states
    )
    out = ctx.run(ctx.on.relation_changed(moved), state)
    assert emitted(ctx) == [EndpointsChangedEvent]

    # The token is rotated (secret-changed): token_rotated.
    ctx.emitted_events.clear()
    rotated = testing.Secret(
        id=secret.id, tracked_content={"token": "tok-1"}, latest_content={"token": "tok-2"}
    )
    state = testing.State(
        leader=False, relations=[moved], secrets=[rotated], stored_states=out.stored_states
    )
    out = ctx.run(ctx.on.secret_changed(rotated), state)
    assert emitted(ctx) == [TokenRotatedEvent]


def test_requirer_reports_the_provider_error():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    relation = testing.Relation("pulsar", remote_app_data={"error": "namespace 'x': expected"})
    with ctx(ctx.on.update_status(), testing.State(relations=[relation])) as manager:
        manager.run()
        assert manager.charm.pulsar.error() == "namespace 'x': expected"
        assert manager.charm.pulsar.connection() is None


def test_requirer_missing_secret_is_no_connection():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    secret = testing.Secret(tracked_content={"token": "x"})
    data = provider_answer(secret, **{"secret-token": "secret:doesnotexist00000000"})
    relation = testing.Relation("pulsar", remote_app_data=data)
    with ctx(ctx.on.relation_changed(relation), testing.State(relations=[relation])) as manager:
        manager.run()
        assert manager.charm.pulsar.connection() is None
    assert emitted(ctx) == []


# -- provider side -----------------------------------------------------------------------------

PROVIDER_META = {"name": "pulsar-k8s", "provides": {"pulsar": {"interface": "pulsar_client"}}}

# What a client may rely on in the provider's application databag.
PROVIDER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "oneOf": [
        {
            "required": [
                "broker-service-url",
                "web-service-url",
                "websocket-url",
                "namespace",
                "role",
                "secret-token",
            ]
        },
        {"required": ["error"]},
    ],
    "properties": {
        "broker-service-url": {"type": "string", "pattern": "^pulsar(\\+ssl)?://[^/]+:\\d+$"},
        "web-service-url": {"type": "string", "pattern": "^https?://[^/]+:\\d+$"},
        "websocket-url": {"type": "string", "pattern": "^wss?://[^/]+:\\d+/ws/v2$"},
        "namespace": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"},
        "role": {"type": "string", "pattern": "^relation-\\d+$"},
        "secret-token": {"type": "string", "pattern": "^secret:"},
        "error": {"type": "string", "minLength": 1},
    },
}


class ProviderCharm(ops.CharmBase):
    """Publishes every valid request with a fixed token (the real charm mints one)."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.provider = PulsarClientProvider(self)
        framework.observe(self.on["pulsar"].relation_changed, self._on_changed)
        framework.observe(self.on["pulsar"].relation_broken, self._on_broken)

    def _on_changed(self, event: ops.RelationChangedEvent) -> None:
        request = self.provider.request(event.relation)
        if request.error:
            self.provider.publish_error(event.relation, request.error)
        else:
            endpoints = Endpoints(*URLS.values())
            self.provider.publish(event.relation, endpoints, request, f"token-{request.role}")

    def _on_broken(self, event: ops.RelationBrokenEvent) -> None:
        self.provider.withdraw(event.relation.id)


def test_provider_publishes_urls_and_a_granted_secret_matching_the_schema():
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation(
        "pulsar",
        remote_app_name="shop",
        remote_app_data={"namespace": "shop/orders", "permissions": '["produce"]'},
    )
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations=[relation])
    )
    data = out.get_relation(relation.id).local_app_data
    jsonschema.validate(data, PROVIDER_SCHEMA)
    assert data["role"] == f"relation-{relation.id}"
    assert data["namespace"] == "shop/orders"
    secret = out.get_secret(label=f"pulsar-client-{relation.id}")
    assert secret.tracked_content == {"token": f"token-relation-{relation.id}"}
    assert secret.remote_grants == {relation.id: {"shop"}}
    assert not any("token-relation" in value for value in data.values())


def test_provider_publish_is_idempotent_and_keeps_one_secret():
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data={})
    state = testing.State(leader=True, relations=[relation])
    out = ctx.run(ctx.on.relation_changed(relation), state)
    out = ctx.run(ctx.on.relation_changed(out.get_relation(relation.id)), out)
    assert len(out.secrets) == 1
    assert out.get_relation(relation.id).local_app_data["namespace"] == "shop/default"


@pytest.mark.parametrize(
    ("remote", "fragment"),
    [
        ({"namespace": "no-slash"}, "expected 'tenant/namespace'"),
        ({"namespace": "a/b/c"}, "expected 'tenant/namespace'"),
        ({"namespace": "bad name/x"}, "expected 'tenant/namespace'"),
        ({"namespace": "../x"}, "expected 'tenant/namespace'"),
        ({"namespace": "t/."}, "expected 'tenant/namespace'"),
        ({"permissions": '["produce", "fly"]'}, "unknown permissions ['fly']"),
        ({"permissions": "{not json"}, "JSON list"),
        ({"permissions": '"produce"'}, "JSON list"),
        ({"permissions": "[]"}, "must not be empty"),
    ],
)
def test_provider_reports_invalid_requests_without_raising(remote, fragment):
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data=remote)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations=[relation])
    )
    data = out.get_relation(relation.id).local_app_data
    jsonschema.validate(data, PROVIDER_SCHEMA)
    assert fragment in data["error"]
    assert out.secrets == frozenset()


def test_provider_withdraw_removes_the_secret():
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data={})
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations=[relation])
    )
    assert len(out.secrets) == 1
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert out.secrets == frozenset()


@given(st.text(max_size=40))
def test_validate_namespace_never_raises(text):
    error = validate_namespace(text)
    parts = text.split("/")
    ok = (
        len(parts) == 2
        and all(parts)
        and all(all(c.isascii() and (c.isalnum() or c in "_.-") for c in p) for p in parts)
    )
    assert (error is None) == ok


@given(st.lists(st.sampled_from(["produce", "consume", "functions", "admin", "x"]), max_size=5))
def test_validate_permissions_accepts_exactly_known_non_empty_lists(permissions):
    error = validate_permissions(permissions)
    assert (error is None) == (bool(permissions) and "x" not in permissions)
