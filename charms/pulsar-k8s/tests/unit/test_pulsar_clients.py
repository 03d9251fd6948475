"""The client relation provider in the reconcile, token auth bootstrap, and the actions."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ops
import pulsar_admin
import pulsar_tokens
import pytest
from charms.pulsar_k8s.v0.view_check import GRACE_S
from ops import pebble, testing
from pulsar_charm import INTERNAL_SECRET_ID_KEY, INTERNAL_SECRET_LABEL, RETRY_AFTER_S
from pulsar_client_serving import CLIENTS_KEY
from pulsar_render import ADMIN_TOKEN_PATH, BROKER_TOKEN_PATH, SECRET_KEY_PATH
from pulsar_view import VIEW_CHECK, VIEW_PATH
from test_pulsar_charm import (
    AUTH,
    INTERNAL,
    SECRET,
    SIGNING_KEY,
    bk_relation,
    expected_files,
    full_state,
    peers,
    state,
    zk_relation,
)
from test_pulsar_client_lib import assert_valid


@dataclass
class FakeAdmin:
    """Records admin calls; ``fail`` maps a method name to the status it answers."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)

    def _result(self, name: str, *args: Any) -> pulsar_admin.AdminResult:
        self.calls.append((name, *args))
        status = self.fail.get(name, 204)
        body = '{"reason": "boom"}' if status >= 300 else ("refused" if status == 0 else "")
        return pulsar_admin.AdminResult(status, body)

    def ensure_tenant(self, tenant, clusters, admin_roles=()):
        return self._result("ensure_tenant", tenant, list(clusters), list(admin_roles))

    def remove_tenant_admin(self, tenant, role):
        return self._result("remove_tenant_admin", tenant, role)

    def create_namespace(self, namespace):
        return self._result("create_namespace", namespace)

    def delete_namespace(self, namespace, force=False):
        return self._result("delete_namespace", namespace, force)

    def set_retention(self, namespace, minutes, size_mb):
        return self._result("set_retention", namespace, minutes, size_mb)

    def set_backlog_quota(self, namespace, limit_mb):
        return self._result("set_backlog_quota", namespace, limit_mb)

    def grant(self, namespace, role, actions):
        return self._result("grant", namespace, role, sorted(actions))

    def revoke(self, namespace, role):
        return self._result("revoke", namespace, role)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    fake = FakeAdmin()
    tokens: list[str] = []

    def factory(url: str, token: str, timeout: float = 0, web: Any = None) -> FakeAdmin:
        tokens.append(token)
        assert url.endswith(":8080")
        return fake

    monkeypatch.setattr(pulsar_admin, "PulsarAdmin", factory)
    fake.tokens = tokens  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


def client_relation(
    app: str = "shop", namespace: str | None = "shop/orders", permissions: Any = None, **kw: Any
) -> testing.Relation:
    data = {"requested-secrets": '["username", "token"]'}
    if namespace is not None:
        data["namespace"] = namespace
    if permissions is not None:
        data["extra-user-roles"] = ",".join(permissions)
    return testing.Relation("pulsar", remote_app_name=app, remote_app_data=data, **kw)


def user_label(relation_id: int) -> str:
    return f"pulsar.{relation_id}.user.secret"


def running_state(
    root: Path,
    *extra: Any,
    peer: testing.PeerRelation | None = None,
    secrets: list[testing.Secret] | None = None,
    **kw: Any,
):
    peer = peer or peers()
    relations = [zk_relation(SECRET), bk_relation(), peer, *extra]
    return state(
        root,
        running=True,
        files=expected_files(),
        relations=relations,
        secrets=[SECRET, *(secrets or [])],
        **kw,
    )


def _peer(out: testing.State) -> testing.PeerRelation:
    return next(r for r in out.relations if isinstance(r, testing.PeerRelation))


# -- token auth bootstrap ----------------------------------------------------------------------


