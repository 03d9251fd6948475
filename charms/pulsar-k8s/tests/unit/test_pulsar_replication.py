"""Geo-replication over ``replication-offer`` / ``replication`` (pulsar_replication)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import ops
import pulsar_admin
import pulsar_replication
import pulsar_tokens
import pytest
from charms.pulsar_k8s.v0.validation import InvalidField
from ops import testing
from pulsar_replication import PEERS_KEY, TOKEN_AUTH_PLUGIN, parse_record, token_secret_label
from test_pulsar_charm import SIGNING_KEY, peers
from test_pulsar_clients import _peer, running_state

PEER_TOKEN = "peer.token.value"
SCHEMA = Path(__file__).resolve().parents[4] / "interfaces/pulsar_replication/v0/app.json"
ACTIVE = "broker ready (cluster pulsar)"


@dataclass
class FakeCluster:
    """This cluster's admin API, in memory: clusters, tenants, namespaces, grants."""

    clusters: dict[str, dict[str, str]] = field(default_factory=dict)
    tenants: dict[str, set[str]] = field(default_factory=dict)
    replication: dict[str, list[str]] = field(default_factory=dict)
    grants: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    # method name -> the status it answers instead (0: not reachable)
    fail: dict[str, int] = field(default_factory=dict)

    def _answer(self, name: str, *args: Any, body: Any = "") -> pulsar_admin.AdminResult:
        self.calls.append((name, *args))
        if name in self.fail:
            status = self.fail[name]
            return pulsar_admin.AdminResult(status, '{"reason": "boom"}' if status else "down")
        text = body if isinstance(body, str) else json.dumps(body)
        return pulsar_admin.AdminResult(200 if text else 204, text)

    def writes(self) -> list[str]:
        reads = {"get_cluster", "get_tenant", "replication_clusters", "permissions"}
        return [c[0] for c in self.calls if c[0] not in reads]


class FakeAdmin:
    def __init__(self, cluster: FakeCluster):
        self.c = cluster

    def get_cluster(self, name):
        if name not in self.c.clusters and "get_cluster" not in self.c.fail:
            self.c.calls.append(("get_cluster", name))
            return pulsar_admin.AdminResult(404, "")
        return self.c._answer("get_cluster", name, body=self.c.clusters.get(name, {}))

    def put_cluster(self, name, data):
        result = self.c._answer("put_cluster", name)
        if result.ok:
            self.c.clusters[name] = dict(data)
        return result

    def update_cluster(self, name, data):
        result = self.c._answer("update_cluster", name)
        if result.ok:
            self.c.clusters[name] = dict(data)
        return result

    def delete_cluster(self, name):
        result = self.c._answer("delete_cluster", name)
        if result.ok:
            self.c.clusters.pop(name, None)
        return result

    def get_tenant(self, tenant):
        return self.c._answer("get_tenant", tenant)

    def ensure_tenant(self, tenant, clusters, admin_roles=()):
        if set(clusters) <= self.c.tenants.get(tenant, set()):
            return self.c._answer("get_tenant", tenant)
        result = self.c._answer("ensure_tenant", tenant, sorted(clusters))
        if result.ok:
            self.c.tenants.setdefault(tenant, set()).update(clusters)
        return result

    def remove_tenant_cluster(self, tenant, cluster):
        result = self.c._answer("remove_tenant_cluster", tenant, cluster)
        if result.ok:
            self.c.tenants.get(tenant, set()).discard(cluster)
        return result

    def create_namespace(self, namespace):
        result = self.c._answer("create_namespace", namespace)
        if result.ok:
            self.c.namespaces.add(namespace)
        return result

    def permissions(self, namespace):
        if namespace not in self.c.namespaces:
            self.c.calls.append(("permissions", namespace))
            return pulsar_admin.AdminResult(404, "")
        return self.c._answer("permissions", namespace, body=self.c.grants.get(namespace, {}))

    def grant(self, namespace, role, actions):
        result = self.c._answer("grant", namespace, role, sorted(actions))
        if result.ok:
            self.c.grants.setdefault(namespace, {})[role] = sorted(actions)
        return result

    def revoke(self, namespace, role):
        result = self.c._answer("revoke", namespace, role)
        if result.ok:
            self.c.grants.get(namespace, {}).pop(role, None)
        return result

    def replication_clusters(self, namespace):
        return self.c._answer(
            "replication_clusters", namespace, body=self.c.replication.get(namespace, ["pulsar"])
        )

    def set_replication_clusters(self, namespace, clusters):
        result = self.c._answer("set_replication_clusters", namespace, sorted(clusters))
        if result.ok:
            self.c.replication[namespace] = sorted(clusters)
        return result


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster()
    tokens: list[str] = []

    def factory(url: str, token: str, timeout: float = 0, web: Any = None) -> FakeAdmin:
        tokens.append(token)
        assert url.endswith(":8080")
        return FakeAdmin(fake)

    monkeypatch.setattr(pulsar_replication, "ReplicationAdmin", factory)
    fake.tokens = tokens  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


