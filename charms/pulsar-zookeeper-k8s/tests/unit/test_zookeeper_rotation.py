"""The rotate-zookeeper-credentials action and the phases it drives (ops.testing).

The flow of one rotation: adding (every server loads the new user) -> the new user gets the old
one's ACLs and is published -> switching (every client unit reports the new user, no unit the
old) -> the old user's ACLs revoked, its secret removed -> removing (every server runs without
it) -> done. Each step here is a separate event, as Juju would deliver them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import zookeeper_rotation as rotation_module
from charms.pulsar_k8s.v0.validation import InvalidField
from ops import testing
from test_zookeeper_clients import (
    REQUEST,
    address,
    base_state,
    peer_unit,
    running,
    with_peer_users,
)
from zookeeper_rotation import Rotation, client_progress, next_username, relation_id_of

JAAS = Path("conf/zookeeper-jaas.conf")


@dataclasses.dataclass
class Served:
    state: testing.State
    peer_id: int
    client_id: int
    broker_id: int

    @property
    def user(self) -> str:
        return f"relation-{self.client_id}"

    @property
    def new_user(self) -> str:
        return f"relation-{self.client_id}-r1"


def served(ctx, tmp_path: Path, config: dict | None = None) -> Served:
    """A 3-member ensemble serving bookkeeper (/pulsar) and a broker relation without request."""
    members = json.dumps({str(n + 1): address(n) for n in range(3)})
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members},
        peers_data={n: peer_unit(n, []) for n in (1, 2)},
    )
    client = testing.Relation(
        "zookeeper",
        remote_app_name="bookkeeper-k8s",
        remote_app_data=REQUEST,
        remote_units_data={0: {}, 1: {}},
    )
    broker = testing.Relation("zookeeper", remote_app_name="pulsar-k8s", remote_units_data={0: {}})
    state = base_state(tmp_path, {peer, client, broker}, planned_units=3, config=config or {})
    out = running(ctx.run(ctx.on.relation_changed(client), state))
    out = running(ctx.run(ctx.on.update_status(), out))
    out = ctx.run(ctx.on.update_status(), with_peer_users(out, peer.id, [f"relation-{client.id}"]))
    assert "secret-user" in out.get_relation(client.id).local_app_data
    served = Served(out, peer.id, client.id, broker.id)
    return served


def rotations(state: testing.State, peer_id: int) -> dict:
    return json.loads(state.get_relation(peer_id).local_app_data.get("rotations", "{}"))


def user_secret(state: testing.State, client_id: int) -> dict[str, str]:
    secret_id = state.get_relation(client_id).local_app_data["secret-user"]
    secret = next(s for s in state.secrets if s.id == secret_id)
    return dict(secret.latest_content or {})


def rotation_secret(state: testing.State, client_id: int) -> testing.Secret | None:
    label = rotation_module.rotation_secret_label(client_id)
    return next((s for s in state.secrets if s.label == label), None)


def with_reports(state: testing.State, relation_id: int, users: list[str | None]):
    relation = state.get_relation(relation_id)
    assert isinstance(relation, testing.Relation)
    data = {n: ({"zookeeper-username": user} if user else {}) for n, user in enumerate(users)}
    updated = dataclasses.replace(relation, remote_units_data=data)
    others = {r for r in state.relations if r.id != relation_id}
    return dataclasses.replace(state, relations={updated, *others})


def clients_record(state: testing.State, peer_id: int) -> dict[str, str]:
    return json.loads(state.get_relation(peer_id).local_app_data["clients"])


# -- the whole rotation -----------------------------------------------------------------------


def test_rotation_runs_every_phase_in_order(ctx, tmp_path, ensemble):
    s = served(ctx, tmp_path)
    old_password = user_secret(s.state, s.client_id)["password"]
    ensemble.calls.clear()

    out = running(ctx.run(ctx.on.action("rotate-zookeeper-credentials"), s.state))
    assert ctx.action_results == {
        "status": "started",
        f"relation-{s.client_id}": f"started: {s.user} -> {s.new_user}",
    }
    assert rotations(out, s.peer_id) == {
        str(s.client_id): {"phase": "adding", "old": s.user, "new": s.new_user}
    }
    rotation = rotation_secret(out, s.client_id)
    assert rotation is not None and rotation.owner == "app"
    new_password = (rotation.latest_content or {})["new-password"]
    assert (rotation.latest_content or {})["old-password"] == old_password
    # the leader's own server restarted with both users (1 member of 3 loaded)
    jaas = (tmp_path / JAAS).read_text()
    assert f'user_{s.user}="{old_password}"' in jaas
    assert f'user_{s.new_user}="{new_password}"' in jaas
    # the clients still hold the old user
    assert user_secret(out, s.client_id)["username"] == s.user

    # the other members have not loaded it: nothing switches
    out = running(ctx.run(ctx.on.update_status(), out))
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "adding"
    assert "adding" in out.unit_status.message and "1/3 servers" in out.unit_status.message
    assert not [c for c in ensemble.calls if c[0] in ("mirror", "revoke")]

    # every member runs with both users: the new one gets the ACLs, then it is published
    out = with_peer_users(out, s.peer_id, [s.user, s.new_user])
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.peer_id)), out))
    assert ("mirror", "/pulsar", s.user, s.new_user) in ensemble.calls
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "switching"
    assert user_secret(out, s.client_id)["username"] == s.new_user
    assert user_secret(out, s.client_id)["password"] == new_password
    assert clients_record(out, s.peer_id) == {s.user: "/pulsar", s.new_user: "/pulsar"}

    # exclusive ACLs keep both users while the clients move
    ensemble.calls.clear()
    out = running(ctx.run(ctx.on.update_status(), out))
    assert ("grant-also", "/pulsar", (s.user,)) in ensemble.calls
    assert not [c for c in ensemble.calls if c[0] == "revoke"]

    # one bookie on the new user, one still old: wait
    out = with_reports(out, s.client_id, [s.new_user, s.user])
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.client_id)), out))
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "switching"
    assert "1/2 client units" in out.unit_status.message

    # every bookie moved, but the broker (sharing the identity) still runs the old user: wait
    out = with_reports(out, s.client_id, [s.new_user, s.new_user])
    out = with_reports(out, s.broker_id, [s.user])
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.client_id)), out))
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "switching"
    assert "pulsar-k8s/0" in out.unit_status.message
    assert not [c for c in ensemble.calls if c[0] == "revoke"]

    # the broker reports the new user: the old user's ACLs go, then its secret
    ensemble.calls.clear()
    out = with_reports(out, s.broker_id, [s.new_user])
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.broker_id)), out))
    assert ("mirror", "/pulsar", s.user, s.new_user) in ensemble.calls
    assert ("revoke", "/pulsar", s.user, True) in ensemble.calls
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "removing"
    assert clients_record(out, s.peer_id) == {s.new_user: "/pulsar"}
    assert rotation_secret(out, s.client_id) is None
    # the relation keeps its (new) secret: a rotated-out user never withdraws the relation
    assert user_secret(out, s.client_id)["username"] == s.new_user

    # the servers restart without the old user; when every one does, the rotation is over
    out = running(ctx.run(ctx.on.update_status(), out))
    jaas = (tmp_path / JAAS).read_text()
    assert f"user_{s.user}=" not in jaas and f"user_{s.new_user}=" in jaas
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "removing"
    out = with_peer_users(out, s.peer_id, [s.new_user])
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.peer_id)), out))
    assert "rotations" not in out.get_relation(s.peer_id).local_app_data
    assert out.unit_status.message == "3 members, quorum ok; clients: /pulsar"

    # a second rotation goes to -r2
    out = running(ctx.run(ctx.on.action("rotate-zookeeper-credentials"), out))
    assert (ctx.action_results or {})[f"relation-{s.client_id}"] == (
        f"started: {s.new_user} -> relation-{s.client_id}-r2"
    )


# -- re-run, interruption, leader change -------------------------------------------------------


def test_rerun_reports_progress_and_changes_nothing(ctx, tmp_path, ensemble):
    s = served(ctx, tmp_path)
    out = running(ctx.run(ctx.on.action("rotate-zookeeper-credentials"), s.state))
    secret_before = rotation_secret(out, s.client_id)
    assert secret_before is not None
    again = running(
        ctx.run(
            ctx.on.action("rotate-zookeeper-credentials", params={"relation-id": s.client_id}),
            out,
        )
    )
    assert ctx.action_results == {
        "status": "in-progress",
        f"relation-{s.client_id}": (
            f"in-progress: adding ({s.user} -> {s.new_user}): 1/3 servers run with the new user"
        ),
    }
    assert rotations(again, s.peer_id) == rotations(out, s.peer_id)
    secret_after = rotation_secret(again, s.client_id)
    assert secret_after is not None and secret_after.latest_content == secret_before.latest_content


def test_failed_zookeeper_call_keeps_the_phase_and_retries(ctx, tmp_path, ensemble):
    s = served(ctx, tmp_path)
    out = running(ctx.run(ctx.on.action("rotate-zookeeper-credentials"), s.state))
    out = with_peer_users(out, s.peer_id, [s.user, s.new_user])
    ensemble.unreachable = True
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.peer_id)), out))
    # interrupted before anything was handed out: the clients still hold the old user
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "adding"
    assert user_secret(out, s.client_id)["username"] == s.user
    assert out.unit_status.name == "waiting"
    # the retry (the view check's failure, a real event) finishes the step
    ensemble.unreachable = False
    out = running(ctx.run(ctx.on.update_status(), out))
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "switching"
    assert user_secret(out, s.client_id)["username"] == s.new_user


def test_a_new_leader_finishes_the_rotation(ctx, make_ctx, tmp_path, ensemble):
    s = served(ctx, tmp_path)
    out = running(ctx.run(ctx.on.action("rotate-zookeeper-credentials"), s.state))
    out = with_peer_users(out, s.peer_id, [s.user, s.new_user])
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.peer_id)), out))
    assert rotations(out, s.peer_id)[str(s.client_id)]["phase"] == "switching"

    # the old leader is gone; unit 1 leads, with the same app data and secrets
    peer = out.get_relation(s.peer_id)
    assert isinstance(peer, testing.PeerRelation)
    new_peer = dataclasses.replace(
        peer,
        local_unit_data={},
        peers_data={n: peer_unit(n, [s.user, s.new_user]) for n in (0, 2)},
    )
    others = {r for r in out.relations if r.id != s.peer_id}
    new_ctx = make_ctx(1)
    state = dataclasses.replace(out, relations={new_peer, *others}, leader=True)
    state = with_reports(state, s.client_id, [s.new_user, s.new_user])
    state = with_reports(state, s.broker_id, [s.new_user])
    ensemble.calls.clear()
    new_out = running(new_ctx.run(new_ctx.on.leader_elected(), state))
    assert ("revoke", "/pulsar", s.user, True) in ensemble.calls
    assert rotations(new_out, s.peer_id)[str(s.client_id)]["phase"] == "removing"
    assert rotation_secret(new_out, s.client_id) is None


def test_a_relation_removed_mid_rotation_drops_it(ctx, tmp_path, ensemble):
    s = served(ctx, tmp_path)
    out = running(ctx.run(ctx.on.action("rotate-zookeeper-credentials"), s.state))
    state = dataclasses.replace(out, relations={r for r in out.relations if r.id != s.client_id})
    out = running(ctx.run(ctx.on.update_status(), state))
    assert "rotations" not in out.get_relation(s.peer_id).local_app_data
    assert rotation_secret(out, s.client_id) is None
    assert ("revoke", "/pulsar", s.user, True) in ensemble.calls


# -- refused ----------------------------------------------------------------------------------


def test_non_leader_refuses(ctx, tmp_path, ensemble):
    s = served(ctx, tmp_path)
    state = dataclasses.replace(s.state, leader=False)
    with pytest.raises(testing.ActionFailed, match="leader unit"):
        ctx.run(ctx.on.action("rotate-zookeeper-credentials"), state)


@pytest.mark.parametrize("value", [999, -1])
def test_unknown_relation_id_fails_naming_it(ctx, tmp_path, ensemble, value):
    s = served(ctx, tmp_path)
    with pytest.raises(testing.ActionFailed, match=f"relation-id: .*{value}|relation-id: must"):
        ctx.run(
            ctx.on.action("rotate-zookeeper-credentials", params={"relation-id": value}), s.state
        )
    # the broker relation has asked for nothing: not a served relation
    with pytest.raises(testing.ActionFailed, match=f"relation-id: {s.broker_id} is not"):
        ctx.run(
            ctx.on.action("rotate-zookeeper-credentials", params={"relation-id": s.broker_id}),
            s.state,
        )


def test_no_served_relation_fails(ctx, tmp_path, ensemble):
    peer = testing.PeerRelation(
        "cluster", local_app_data={"members": json.dumps({"1": address(0)})}
    )
    state = running(ctx.run(ctx.on.update_status(), base_state(tmp_path, {peer})))
    with pytest.raises(testing.ActionFailed, match="no served client relation"):
        ctx.run(ctx.on.action("rotate-zookeeper-credentials"), state)


def test_a_bad_rotations_record_waits_naming_it_and_fails_the_action(ctx, tmp_path, ensemble):
    s = served(ctx, tmp_path)
    peer = s.state.get_relation(s.peer_id)
    assert isinstance(peer, testing.PeerRelation)
    bad = dataclasses.replace(
        peer, local_app_data={**peer.local_app_data, "rotations": '{"3": {"phase": "x"}}'}
    )
    state = dataclasses.replace(
        s.state, relations={bad, *(r for r in s.state.relations if r.id != s.peer_id)}
    )
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status.name == "waiting"
    assert "rotations[3]" in out.unit_status.message
    with pytest.raises(testing.ActionFailed, match="rotations"):
        ctx.run(ctx.on.action("rotate-zookeeper-credentials"), state)


# -- the pure decisions -----------------------------------------------------------------------


def test_user_names():
    assert next_username(5, "relation-5") == "relation-5-r1"
    assert next_username(5, "relation-5-r9") == "relation-5-r10"
    assert relation_id_of("relation-5-r2") == 5
    assert relation_id_of("relation-5") == 5
    assert relation_id_of("super") is None
    assert relation_id_of("relation-5-x") is None


def test_client_progress():
    r = Rotation("switching", "relation-5", "relation-5-r1")
    done = client_progress({"bk/0": "relation-5-r1"}, {"pk/0": "relation-5-r1", "k/0": None}, r)
    assert done.done
    silent = client_progress({"bk/0": "relation-5-r1", "bk/1": None}, {}, r)
    assert not silent.done and silent.still_old == ("bk/1",)
    sharing = client_progress({"bk/0": "relation-5-r1"}, {"pk/0": "relation-5"}, r)
    assert not sharing.done and sharing.still_old == ("pk/0",)
    assert client_progress({}, {}, r).done  # no client unit left


@pytest.mark.parametrize(
    "raw",
    [
        "[]",
        '{"x": {"phase": "adding", "old": "a", "new": "b"}}',
        '{"1": {"phase": "later", "old": "a", "new": "b"}}',
        '{"1": {"phase": "adding", "old": "a b", "new": "b"}}',
        '{"1": "adding"}',
    ],
)
def test_bad_rotations_record_is_refused(raw):
    with pytest.raises(InvalidField):
        rotation_module.parse_rotations("cluster", raw)


def test_shared_acl_policy_mirrors_and_revokes_under_the_chroot(ctx, tmp_path, ensemble):
    s = served(ctx, tmp_path, config={"acl-policy": "shared"})
    out = running(ctx.run(ctx.on.action("rotate-zookeeper-credentials"), s.state))
    out = with_peer_users(out, s.peer_id, [s.user, s.new_user])
    ensemble.calls.clear()
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.peer_id)), out))
    assert ("mirror", "/pulsar", s.user, s.new_user) in ensemble.calls
    # shared: no grant is re-applied while the clients move (both users are recorded)
    ensemble.calls.clear()
    out = running(ctx.run(ctx.on.update_status(), out))
    assert not [c for c in ensemble.calls if c[0] in ("grant", "grant-also", "revoke")]
    out = with_reports(out, s.client_id, [s.new_user, s.new_user])
    out = with_reports(out, s.broker_id, [s.new_user])
    out = running(ctx.run(ctx.on.relation_changed(out.get_relation(s.client_id)), out))
    # a rotated-out user's entries are removed everywhere under the chroot, not only on it
    assert ("revoke", "/pulsar", s.user, True) in ensemble.calls
    assert clients_record(out, s.peer_id) == {s.new_user: "/pulsar"}