def test_leader_creates_the_internal_secret_once_and_renders_private_auth_files(ctx, root):
    data = {k: v for k, v in peers().local_app_data.items() if k != INTERNAL_SECRET_ID_KEY}
    peer = testing.PeerRelation("cluster", local_app_data=data)
    state = full_state(root, relations=[zk_relation(SECRET), bk_relation(), peer])
    state = testing.State(
        leader=True,
        model=state.model,
        relations=state.relations,
        secrets=[SECRET],
        containers=state.containers,
    )
    out = ctx.run(ctx.on.config_changed(), state)
    internal = out.get_secret(label=INTERNAL_SECRET_LABEL)
    content = internal.tracked_content
    assert set(content) == {"signing-key", "admin-token", "broker-token"}
    assert pulsar_tokens.token_role(content["signing-key"], content["admin-token"]) == "admin"
    assert (
        pulsar_tokens.token_role(content["signing-key"], content["broker-token"])
        == "pulsar-broker"
    )
    assert _peer(out).local_app_data[INTERNAL_SECRET_ID_KEY] == internal.id
    assert (root / "conf" / "auth" / "admin.token").read_text() == content["admin-token"]
    assert isinstance(out.unit_status, ops.ActiveStatus)
    # The next event reuses it.
    out2 = ctx.run(ctx.on.update_status(), out)
    assert [s.label for s in out2.secrets].count(INTERNAL_SECRET_LABEL) == 1


def test_non_leader_without_the_internal_secret_waits(ctx, root, calls):
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={
            k: v for k, v in peers().local_app_data.items() if k != INTERNAL_SECRET_ID_KEY
        },
    )
    state = full_state(root, leader=False, relations=[zk_relation(SECRET), bk_relation(), peer])
    state = testing.State(
        leader=False,
        model=state.model,
        relations=state.relations,
        secrets=[SECRET],
        containers=state.containers,
    )
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status == ops.WaitingStatus(
        "waiting for the leader to create the pulsar-internal secret"
    )
    assert calls.names() == []


def test_auth_files_are_pushed_0600_and_no_secret_in_the_plan(ctx, root, monkeypatch):
    modes: dict[str, int | None] = {}
    original = ops.Container.push

    def push(self, path, source, *args, **kwargs):
        modes[str(path)] = kwargs.get("permissions")
        assert (kwargs.get("user_id"), kwargs.get("group_id")) == (10000, 0)
        return original(self, path, source, *args, **kwargs)

    monkeypatch.setattr(ops.Container, "push", push)
    before = full_state(root)
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    for path in (SECRET_KEY_PATH, ADMIN_TOKEN_PATH, BROKER_TOKEN_PATH):
        assert modes[path] == 0o600
    assert modes["/pulsar/conf/broker.conf"] == 0o644
    plan = repr(out.get_container("pulsar").plan.to_dict())
    for secret in (AUTH.admin_token, AUTH.broker_token, SIGNING_KEY):
        assert secret not in plan


def test_readiness_is_polled_with_the_admin_token(ctx, root, monkeypatch):
    seen: list[str | None] = []

    def broker_ready(_address, timeout=0, token=None, web=None):
        seen.append(token)
        return True

    monkeypatch.setattr(pulsar_admin, "broker_ready", broker_ready)
    ctx.run(ctx.on.update_status(), running_state(root))
    assert seen and set(seen) == {AUTH.admin_token}


# -- serving client relations ------------------------------------------------------------------


def test_leader_creates_tenant_namespace_grants_and_publishes(ctx, root, admin):
    relation = client_relation(permissions=["consume", "produce"])
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    role = f"relation-{relation.id}"
    assert admin.calls == [
        ("ensure_tenant", "shop", ["pulsar"], []),
        ("remove_tenant_admin", "shop", role),
        ("create_namespace", "shop/orders"),
        ("grant", "shop/orders", role, ["consume", "produce"]),
    ]
    assert admin.tokens == [AUTH.admin_token]  # type: ignore[attr-defined]
    data = out.get_relation(relation.id).local_app_data
    assert data["broker-service-url"] == "pulsar://pulsar-k8s.pulsar.svc.cluster.local:6650"
    assert data["web-service-url"] == "http://pulsar-k8s.pulsar.svc.cluster.local:8080"
    assert data["websocket-url"] == "ws://pulsar-k8s.pulsar.svc.cluster.local:8080/ws/v2"
    assert_valid("provider", data)
    assert data["endpoints"] == "pulsar-k8s.pulsar.svc.cluster.local:6650"
    assert data["namespace"] == "shop/orders"
    secret = out.get_secret(label=user_label(relation.id))
    assert data["secret-user"] == secret.id
    assert secret.tracked_content["username"] == role
    token = secret.tracked_content["token"]
    assert pulsar_tokens.token_role(SIGNING_KEY, token) == role
    assert secret.remote_grants == {relation.id: {"shop"}}
    # no token in plain relation data, anywhere
    for rel in out.relations:
        for bag in (rel.local_app_data, rel.local_unit_data):
            assert token not in json.dumps(dict(bag))
            assert AUTH.admin_token not in json.dumps(dict(bag))
    assert json.loads(_peer(out).local_app_data[CLIENTS_KEY]) == {role: "shop/orders"}
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar), 1 client")