def peer_secret(token: str = PEER_TOKEN) -> testing.Secret:
    return testing.Secret(tracked_content={"token": token})


def link(
    endpoint: str = "replication",
    cluster_name: str | None = "east",
    secret: testing.Secret | None = None,
    app: str = "pulsar-east",
    **overrides: str,
) -> testing.Relation:
    data = {
        "broker-service-url": "pulsar://pulsar-east.east.svc.cluster.local:6650",
        "web-service-url": "http://pulsar-east.east.svc.cluster.local:8080",
    }
    if cluster_name is not None:
        data["cluster-name"] = cluster_name
    if secret is not None:
        data["token-secret-id"] = secret.id
    data.update(overrides)
    return testing.Relation(endpoint, remote_app_name=app, remote_app_data=data)


def run(ctx, root, *relations, secrets=(), config=None, peer=None, event=None, leader=True):
    state = running_state(
        root,
        *relations,
        peer=peer,
        secrets=list(secrets),
        config={"replicated-namespaces": "geo/orders", **(config or {})},
        leader=leader,
    )
    return ctx.run(event or ctx.on.update_status(), state)


def record(out: testing.State):
    return parse_record(_peer(out).local_app_data.get(PEERS_KEY))


# -- both directions ---------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["replication", "replication-offer"])
def test_leader_publishes_registers_the_peer_and_replicates(ctx, root, cluster, endpoint):
    secret = peer_secret()
    relation = link(endpoint, secret=secret)
    out = run(ctx, root, relation, secrets=[secret], event=ctx.on.relation_changed(relation))
    data = out.get_relation(relation.id).local_app_data
    assert data["cluster-name"] == "pulsar"
    assert data["broker-service-url"] == "pulsar://pulsar-k8s.pulsar.svc.cluster.local:6650"
    assert data["web-service-url"] == "http://pulsar-k8s.pulsar.svc.cluster.local:8080"
    # The peer's token against this cluster: role replicator-east, in a secret granted to it.
    mine = out.get_secret(label=token_secret_label(relation.id))
    assert data["token-secret-id"] == mine.id
    assert mine.remote_grants == {relation.id: {"pulsar-east"}}
    token = mine.tracked_content["token"]
    assert pulsar_tokens.token_role(SIGNING_KEY, token) == "replicator-east"
    assert token not in json.dumps(dict(data))
    # The contract: both sides write what interfaces/pulsar_replication/v0/app.json allows.
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(dict(data))
    # This cluster's half: the peer registered with its URLs and its token.
    assert cluster.clusters["east"] == {
        "serviceUrl": "http://pulsar-east.east.svc.cluster.local:8080",
        "brokerServiceUrl": "pulsar://pulsar-east.east.svc.cluster.local:6650",
        "authenticationPlugin": TOKEN_AUTH_PLUGIN,
        "authenticationParameters": f"token:{PEER_TOKEN}",
    }
    assert cluster.tenants == {"geo": {"pulsar", "east"}}
    assert cluster.grants == {"geo/orders": {"replicator-east": ["produce"]}}
    assert cluster.replication == {"geo/orders": ["east", "pulsar"]}
    assert record(out).peers["east"].namespaces == ("geo/orders",)
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}, replicating with east")
    # Nothing in the record or the logs reveals the peer's token.
    assert PEER_TOKEN not in _peer(out).local_app_data[PEERS_KEY]


def test_a_converged_reconcile_writes_nothing(ctx, root, cluster):
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret])
    cluster.calls.clear()
    out2 = ctx.run(ctx.on.update_status(), out)
    assert cluster.writes() == []
    assert out2.unit_status == out.unit_status


