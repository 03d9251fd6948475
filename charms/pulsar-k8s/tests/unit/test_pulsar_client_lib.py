"""Both sides of the pulsar_client library with ops.testing, against the published schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import ops
import pytest
from charms.pulsar_k8s.v0.pulsar_client import (
    Endpoints,
    EndpointsChangedEvent,
    NamespaceCreatedEvent,
    PulsarClientProvider,
    PulsarClientRequirer,
    StatusRaisedEvent,
    StatusResolvedEvent,
    TokenChangedEvent,
    not_served_yet,
    read_request,
    validate_namespace,
    validate_permissions,
)
from hypothesis import given
from hypothesis import strategies as st
from ops import testing

SCHEMAS = Path(__file__).resolve().parents[4] / "interfaces" / "pulsar_client" / "v0"


def schema(side: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{side}.json").read_text())


def assert_valid(side: str, app_data: Any) -> None:
    """Validate one application databag against the side's schema (no extra field allowed)."""
    jsonschema.Draft202012Validator(schema(side)).validate({"app": dict(app_data), "unit": {}})


def is_valid(side: str, app_data: Any) -> bool:
    return jsonschema.Draft202012Validator(schema(side)).is_valid({"app": dict(app_data)})


# -- requirer side -----------------------------------------------------------------------------

REQUIRER_META = {
    "name": "shop",
    "requires": {
        "pulsar": {"interface": "pulsar_client"},
        "audit": {"interface": "pulsar_client"},
    },
}