def test_admin_permission_makes_the_role_a_tenant_admin(ctx, root, admin):
    relation = client_relation(permissions=["admin", "functions"])
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    role = f"relation-{relation.id}"
    assert admin.calls == [
        ("ensure_tenant", "shop", ["pulsar"], [role]),
        ("create_namespace", "shop/orders"),
        ("grant", "shop/orders", role, ["functions"]),
    ]
    assert out.get_relation(relation.id).local_app_data["namespace"] == "shop/orders"


def test_no_namespace_yet_is_not_guessed(ctx, root, admin):
    relation = client_relation(namespace=None)
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    assert admin.calls == []
    assert out.get_relation(relation.id).local_app_data == {}
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


def test_two_relations_of_one_application_get_two_namespaces_and_roles(ctx, root, admin):
    orders = client_relation(namespace="shop/orders")
    audit = client_relation(namespace="shop/audit", permissions=["consume"])
    out = ctx.run(ctx.on.relation_changed(orders), running_state(root, orders, audit))
    first, second = f"relation-{orders.id}", f"relation-{audit.id}"
    assert ("grant", "shop/orders", first, ["consume", "produce"]) in admin.calls
    assert ("grant", "shop/audit", second, ["consume"]) in admin.calls
    assert json.loads(_peer(out).local_app_data[CLIENTS_KEY]) == {
        first: "shop/orders",
        second: "shop/audit",
    }
    tokens = {
        out.get_secret(label=user_label(r.id)).tracked_content["token"] for r in (orders, audit)
    }
    assert {pulsar_tokens.token_role(SIGNING_KEY, t) for t in tokens} == {first, second}
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar), 2 clients")


def test_kafka_style_request_is_refused_on_the_relation_and_granted_nothing(ctx, root, admin):
    relation = testing.Relation(
        "pulsar",
        remote_app_name="shop",
        remote_app_data={"topic": "orders", "extra-user-roles": "producer"},
    )
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    assert admin.calls == []
    data = out.get_relation(relation.id).local_app_data
    assert_valid("provider", data)
    (status,) = json.loads(data["status"])
    assert status["code"] == 5001
    assert "topic" in status["message"]
    assert set(data) == {"status"}
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert "shop: request fields not understood by pulsar_client: topic" in out.unit_status.message


def test_a_served_relation_that_turns_invalid_loses_its_grant(ctx, root, admin):
    relation = client_relation()
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    role = f"relation-{relation.id}"
    admin.calls.clear()
    served = out.get_relation(relation.id)
    invalid = testing.Relation(
        "pulsar",
        id=relation.id,
        remote_app_name="shop",
        remote_app_data={"topic": "orders"},
        local_app_data=served.local_app_data,
    )
    relations = [r for r in out.relations if r.id != relation.id] + [invalid]
    out = ctx.run(ctx.on.relation_changed(invalid), dataclasses.replace(out, relations=relations))
    assert ("revoke", "shop/orders", role) in admin.calls
    assert CLIENTS_KEY not in _peer(out).local_app_data
    assert all(s.label != user_label(relation.id) for s in out.secrets)
    assert set(out.get_relation(relation.id).local_app_data) == {"status"}


def test_token_is_never_reminted_while_the_key_is_unchanged(ctx, root, admin):
    relation = client_relation()
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    label = user_label(relation.id)
    first = out.get_secret(label=label).tracked_content["token"]
    # Another event, and a leader change: same secret revision, same token.
    out = ctx.run(ctx.on.leader_elected(), out)
    out = ctx.run(ctx.on.update_status(), out)
    secret = out.get_secret(label=label)
    assert secret.tracked_content["token"] == first
    assert secret.latest_content == {"username": f"relation-{relation.id}", "token": first}