def test_publishes_its_cluster_first_and_waits_for_the_peer(ctx, root, cluster):
    relation = link(cluster_name=None)
    out = run(ctx, root, relation, event=ctx.on.relation_joined(relation))
    data = out.get_relation(relation.id).local_app_data
    assert data["cluster-name"] == "pulsar"
    assert "token-secret-id" not in data  # no token before the peer's name is known
    assert cluster.writes() == []
    assert out.unit_status == ops.ActiveStatus(
        f"{ACTIVE}; replication: waiting for pulsar-east to publish its cluster"
    )


def test_peer_without_its_token_yet_is_not_registered(ctx, root, cluster):
    relation = link()
    out = run(ctx, root, relation)
    # The peer learns this cluster's token meanwhile (it needs this side's name only).
    assert "token-secret-id" in out.get_relation(relation.id).local_app_data
    assert cluster.clusters == {}
    assert "waiting for pulsar-east" in out.unit_status.message


def test_peer_token_rotation_updates_the_registration(ctx, root, cluster):
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret])
    rotated = out.get_secret(id=secret.id)
    out = ctx.run(
        ctx.on.update_status(),
        testing.State(
            leader=True,
            model=out.model,
            config=out.config,
            relations=out.relations,
            containers=out.containers,
            secrets=[s for s in out.secrets if s.id != secret.id]
            + [testing.Secret(id=rotated.id, tracked_content={"token": "new.peer.token"})],
        ),
    )
    assert cluster.clusters["east"]["authenticationParameters"] == "token:new.peer.token"
    assert "update_cluster" in cluster.writes()


def test_non_leader_reports_but_calls_nothing(ctx, root, cluster):
    secret = peer_secret()
    relation = link(secret=secret)
    done = json.dumps(
        {"peers": {"east": {"relation": relation.id, "namespaces": ["geo/orders"]}}, "stopped": []}
    )
    out = run(
        ctx,
        root,
        relation,
        secrets=[secret],
        peer=peers(app_data={PEERS_KEY: done}),
        leader=False,
    )
    assert cluster.calls == []
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}, replicating with east")


# -- refusals ----------------------------------------------------------------------------------


def test_same_cluster_name_blocks_naming_the_problem(ctx, root, cluster):
    secret = peer_secret()
    relation = link(cluster_name="pulsar", secret=secret)
    out = run(ctx, root, relation, secrets=[secret])
    assert out.unit_status == ops.BlockedStatus(
        "cluster-name: 'pulsar' is also the cluster-name of the replication peer pulsar-east; "
        "replicating clusters need different names"
    )
    assert cluster.writes() == []
    assert "token-secret-id" not in out.get_relation(relation.id).local_app_data


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cluster-name": "bad name\n${x}"}, "cluster-name"),
        ({"broker-service-url": "http://x:6650"}, "broker-service-url"),
        ({"web-service-url": "http://x:99999"}, "web-service-url"),
        ({"web-service-url": "http://a b:8080"}, "web-service-url"),
    ],
)
def test_bad_peer_data_is_refused_naming_the_field_no_hook_error(
    ctx, root, cluster, overrides, field
):
    secret = peer_secret()
    relation = link(secret=secret, **overrides)
    out = run(ctx, root, relation, secrets=[secret])
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert f"replication relation: {field} " in out.unit_status.message
    assert "${x}" not in out.unit_status.message
    assert cluster.writes() == []


def test_bad_peer_token_is_refused_and_never_echoed(ctx, root, cluster):
    secret = peer_secret('bad "token" ${x}')
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret])
    assert "replication token secret: token has characters" in out.unit_status.message
    assert "${x}" not in out.unit_status.message
    assert cluster.clusters == {}


def test_missing_peer_secret_waits(ctx, root, cluster):
    relation = link()
    missing = {**relation.remote_app_data, "token-secret-id": "secret:cv3h0000000000000000"}
    relation = dataclasses.replace(relation, remote_app_data=missing)
    out = run(ctx, root, relation)
    assert "waiting for pulsar-east" in out.unit_status.message
    assert cluster.clusters == {}


def test_bad_replicated_namespaces_blocks_naming_the_option(ctx, root, cluster):
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(
        ctx, root, relation, secrets=[secret], config={"replicated-namespaces": "geo/a,../x"}
    )
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith("replicated-namespaces: ")
    assert cluster.calls == []