class RequirerCharm(ops.CharmBase):
    """Two endpoints, two namespaces (the way to get two namespaces from one cluster)."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.pulsar = PulsarClientRequirer(
            self, "pulsar", namespace="shop/orders", extra_user_roles=("produce", "consume")
        )
        self.audit = PulsarClientRequirer(
            self, "audit", namespace="shop/audit", extra_user_roles=("consume",)
        )


URLS = {
    "broker-service-url": "pulsar://pulsar-k8s.m.svc.cluster.local:6650",
    "web-service-url": "http://pulsar-k8s.m.svc.cluster.local:8080",
    "websocket-url": "ws://pulsar-k8s.m.svc.cluster.local:8080/ws/v2",
}


def user_secret(token: str = "tok-1", role: str = "relation-4") -> testing.Secret:
    content = {"username": role, "token": token}
    return testing.Secret(tracked_content=content, latest_content=content)


def provider_answer(secret: testing.Secret, **overrides: str) -> dict[str, str]:
    return {
        **URLS,
        "endpoints": "pulsar-k8s.m.svc.cluster.local:6650",
        "namespace": "shop/orders",
        "tls": "disabled",
        "secret-user": secret.id,
        **overrides,
    }


LIB_EVENTS = (
    NamespaceCreatedEvent,
    EndpointsChangedEvent,
    TokenChangedEvent,
    StatusRaisedEvent,
    StatusResolvedEvent,
)


def emitted(ctx: testing.Context) -> list[tuple[type, int]]:
    return [(type(e), e.relation.id) for e in ctx.emitted_events if isinstance(e, LIB_EVENTS)]


def test_requirer_leader_writes_its_request_on_every_relation_of_each_endpoint():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    first = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    other_cluster = testing.Relation("pulsar", remote_app_name="pulsar-eu")
    audit = testing.Relation("audit", remote_app_name="pulsar-k8s")
    state = testing.State(leader=True, relations=[first, other_cluster, audit])
    out = ctx.run(ctx.on.leader_elected(), state)
    orders = {
        "namespace": "shop/orders",
        "extra-user-roles": "produce,consume",
        "requested-secrets": '["username", "token", "tls", "tls-ca"]',
    }
    assert out.get_relation(first.id).local_app_data == orders
    assert out.get_relation(other_cluster.id).local_app_data == orders
    assert out.get_relation(audit.id).local_app_data == orders | {
        "namespace": "shop/audit",
        "extra-user-roles": "consume",
    }
    for relation in out.relations:
        assert_valid("requirer", relation.local_app_data)


def test_requirer_non_leader_writes_nothing():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    relation = testing.Relation("pulsar")
    out = ctx.run(
        ctx.on.relation_joined(relation), testing.State(leader=False, relations=[relation])
    )
    assert out.get_relation(relation.id).local_app_data == {}


@pytest.mark.parametrize(
    "kwargs", [{"namespace": "no-slash"}, {"namespace": "a/b", "extra_user_roles": ("fly",)}]
)
def test_requirer_bad_arguments_are_a_programming_error(kwargs):
    class Bad(ops.CharmBase):
        def __init__(self, framework):
            super().__init__(framework)
            PulsarClientRequirer(self, **kwargs)

    ctx = testing.Context(Bad, meta=REQUIRER_META)
    with pytest.raises(testing.errors.UncaughtCharmError):
        ctx.run(ctx.on.start(), testing.State())


def test_requirer_events_and_connection_over_a_relation_lifetime():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    secret = user_secret()
    relation = testing.Relation("pulsar", remote_app_data={})
    state = testing.State(leader=True, relations=[relation], secrets=[secret])

    # Nothing published yet: no event, no connection.
    out = ctx.run(ctx.on.relation_changed(relation), state)
    assert emitted(ctx) == []

    # The provider answers: namespace_created, and connection() carries role and token.
    relation = testing.Relation("pulsar", id=relation.id, remote_app_data=provider_answer(secret))
    state = testing.State(
        leader=True, relations=[relation], secrets=[secret], stored_states=out.stored_states
    )
    with ctx(ctx.on.relation_changed(relation), state) as manager:
        out = manager.run()
        connection = manager.charm.pulsar.connection()
    assert emitted(ctx) == [(NamespaceCreatedEvent, relation.id)]
    assert connection is not None
    assert (connection.namespace, connection.role, connection.token) == (
        "shop/orders",
        "relation-4",
        "tok-1",
    )
    assert connection.broker_service_url == URLS["broker-service-url"]
    assert connection.endpoints == "pulsar-k8s.m.svc.cluster.local:6650"
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
    assert emitted(ctx) == [(EndpointsChangedEvent, relation.id)]

    # The token is rotated (secret-changed): token_changed.
    ctx.emitted_events.clear()
    rotated = testing.Secret(
        id=secret.id,
        tracked_content=secret.tracked_content,
        latest_content={"username": "relation-4", "token": "tok-2"},
    )
    state = testing.State(
        leader=False, relations=[moved], secrets=[rotated], stored_states=out.stored_states
    )
    out = ctx.run(ctx.on.secret_changed(rotated), state)
    assert emitted(ctx) == [(TokenChangedEvent, relation.id)]


def test_requirer_two_endpoints_get_two_namespaces_with_their_own_events():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    orders_secret, audit_secret = (
        user_secret("tok-a", "relation-4"),
        user_secret("tok-b", "relation-5"),
    )
    orders = testing.Relation("pulsar", remote_app_data=provider_answer(orders_secret))
    audit = testing.Relation(
        "audit", remote_app_data=provider_answer(audit_secret, namespace="shop/audit")
    )
    state = testing.State(relations=[orders, audit], secrets=[orders_secret, audit_secret])
    with ctx(ctx.on.upgrade_charm(), state) as manager:
        manager.run()
        first = manager.charm.pulsar.connection()
        second = manager.charm.audit.connection()
        connections = manager.charm.pulsar.connections()
    assert first is not None and second is not None
    assert (first.namespace, first.role, first.token) == ("shop/orders", "relation-4", "tok-a")
    assert (second.namespace, second.role, second.token) == ("shop/audit", "relation-5", "tok-b")
    assert list(connections) == [orders.id]
    assert sorted(emitted(ctx), key=lambda e: e[1]) == sorted(
        [(NamespaceCreatedEvent, orders.id), (NamespaceCreatedEvent, audit.id)],
        key=lambda e: e[1],
    )


def test_requirer_raised_and_resolved_statuses():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    refused = [{"code": 5001, "message": "fields not understood: topic", "resolution": "fix"}]
    relation = testing.Relation("pulsar", remote_app_data={"status": json.dumps(refused)})
    with ctx(ctx.on.relation_changed(relation), testing.State(relations=[relation])) as manager:
        out = manager.run()
        assert manager.charm.pulsar.error() == "fields not understood: topic (fix)"
        (status,) = manager.charm.pulsar.statuses()
        assert status.is_fatal and not status.is_transitory
        assert manager.charm.pulsar.connection() is None
    assert emitted(ctx) == [(StatusRaisedEvent, relation.id)]

    ctx.emitted_events.clear()
    cleared = testing.Relation("pulsar", id=relation.id, remote_app_data={})
    state = testing.State(relations=[cleared], stored_states=out.stored_states)
    ctx.run(ctx.on.relation_changed(cleared), state)
    assert emitted(ctx) == [(StatusResolvedEvent, relation.id)]


def test_requirer_unreadable_status_is_reported_not_raised():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    relation = testing.Relation("pulsar", remote_app_data={"status": "{nope"})
    with ctx(ctx.on.relation_changed(relation), testing.State(relations=[relation])) as manager:
        manager.run()
        assert "unreadable status" in (manager.charm.pulsar.error() or "")


def test_requirer_missing_secret_is_no_connection():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    secret = user_secret()
    data = provider_answer(secret, **{"secret-user": "secret:doesnotexist00000000"})
    relation = testing.Relation("pulsar", remote_app_data=data)
    with ctx(ctx.on.relation_changed(relation), testing.State(relations=[relation])) as manager:
        manager.run()
        assert manager.charm.pulsar.connection() is None
    assert emitted(ctx) == []


# -- provider side -----------------------------------------------------------------------------

PROVIDER_META = {"name": "pulsar-k8s", "provides": {"pulsar": {"interface": "pulsar_client"}}}
REQUEST = {
    "namespace": "shop/orders",
    "extra-user-roles": "produce",
    "requested-secrets": '["username", "token"]',
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
        if request is None:
            return
        if request.error:
            self.provider.publish_error(event.relation, request.error)
        else:
            endpoints = Endpoints(*URLS.values())
            self.provider.publish(event.relation, endpoints, request, f"token-{request.role}")

    def _on_broken(self, event: ops.RelationBrokenEvent) -> None:
        self.provider.withdraw(event.relation.id)


def serve(remote: dict[str, str]) -> tuple[testing.State, testing.RelationBase]:
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data=remote)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations=[relation])
    )
    return out, out.get_relation(relation.id)


def test_provider_publishes_urls_and_a_granted_user_secret_matching_the_schema():
    out, relation = serve(REQUEST)
    data = relation.local_app_data
    assert_valid("provider", data)
    assert data["namespace"] == "shop/orders"
    assert data["endpoints"] == "pulsar-k8s.m.svc.cluster.local:6650"
    assert data["tls"] == "disabled"
    secret = out.get_secret(label=f"pulsar.{relation.id}.user.secret")
    assert secret.id == data["secret-user"]
    role = f"relation-{relation.id}"
    assert secret.tracked_content == {"username": role, "token": f"token-{role}"}
    assert secret.remote_grants == {relation.id: {"shop"}}
    assert not any("token-relation" in value for value in data.values())


def test_provider_publish_is_idempotent_and_keeps_one_secret():
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data=REQUEST)
    state = testing.State(leader=True, relations=[relation])
    out = ctx.run(ctx.on.relation_changed(relation), state)
    again = ctx.run(ctx.on.relation_changed(out.get_relation(relation.id)), out)
    assert len(again.secrets) == 1
    assert again.get_relation(relation.id).local_app_data == (
        out.get_relation(relation.id).local_app_data
    )


def test_provider_puts_tls_in_a_secret_when_requested():
    out, relation = serve(REQUEST | {"requested-secrets": '["username", "token", "tls"]'})
    data = relation.local_app_data
    assert_valid("provider", data)
    assert "tls" not in data
    secret = out.get_secret(label=f"pulsar.{relation.id}.tls.secret")
    assert (secret.id, secret.tracked_content) == (data["secret-tls"], {"tls": "disabled"})


def test_provider_waits_for_a_namespace_and_publishes_nothing():
    out, relation = serve({"requested-secrets": '["username", "token"]'})
    assert relation.local_app_data == {}
    assert out.secrets == frozenset()


@pytest.mark.parametrize(
    ("remote", "code", "fragment"),
    [
        # A kafka_client request is refused, never served as some default namespace.
        ({"topic": "orders", "extra-user-roles": "producer"}, 5001, "topic"),
        (REQUEST | {"database": "x"}, 5001, "database"),
        (REQUEST | {"namespace": "no-slash"}, 5002, "expected 'tenant/namespace'"),
        (REQUEST | {"namespace": "a/b/c"}, 5002, "expected 'tenant/namespace'"),
        (REQUEST | {"namespace": "../x"}, 5002, "expected 'tenant/namespace'"),
        (REQUEST | {"namespace": "t/."}, 5002, "expected 'tenant/namespace'"),
        (REQUEST | {"extra-user-roles": "produce,fly"}, 5003, "unknown permissions ['fly']"),
        (REQUEST | {"extra-user-roles": " , "}, 5003, "must not be empty"),
        ({"namespace": "shop/orders"}, 5004, "requested-secrets"),
        (REQUEST | {"requested-secrets": '["username"]'}, 5004, "requested-secrets"),
        (REQUEST | {"requested-secrets": "{nope"}, 5004, "requested-secrets"),
    ],
)
def test_provider_refuses_requests_it_does_not_understand(remote, code, fragment):
    out, relation = serve(remote)
    data = relation.local_app_data
    assert_valid("provider", data)
    (status,) = json.loads(data["status"])
    assert status["code"] == code
    assert fragment in status["message"]
    assert status["resolution"]
    assert set(data) == {"status"}
    assert out.secrets == frozenset()


def test_provider_refusal_withdraws_an_earlier_answer():
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data=REQUEST)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations=[relation])
    )
    changed = out.get_relation(relation.id)
    bad = testing.Relation(
        "pulsar",
        id=relation.id,
        remote_app_name="shop",
        remote_app_data={"topic": "x"},
        local_app_data=changed.local_app_data,
    )
    out = ctx.run(
        ctx.on.relation_changed(bad),
        testing.State(leader=True, relations=[bad], secrets=out.secrets),
    )
    assert set(out.get_relation(relation.id).local_app_data) == {"status"}
    assert out.secrets == frozenset()


def test_provider_transient_status_keeps_the_schema():
    class Reporting(ProviderCharm):
        def _on_changed(self, event: ops.RelationChangedEvent) -> None:
            self.provider.report(event.relation, not_served_yet("namespace x: HTTP 500"))

    ctx = testing.Context(Reporting, meta=PROVIDER_META)
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data=REQUEST)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations=[relation])
    )
    data = out.get_relation(relation.id).local_app_data
    assert_valid("provider", data)
    assert json.loads(data["status"])[0]["code"] == 4001


def test_provider_withdraw_removes_the_secrets():
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    remote = REQUEST | {"requested-secrets": '["username", "token", "tls-ca"]'}
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data=remote)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations=[relation])
    )
    assert len(out.secrets) == 2
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert out.secrets == frozenset()


# -- pure parts --------------------------------------------------------------------------------

NAMESPACES = ["shop/orders", ".x/y", "a/b/c", "../x", "t/.", "bad name/x", "./y", "", "x"]
ROLE_NAMES = ["produce", "consume", "functions", "admin", "fly", "producer"]
SECRET_NAMES = ["username", "token", "tls", "tls-ca"]
OTHER_KEYS = ["topic", "database", "permissions"]


@given(
    namespace=st.none() | st.sampled_from(NAMESPACES),
    roles=st.none() | st.lists(st.sampled_from(ROLE_NAMES), max_size=4).map(",".join),
    secrets=st.none() | st.lists(st.sampled_from(SECRET_NAMES), max_size=4).map(json.dumps),
    other=st.none() | st.sampled_from(OTHER_KEYS),
)
def test_the_library_accepts_exactly_what_the_requirer_schema_accepts(
    namespace, roles, secrets, other
):
    bag = {
        key: value
        for key, value in {
            "namespace": namespace,
            "extra-user-roles": roles,
            "requested-secrets": secrets,
            other or "": "x",
        }.items()
        if key and value is not None
    }
    request = read_request(7, "shop", bag)
    if request is None:  # nothing asked yet: no namespace and nothing foreign
        assert not bag.get("namespace") and not other
        return
    assert (request.error is None) == is_valid("requirer", bag), (bag, request.error)


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=30), max_size=4))
def test_read_request_never_raises(bag):
    request = read_request(3, "shop", bag)
    assert request is None or request.role == "relation-3"


@given(st.text(max_size=40))
def test_validate_namespace_never_raises(text):
    error = validate_namespace(text)
    parts = text.split("/")
    ok = (
        len(parts) == 2
        and all(parts)
        and all(set(p) != {"."} for p in parts)
        and all(all(c.isascii() and (c.isalnum() or c in "_.-") for c in p) for p in parts)
    )
    assert (error is None) == ok


@given(st.lists(st.sampled_from(["produce", "consume", "functions", "admin", "x"]), max_size=5))
def test_validate_permissions_accepts_exactly_known_non_empty_lists(permissions):
    error = validate_permissions(permissions)
    assert (error is None) == (bool(permissions) and "x" not in permissions)


def test_reference_page_names_every_field_status_and_event():
    """docs/reference/interfaces/pulsar_client.md is hand-written: keep it whole."""
    import charms.pulsar_k8s.v0.pulsar_client as lib

    page = (SCHEMAS.parents[2] / "docs/reference/interfaces/pulsar_client.md").read_text()
    for side, definition in (
        ("requirer", "PulsarRequirerData"),
        ("provider", "PulsarProviderData"),
    ):
        for name in schema(side)["$defs"][definition]["properties"]:
            assert f"`{name}`" in page, name
    statuses = [
        lib.not_understood(["x"]),
        lib.invalid_namespace("x"),
        lib.invalid_roles("x"),
        lib.secrets_not_requested(),
        lib.not_served_yet("x"),
    ]
    for status in statuses:
        assert f"| {status.code} |" in page, status.code
    for event in lib.PulsarClientRequirerEvents.__dict__:
        if not event.startswith("_"):
            assert f"`{event}`" in page, event


def test_provider_clears_what_the_previous_library_published():
    """After a refresh from LIBPATCH 1: old keys and the old secret go, the bag fits the schema."""
    ctx = testing.Context(ProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation(
        "pulsar",
        remote_app_name="shop",
        remote_app_data=REQUEST,
        local_app_data={"role": "relation-1", "secret-token": "secret:old", "error": "old"},
    )
    legacy = testing.Secret(
        tracked_content={"token": "old"}, owner="app", label=f"pulsar-client-{relation.id}"
    )
    out = ctx.run(
        ctx.on.relation_changed(relation),
        testing.State(leader=True, relations=[relation], secrets=[legacy]),
    )
    data = out.get_relation(relation.id).local_app_data
    assert_valid("provider", data)
    assert not {"role", "secret-token", "error"} & set(data)
    assert [s.label for s in out.secrets] == [f"pulsar.{relation.id}.user.secret"]


@pytest.mark.parametrize("namespace", ["team-a/orders\n", "team-a\n/orders", "team-a/orders\r"])
def test_a_namespace_with_a_line_break_is_refused(namespace):
    from charms.pulsar_k8s.v0.pulsar_client import validate_namespace

    assert validate_namespace(namespace) is not None
    assert validate_namespace("team-a/orders") is None


# -- TLS (LIBPATCH 6) ----------------------------------------------------------------------------

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
TLS_URLS = Endpoints(
    "pulsar+ssl://pulsar-k8s.m.svc.cluster.local:6651",
    "https://pulsar-k8s.m.svc.cluster.local:8443",
    "wss://pulsar-k8s.m.svc.cluster.local:8443/ws/v2",
    tls_ca=CA_PEM,
)


class TlsProviderCharm(ProviderCharm):
    def _on_changed(self, event: ops.RelationChangedEvent) -> None:
        request = self.provider.request(event.relation)
        assert request is not None and request.error is None
        self.provider.publish(event.relation, TLS_URLS, request, f"token-{request.role}")


def serve_tls(remote: dict[str, str]) -> tuple[testing.State, testing.RelationBase]:
    ctx = testing.Context(TlsProviderCharm, meta=PROVIDER_META)
    relation = testing.Relation("pulsar", remote_app_name="shop", remote_app_data=remote)
    out = ctx.run(
        ctx.on.relation_changed(relation), testing.State(leader=True, relations=[relation])
    )
    return out, out.get_relation(relation.id)


def test_provider_with_tls_publishes_tls_urls_and_the_ca_in_the_tls_secret():
    request = REQUEST | {"requested-secrets": '["username", "token", "tls", "tls-ca"]'}
    out, relation = serve_tls(request)
    data = relation.local_app_data
    assert_valid("provider", data)
    assert data["broker-service-url"] == TLS_URLS.broker_service_url
    assert data["endpoints"] == "pulsar-k8s.m.svc.cluster.local:6651"
    assert "tls" not in data and "tls-ca" not in data
    secret = out.get_secret(label=f"pulsar.{relation.id}.tls.secret")
    assert secret.id == data["secret-tls"]
    assert secret.tracked_content == {"tls": "enabled", "tls-ca": CA_PEM}


def test_provider_with_tls_says_enabled_to_an_old_requirer_without_the_ca():
    _out, relation = serve_tls(REQUEST)  # LIBPATCH <= 5: requested-secrets username, token
    data = relation.local_app_data
    assert_valid("provider", data)
    assert data["tls"] == "enabled"
    assert "BEGIN CERTIFICATE" not in json.dumps(dict(data))


def test_requirer_connection_carries_the_ca_and_a_new_ca_is_endpoints_changed():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    secret = user_secret()
    tls = testing.Secret(tracked_content={"tls": "enabled", "tls-ca": CA_PEM})
    answer = provider_answer(secret, **{"secret-tls": tls.id}) | {
        "broker-service-url": TLS_URLS.broker_service_url
    }
    answer.pop("tls")
    relation = testing.Relation("pulsar", remote_app_data=answer)
    state = testing.State(leader=True, relations=[relation], secrets=[secret, tls])
    with ctx(ctx.on.relation_changed(relation), state) as manager:
        out = manager.run()
        connection = manager.charm.pulsar.connection()
    assert connection is not None and connection.tls and connection.tls_ca == CA_PEM

    ctx.emitted_events.clear()
    rotated = testing.Secret(
        id=tls.id,
        tracked_content=tls.tracked_content,
        latest_content={"tls": "enabled", "tls-ca": CA_PEM.replace("MIIB", "MIIC")},
    )
    state = testing.State(
        leader=True,
        relations=[relation],
        secrets=[secret, rotated],
        stored_states=out.stored_states,
    )
    ctx.run(ctx.on.secret_changed(rotated), state)
    assert emitted(ctx) == [(EndpointsChangedEvent, relation.id)]


def test_requirer_tls_without_a_readable_ca_is_no_connection():
    ctx = testing.Context(RequirerCharm, meta=REQUIRER_META)
    secret = user_secret()
    answer = provider_answer(secret, tls="enabled")
    relation = testing.Relation("pulsar", remote_app_data=answer)
    state = testing.State(leader=True, relations=[relation], secrets=[secret])
    with ctx(ctx.on.relation_changed(relation), state) as manager:
        manager.run()
        assert manager.charm.pulsar.connection() is None