def test_a_token_signed_with_an_old_key_is_reminted(ctx, root, admin):
    relation = client_relation()
    stale = testing.Secret(
        tracked_content={"token": pulsar_tokens.mint_token(pulsar_tokens.generate_key(), "x")},
        owner="app",
        label=user_label(relation.id),
    )
    out = ctx.run(
        ctx.on.relation_changed(relation), running_state(root, relation, secrets=[stale])
    )
    token = out.get_secret(label=stale.label).latest_content["token"]  # type: ignore[index]
    assert pulsar_tokens.token_role(SIGNING_KEY, token) == f"relation-{relation.id}"


def test_gone_relation_is_revoked_level_triggered_namespace_kept(ctx, root, admin):
    peer = peers(app_data={CLIENTS_KEY: json.dumps({"relation-42": "old/ns"})})
    stale = testing.Secret(tracked_content={"token": "t"}, owner="app", label=user_label(42))
    out = ctx.run(ctx.on.update_status(), running_state(root, peer=peer, secrets=[stale]))
    assert admin.calls == [
        ("revoke", "old/ns", "relation-42"),
        ("remove_tenant_admin", "old", "relation-42"),
    ]
    assert "delete_namespace" not in admin.names()
    assert CLIENTS_KEY not in _peer(out).local_app_data
    assert all(s.label != user_label(42) for s in out.secrets)
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


def test_a_relation_that_stops_asking_is_revoked_and_its_answer_withdrawn(ctx, root, admin):
    relation = client_relation()
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    served = out.get_relation(relation.id)
    silent = testing.Relation(
        "pulsar",
        id=relation.id,
        remote_app_name="shop",
        remote_app_data={},
        local_app_data=served.local_app_data,
    )
    relations = [r for r in out.relations if r.id != relation.id] + [silent]
    admin.calls.clear()
    out = ctx.run(ctx.on.relation_changed(silent), dataclasses.replace(out, relations=relations))
    assert ("revoke", "shop/orders", f"relation-{relation.id}") in admin.calls
    assert out.get_relation(relation.id).local_app_data == {}
    assert all(s.label != user_label(relation.id) for s in out.secrets)


def test_failed_revocation_is_retried_and_reported(ctx, root, admin):
    admin.fail["revoke"] = 500
    peer = peers(app_data={CLIENTS_KEY: json.dumps({"relation-42": "old/ns"})})
    out = ctx.run(ctx.on.update_status(), running_state(root, peer=peer))
    assert json.loads(_peer(out).local_app_data[CLIENTS_KEY]) == {"relation-42": "old/ns"}
    assert out.unit_status == ops.ActiveStatus(
        "broker ready (cluster pulsar), 1 client; revoking relation-42 failed: HTTP 500: boom"
    )


def test_relation_moved_to_another_namespace_revokes_the_old_one(ctx, root, admin):
    relation = client_relation(namespace="shop/new")
    role = f"relation-{relation.id}"
    peer = peers(app_data={CLIENTS_KEY: json.dumps({role: "shop/old"})})
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation, peer=peer))
    assert ("revoke", "shop/old", role) in admin.calls
    assert json.loads(_peer(out).local_app_data[CLIENTS_KEY]) == {role: "shop/new"}


def test_invalid_request_is_reported_and_touches_nothing(ctx, root, admin):
    relation = client_relation(namespace="not a namespace")
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    assert admin.calls == []
    data = out.get_relation(relation.id).local_app_data
    (status,) = json.loads(data["status"])
    assert status["code"] == 5002
    assert "expected 'tenant/namespace'" in status["message"]
    assert "secret-user" not in data
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert "shop: namespace 'not a namespace'" in out.unit_status.message


def test_admin_api_failure_is_a_transient_status_no_credentials_no_raise(ctx, root, admin):
    admin.fail["create_namespace"] = 0
    relation = client_relation()
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    data = out.get_relation(relation.id).local_app_data
    assert_valid("provider", data)
    (status,) = json.loads(data["status"])
    assert status["code"] == 4001
    assert "broker not reachable" in status["message"]
    assert set(data) == {"status"}
    assert out.secrets == running_state(root, relation).secrets
    assert CLIENTS_KEY not in _peer(out).local_app_data
    assert out.unit_status == ops.ActiveStatus(
        "broker ready (cluster pulsar); shop: namespace shop/orders: broker not reachable "
        "(refused)"
    )