def test_two_relations_to_one_cluster_serve_the_first(ctx, root, cluster):
    secret = peer_secret()
    first = link(secret=secret)
    second = link("replication-offer", secret=secret, app="pulsar-east2")
    out = run(ctx, root, first, second, secrets=[secret])
    assert ": cluster east is already related" in out.unit_status.message
    assert out.unit_status.message.startswith(f"{ACTIVE}, replicating with east;")


# -- removal and retries -----------------------------------------------------------------------


PAUSED_TEXT = (
    "; replication with east paused (relation removed, backlog kept): relate again to resume, "
    "or take the namespaces out of replicated-namespaces to stop"
)


def then(out: testing.State, relations=None, config=None, secrets=None) -> testing.State:
    """The next event's state: what ``out`` left, with relations/config/secrets replaced."""
    return testing.State(
        leader=True,
        model=out.model,
        config=out.config if config is None else config,
        relations=out.relations if relations is None else relations,
        containers=out.containers,
        secrets=out.secrets if secrets is None else secrets,
    )


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(
        "pulsar_charm.PulsarBrokerCharm._retry_later", lambda self: calls.append(1)
    )
    return calls


def paused_cluster(ctx, root, cluster, config=None):
    """Relate, then remove the relation; return the state without it."""
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret], config=config)
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert record(out).peers["east"].state == "paused"
    return then(out, relations=[r for r in out.relations if r.id != relation.id]), relation


def test_relation_removal_pauses_replication_keeping_the_backlog(ctx, root, cluster, retries):
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret])
    assert cluster.replication["geo/orders"] == ["east", "pulsar"]
    registration = dict(cluster.clusters["east"])
    cluster.calls.clear()
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    # The peer stays in the replication clusters, registered and allowed: the replicator
    # cursors and what is produced meanwhile are kept. Its role can no longer produce here.
    assert cluster.replication["geo/orders"] == ["east", "pulsar"]
    assert cluster.clusters["east"] == registration
    assert cluster.tenants["geo"] == {"pulsar", "east"}
    assert cluster.grants["geo/orders"] == {}
    assert cluster.writes() == ["revoke"]
    assert all(s.label != token_secret_label(relation.id) for s in out.secrets)
    assert record(out).peers["east"].state == "paused"
    assert record(out).peers["east"].namespaces == ("geo/orders",)
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}{PAUSED_TEXT}")
    assert retries == []
    # Paused is converged: the next reconcile writes nothing and schedules nothing.
    cluster.calls.clear()
    gone = [r for r in out.relations if r.id != relation.id]
    out2 = ctx.run(ctx.on.update_status(), then(out, relations=gone))
    assert cluster.writes() == []
    assert out2.unit_status == out.unit_status
    assert retries == []


def test_relating_again_resumes_without_touching_the_replication_clusters(
    ctx, root, cluster, retries
):
    out, old = paused_cluster(ctx, root, cluster)
    cluster.calls.clear()
    secret = peer_secret()
    again = link(secret=secret)
    assert again.id != old.id
    out = ctx.run(
        ctx.on.relation_changed(again),
        then(out, relations=[*out.relations, again], secrets=[*out.secrets, secret]),
    )
    # The role is granted again; the replicators reconnect on their own backoff.
    assert cluster.grants["geo/orders"] == {"replicator-east": ["produce"]}
    assert cluster.writes() == ["grant"]
    assert cluster.replication["geo/orders"] == ["east", "pulsar"]
    entry = record(out).peers["east"]
    assert (entry.state, entry.relation_id) == ("", again.id)
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}, replicating with east")
    mine = out.get_secret(label=token_secret_label(again.id))
    assert pulsar_tokens.token_role(SIGNING_KEY, mine.tracked_content["token"]) == (
        "replicator-east"
    )


def test_a_new_peer_keeps_a_paused_one_in_the_replication_clusters(ctx, root, cluster):
    out, _ = paused_cluster(ctx, root, cluster)
    secret = peer_secret("west.token")
    west = link(
        cluster_name="west",
        secret=secret,
        app="pulsar-west",
        **{
            "broker-service-url": "pulsar://pulsar-west.west.svc.cluster.local:6650",
            "web-service-url": "http://pulsar-west.west.svc.cluster.local:8080",
        },
    )
    out = ctx.run(
        ctx.on.relation_changed(west),
        then(out, relations=[*out.relations, west], secrets=[*out.secrets, secret]),
    )
    assert cluster.replication["geo/orders"] == ["east", "pulsar", "west"]
    assert cluster.grants["geo/orders"] == {"replicator-west": ["produce"]}
    assert out.unit_status.message == f"{ACTIVE}, replicating with west{PAUSED_TEXT}"


def test_emptying_the_option_while_paused_stops_for_good(ctx, root, cluster, retries):
    out, _ = paused_cluster(ctx, root, cluster)
    cluster.calls.clear()
    out = ctx.run(ctx.on.config_changed(), then(out, config={"replicated-namespaces": ""}))
    # The peer leaves the replication clusters (Pulsar drops the replicators and their
    # backlog), then the tenant, then the registration.
    assert cluster.replication["geo/orders"] == ["pulsar"]
    assert cluster.tenants["geo"] == {"pulsar"}
    assert "east" not in cluster.clusters
    order = cluster.writes()
    assert order.index("set_replication_clusters") < order.index("remove_tenant_cluster")
    assert order.index("remove_tenant_cluster") < order.index("delete_cluster")
    assert record(out).peers == {}
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}; replication with east stopped")


def test_one_namespace_taken_out_while_paused_stops_only_that_one(ctx, root, cluster):
    out, _ = paused_cluster(ctx, root, cluster, config={"replicated-namespaces": "geo/a,geo/b"})
    out = ctx.run(ctx.on.config_changed(), then(out, config={"replicated-namespaces": "geo/a"}))
    assert cluster.replication == {"geo/a": ["east", "pulsar"], "geo/b": ["pulsar"]}
    assert cluster.tenants["geo"] == {"pulsar", "east"}  # geo/a still replicates with east
    assert "east" in cluster.clusters
    entry = record(out).peers["east"]
    assert (entry.namespaces, entry.state) == (("geo/a",), "paused")
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}{PAUSED_TEXT}")


def test_removal_with_nothing_replicated_stops_at_once(ctx, root, cluster):
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret], config={"replicated-namespaces": ""})
    assert "east" in cluster.clusters
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert "east" not in cluster.clusters
    assert record(out).peers == {}
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}; replication with east stopped")


def test_a_failed_revocation_keeps_the_peer_live_and_is_retried(ctx, root, cluster, retries):
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret])
    cluster.fail["revoke"] = 0
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert "revoking replicator-east: broker not reachable" in out.unit_status.message
    assert record(out).peers["east"].state == ""
    assert retries == [1]
    del cluster.fail["revoke"]
    gone = [r for r in out.relations if r.id != relation.id]
    out = ctx.run(ctx.on.update_status(), then(out, relations=gone))
    assert record(out).peers["east"].state == "paused"
    assert cluster.grants["geo/orders"] == {}


def test_failed_stop_is_retried_by_a_real_event_and_then_completes(ctx, root, cluster, retries):
    out, _ = paused_cluster(ctx, root, cluster)
    retries.clear()
    cluster.fail["delete_cluster"] = 412
    out = ctx.run(ctx.on.config_changed(), then(out, config={"replicated-namespaces": ""}))
    assert "unregistering cluster east: HTTP 412: boom" in out.unit_status.message
    assert "east" in record(out).peers  # kept until undone
    assert record(out).peers["east"].namespaces == ()
    # The retry view: the broker-view check will fail and wake the charm.
    assert retries == [1]
    del cluster.fail["delete_cluster"]
    out = ctx.run(ctx.on.update_status(), then(out))
    assert "east" not in cluster.clusters
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}; replication with east stopped")


def test_a_record_with_an_unknown_state_is_refused():
    raw = json.dumps({"peers": {"east": {"relation": 1, "state": "gone\n"}}, "stopped": []})
    with pytest.raises(InvalidField, match="peer state"):
        parse_record(raw)


def test_broker_refusing_registration_is_reported_and_retried(ctx, root, cluster, monkeypatch):
    retries: list[bool] = []
    monkeypatch.setattr(
        "pulsar_charm.PulsarBrokerCharm._retry_later", lambda self: retries.append(True)
    )
    cluster.fail["put_cluster"] = 0
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret])
    assert "registering cluster east: broker not reachable" in out.unit_status.message
    assert retries == [True]
    assert cluster.replication == {}