def test_non_leader_serves_nothing_but_reports_the_count(ctx, root, admin):
    relation = client_relation()
    peer = peers(app_data={CLIENTS_KEY: json.dumps({f"relation-{relation.id}": "shop/orders"})})
    out = ctx.run(
        ctx.on.relation_changed(relation), running_state(root, relation, peer=peer, leader=False)
    )
    assert admin.calls == []
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar), 1 client")


def test_broker_not_ready_serves_no_client(ctx, root, admin, fake_broker):
    fake_broker.ready = False
    relation = client_relation()
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    assert admin.calls == []
    assert isinstance(out.unit_status, ops.WaitingStatus)


# -- actions -----------------------------------------------------------------------------------


def run_action(ctx, root, name: str, params: dict[str, Any] | None = None, **kw: Any):
    return ctx.run(ctx.on.action(name, params=params or {}), running_state(root, **kw))


def test_get_admin_token(ctx, root):
    run_action(ctx, root, "get-admin-token")
    assert ctx.action_results == {"token": AUTH.admin_token, "role": "admin"}


def test_get_admin_token_without_the_secret_fails_clearly(ctx, root):
    state = running_state(root)
    state = testing.State(
        leader=False,
        model=state.model,
        relations=state.relations,
        secrets=[SECRET],
        containers=state.containers,
    )
    with pytest.raises(testing.ActionFailed, match="token credentials do not exist yet"):
        ctx.run(ctx.on.action("get-admin-token"), state)


def test_create_tenant(ctx, root, admin):
    run_action(ctx, root, "create-tenant", {"tenant": "acme", "admin-roles": "ops, alice"})
    assert admin.calls == [("ensure_tenant", "acme", ["pulsar"], ["alice", "ops"])]
    assert ctx.action_results == {"tenant": "acme", "admin-roles": "alice,ops"}


def test_create_namespace_with_policies(ctx, root, admin):
    params = {
        "namespace": "acme/orders",
        "retention-time-minutes": 60,
        "retention-size-mb": 100,
        "backlog-quota-mb": 50,
    }
    run_action(ctx, root, "create-namespace", params)
    assert admin.calls == [
        ("create_namespace", "acme/orders"),
        ("set_retention", "acme/orders", 60, 100),
        ("set_backlog_quota", "acme/orders", 50),
    ]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("create-tenant", {"tenant": "bad name"}, "tenant: required"),
        ("create-tenant", {"tenant": "ok", "admin-roles": "a b"}, "admin-roles: invalid"),
        ("create-namespace", {"namespace": "nope"}, "expected 'tenant/namespace'"),
        (
            "create-namespace",
            {"namespace": "a/b", "retention-time-minutes": 5},
            "must be given together",
        ),
        (
            "create-namespace",
            {"namespace": "a/b", "backlog-quota-mb": -7},
            "backlog-quota-mb: an integer >= -1",
        ),
        (
            "grant-permissions",
            {"namespace": "a/b", "role": "app", "permissions": "produce,fly"},
            "permissions: a comma-separated subset",
        ),
        (
            "grant-permissions",
            {"namespace": "a/b", "role": "relation-3", "permissions": "produce"},
            "managed by the pulsar relation",
        ),
        (
            "grant-permissions",
            {"namespace": "a/b", "role": "admin", "permissions": "produce"},
            "super-user role",
        ),
        ("revoke-permissions", {"namespace": "a/b", "role": "has space"}, "role: required"),
        ("revoke-permissions", {"namespace": "a/b", "role": ".."}, "role: required"),
        ("delete-namespace", {"namespace": "a/.."}, "expected 'tenant/namespace'"),
        ("delete-namespace", {"namespace": "a"}, "expected 'tenant/namespace'"),
    ],
)
def test_actions_validate_parameters(ctx, root, admin, name, params, message):
    with pytest.raises(testing.ActionFailed, match=message):
        run_action(ctx, root, name, params)
    assert admin.calls == []