@pytest.mark.parametrize("overrides", [{"cluster-name": ""}, {"web-service-url": "ftp://x:1"}])
def test_waiting_for_the_peer_schedules_no_retry(ctx, root, cluster, monkeypatch, overrides):
    """Missing or bad peer data is woken by the peer's next relation-changed, not a timer."""
    retries: list[bool] = []
    monkeypatch.setattr(
        "pulsar_charm.PulsarBrokerCharm._retry_later", lambda self: retries.append(True)
    )
    out = run(ctx, root, link(**overrides))
    assert "replication: " in out.unit_status.message
    assert retries == []


def test_a_namespace_taken_out_of_the_option_stops_replicating(ctx, root, cluster):
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(
        ctx, root, relation, secrets=[secret], config={"replicated-namespaces": "geo/a,geo/b"}
    )
    assert record(out).peers["east"].namespaces == ("geo/a", "geo/b")
    out = ctx.run(
        ctx.on.config_changed(),
        testing.State(
            leader=True,
            model=out.model,
            config={"replicated-namespaces": "geo/a"},
            relations=out.relations,
            containers=out.containers,
            secrets=out.secrets,
        ),
    )
    assert cluster.replication["geo/b"] == ["pulsar"]
    assert "replicator-east" not in cluster.grants["geo/b"]
    assert record(out).peers["east"].namespaces == ("geo/a",)
    assert "east" in cluster.clusters


def test_emptying_the_option_while_related_then_removing_leaves_nothing_behind(ctx, root, cluster):
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret], config={"replicated-namespaces": "geo/a"})
    assert cluster.tenants["geo"] == {"pulsar", "east"}
    out = ctx.run(ctx.on.config_changed(), then(out, config={"replicated-namespaces": ""}))
    assert cluster.replication["geo/a"] == ["pulsar"]
    assert cluster.tenants["geo"] == {"pulsar"}  # no namespace of geo replicates with east
    assert "east" in cluster.clusters  # still related: registered
    out = ctx.run(ctx.on.relation_broken(out.get_relation(relation.id)), out)
    assert "east" not in cluster.clusters
    assert cluster.tenants["geo"] == {"pulsar"}
    assert record(out).peers == {}


def test_a_corrupt_record_waits_naming_the_field(ctx, root, cluster):
    out = run(ctx, root, peer=peers(app_data={PEERS_KEY: "not json"}))
    assert out.unit_status == ops.WaitingStatus(
        f"cluster relation: {PEERS_KEY} is not JSON; waiting for valid data"
    )


def test_a_token_signed_with_another_key_is_reminted_in_the_same_secret(ctx, root, cluster):
    """After a signing-key rotation the peer gets a new token through a new secret revision."""
    secret = peer_secret()
    relation = link(secret=secret)
    out = run(ctx, root, relation, secrets=[secret])
    mine = out.get_secret(label=token_secret_label(relation.id))
    other_key = "b3RoZXIta2V5LWZvci10aGUtcmVwbGljYXRpb24tdGVzdHMtMDE="
    stale = pulsar_tokens.mint_token(other_key, "replicator-east")
    state = testing.State(
        leader=True,
        model=out.model,
        config=out.config,
        relations=out.relations,
        containers=out.containers,
        secrets=[s for s in out.secrets if s.id != mine.id]
        + [
            testing.Secret(
                id=mine.id,
                owner="app",
                label=token_secret_label(relation.id),
                tracked_content={"token": stale},
                latest_content={"token": stale},
            )
        ],
    )
    out = ctx.run(ctx.on.update_status(), state)
    token = out.get_secret(id=mine.id).latest_content["token"]
    assert token != stale
    assert pulsar_tokens.token_role(SIGNING_KEY, token) == "replicator-east"
    assert out.get_relation(relation.id).local_app_data["token-secret-id"] == mine.id


def test_non_leader_reports_a_paused_peer_and_calls_nothing(ctx, root, cluster):
    paused = json.dumps(
        {
            "peers": {"east": {"relation": 7, "namespaces": ["geo/orders"], "state": "paused"}},
            "stopped": [],
        }
    )
    out = run(ctx, root, peer=peers(app_data={PEERS_KEY: paused}), leader=False)
    assert cluster.calls == []
    assert out.unit_status == ops.ActiveStatus(f"{ACTIVE}{PAUSED_TEXT}")