def test_grant_and_revoke_permissions(ctx, root, admin):
    params = {"namespace": "a/b", "role": "app", "permissions": "consume,produce"}
    run_action(ctx, root, "grant-permissions", params)
    run_action(ctx, root, "revoke-permissions", {"namespace": "a/b", "role": "app"})
    assert admin.calls == [
        ("grant", "a/b", "app", ["consume", "produce"]),
        ("revoke", "a/b", "app"),
    ]


def test_delete_namespace_refuses_one_served_to_a_relation(ctx, root, admin):
    peer = peers(app_data={CLIENTS_KEY: json.dumps({"relation-5": "shop/orders"})})
    with pytest.raises(testing.ActionFailed, match="served to related applications"):
        run_action(ctx, root, "delete-namespace", {"namespace": "shop/orders"}, peer=peer)
    run_action(ctx, root, "delete-namespace", {"namespace": "shop/other", "force": True})
    assert admin.calls == [("delete_namespace", "shop/other", True)]


def test_api_failure_fails_the_action_with_the_broker_reason(ctx, root, admin):
    admin.fail["create_namespace"] = 404
    with pytest.raises(
        testing.ActionFailed, match="creating namespace a/b failed: HTTP 404: boom"
    ):
        run_action(ctx, root, "create-namespace", {"namespace": "a/b"})


def test_internal_secret_is_in_the_default_state():
    # guard for the shared fixtures: every full_state carries the internal secret
    assert INTERNAL.label == INTERNAL_SECRET_LABEL


def test_relation_broken_revokes_that_role_and_withdraws_its_secret(ctx, root, admin):
    relation = client_relation()
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    role = f"relation-{relation.id}"
    assert json.loads(_peer(out).local_app_data[CLIENTS_KEY]) == {role: "shop/orders"}
    admin.calls.clear()
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert ("revoke", "shop/orders", role) in admin.calls
    assert "delete_namespace" not in admin.names()
    assert CLIENTS_KEY not in _peer(out).local_app_data
    assert all(s.label != user_label(relation.id) for s in out.secrets)
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


# -- the peer state ------------------------------------------------------------------------------


def test_a_corrupt_clients_record_waits_naming_cluster_and_field(ctx, root, admin):
    peer = peers(app_data={CLIENTS_KEY: json.dumps({"relation-5": "../../admin"})})
    out = ctx.run(ctx.on.update_status(), running_state(root, peer=peer))
    assert out.unit_status == ops.WaitingStatus(
        "cluster relation: clients holds a value that is not a namespace; waiting for valid data"
    )
    assert admin.calls == []


def test_a_corrupt_clients_record_fails_delete_namespace_not_the_hook(ctx, root, admin):
    peer = peers(app_data={CLIENTS_KEY: "not json"})
    with pytest.raises(testing.ActionFailed, match="cluster relation: clients is not JSON"):
        run_action(ctx, root, "delete-namespace", {"namespace": "shop/orders"}, peer=peer)
    assert admin.calls == []


def test_failed_namespace_creation_schedules_its_retry(ctx, root, admin):
    """A namespace the broker refused is retried on a real event, not update-status: the leader
    records a retry view, so its broker-view check fails once the retry is due; that event's
    reconcile records the live view again and serves the relation."""
    admin.fail["create_namespace"] = 500
    relation = client_relation()
    out = ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    view = (root / Path(VIEW_PATH).relative_to("/pulsar")).read_text()
    assert view.startswith("retry:ready ")
    due = int(view.split()[1]) + GRACE_S
    assert time.time() < due <= time.time() + RETRY_AFTER_S + 1
    admin.fail.clear()
    check = testing.CheckInfo(VIEW_CHECK, status=pebble.CheckStatus.DOWN, failures=1, threshold=1)
    container = dataclasses.replace(out.get_container("pulsar"), check_infos={check})
    out = ctx.run(
        ctx.on.pebble_check_failed(container, check),
        dataclasses.replace(out, containers={container}),
    )
    assert ("create_namespace", "shop/orders") in admin.calls
    assert CLIENTS_KEY in _peer(out).local_app_data
    assert (root / Path(VIEW_PATH).relative_to("/pulsar")).read_text().startswith("ready ")


def test_served_clients_schedule_no_retry(ctx, root, admin):
    relation = client_relation()
    ctx.run(ctx.on.relation_changed(relation), running_state(root, relation))
    view = (root / Path(VIEW_PATH).relative_to("/pulsar")).read_text()
    assert not view.startswith("retry:")
