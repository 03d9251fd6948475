"""The rotate-signing-key action and the roll it starts (ops.testing).

Every phase: start, a broker restarting through the lock, the leader waiting for the others,
the finish (old key dropped, relation tokens re-minted); re-runs, interruption (a new leader
finishes), bad parameters and a corrupt secret.
"""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import ops
import pulsar_admin
import pulsar_tokens
import pytest
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import GRANTED_KEY, REQUEST_KEY
from ops import testing
from pulsar_key_rotation import (
    PREVIOUS_ADMIN_TOKEN_FIELD,
    PREVIOUS_SIGNING_KEY_FIELD,
    auth_content,
    rotated_content,
)
from pulsar_peer_state import SIGNING_KEY_ID_KEY
from pulsar_render import SECRET_KEY_PATH, AuthMaterial, auth_files
from test_pulsar_charm import AUTH, INTERNAL, SIGNING_KEY, expected_files
from test_pulsar_clients import FakeAdmin, client_relation, running_state, user_label

APP = "pulsar-k8s"
OLD_ID = pulsar_tokens.key_id(SIGNING_KEY)
NEW_KEY = pulsar_tokens.generate_key()
NEW_ID = pulsar_tokens.key_id(NEW_KEY)
ROTATING = rotated_content(AUTH, NEW_KEY)
NEW_ADMIN = ROTATING["admin-token"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    """The broker's admin API, recording the token of every client made."""
    fake = FakeAdmin()
    tokens: list[str] = []

    def factory(url: str, token: str, timeout: float = 0, web: Any = None) -> FakeAdmin:
        tokens.append(token)
        return fake

    monkeypatch.setattr(pulsar_admin, "PulsarAdmin", factory)
    fake.tokens = tokens  # type: ignore[attr-defined]
    return fake


def internal(content: dict[str, str], owner: Any = "app") -> testing.Secret:
    return dataclasses.replace(
        INTERNAL, tracked_content=content, latest_content=content, owner=owner
    )


def with_internal(st: testing.State, content: dict[str, str]) -> testing.State:
    """``st`` with the internal secret holding ``content`` (a non-leader only observes it)."""
    others = [s for s in st.secrets if s.id != INTERNAL.id]
    secret = internal(content, owner="app" if st.leader else None)
    return dataclasses.replace(st, secrets=[*others, secret])


def peer(units: dict[int, dict[str, str]] | None = None, **kw: Any) -> testing.PeerRelation:
    from test_pulsar_charm import peers

    return peers(peer_units=units or {}, **kw)


def internal_content(out: testing.State) -> dict[str, str]:
    content = out.get_secret(id=INTERNAL.id).latest_content
    assert content is not None
    return dict(content)


def key_file(root: Path) -> bytes:
    return (root / Path(SECRET_KEY_PATH).relative_to("/pulsar")).read_bytes()


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for path, content in files.items():
        target = root / Path(path).relative_to("/pulsar")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def unit_key_id(out: testing.State) -> str | None:
    relation = next(r for r in out.relations if isinstance(r, testing.PeerRelation))
    return relation.local_unit_data.get(SIGNING_KEY_ID_KEY)


# -- start -------------------------------------------------------------------------------------


def test_single_broker_rotates_and_finishes_in_one_action(ctx, root, admin: FakeAdmin):
    relation = client_relation()
    st = running_state(root, relation)
    out = ctx.run(ctx.on.relation_changed(relation), st)
    old_token = out.get_secret(label=user_label(relation.id)).latest_content["token"]  # type: ignore[index]
    assert pulsar_tokens.token_role(SIGNING_KEY, old_token) == f"relation-{relation.id}"

    out = ctx.run(ctx.on.action("rotate-signing-key"), out)

    results = ctx.action_results or {}
    assert results["status"] == "started" and results["previous-key-id"] == OLD_ID
    content = internal_content(out)
    new_key = content["signing-key"]
    assert new_key != SIGNING_KEY and pulsar_tokens.key_id(new_key) == results["key-id"]
    # The only broker restarted with the new key, so the old one is already dropped ...
    assert key_file(root) == base64.b64decode(new_key)
    assert PREVIOUS_SIGNING_KEY_FIELD not in content
    assert unit_key_id(out) == results["key-id"]
    # ... and the relation's token was re-minted with it and published through its secret.
    token = out.get_secret(label=user_label(relation.id)).latest_content["token"]  # type: ignore[index]
    assert pulsar_tokens.token_role(new_key, token) == f"relation-{relation.id}"
    assert pulsar_tokens.token_role(SIGNING_KEY, token) is None
    assert out.unit_status.name == "active"


def test_start_with_two_brokers_keeps_the_old_key_and_old_client_tokens(ctx, root, admin):
    relation = client_relation()
    peer_rel = peer({1: {SIGNING_KEY_ID_KEY: OLD_ID}})
    st = running_state(root, relation, peer=peer_rel)
    out = ctx.run(ctx.on.relation_changed(relation), st)
    old_token = out.get_secret(label=user_label(relation.id)).latest_content["token"]  # type: ignore[index]

    out = ctx.run(ctx.on.action("rotate-signing-key"), out)

    content = internal_content(out)
    assert content[PREVIOUS_SIGNING_KEY_FIELD] == SIGNING_KEY
    assert content[PREVIOUS_ADMIN_TOKEN_FIELD] == AUTH.admin_token
    assert (ctx.action_results or {})["brokers-switched"] == "0/2"
    # The leader held the free lock: its broker restarted with the new key.
    assert key_file(root) == base64.b64decode(content["signing-key"])
    assert unit_key_id(out) == pulsar_tokens.key_id(content["signing-key"])
    # The other broker still runs the old key: client tokens stay signed with it.
    token = out.get_secret(label=user_label(relation.id)).latest_content["token"]  # type: ignore[index]
    assert token == old_token
    assert out.unit_status == ops.ActiveStatus(
        "broker ready (cluster pulsar), 1 client; rotating the signing key: 1/2 brokers switched"
    )
    # Admin calls went to this unit's broker with the token of the key it now runs.
    assert admin.tokens[-1] == content["admin-token"]  # type: ignore[attr-defined]


def test_rerun_while_rolling_changes_nothing_and_reports_progress(ctx, root, admin):
    peer_rel = peer({1: {SIGNING_KEY_ID_KEY: OLD_ID}}, unit_data={SIGNING_KEY_ID_KEY: NEW_ID})
    st = with_internal(running_state(root, peer=peer_rel), ROTATING)
    out = ctx.run(ctx.on.action("rotate-signing-key"), st)
    assert ctx.action_results == {
        "status": "in-progress",
        "key-id": NEW_ID,
        "brokers-switched": "1/2",
    }
    assert internal_content(out) == ROTATING


# -- the roll ----------------------------------------------------------------------------------


def test_broker_on_the_old_key_waits_for_the_lock_and_uses_the_old_admin_token(
    ctx, root, fake_broker, monkeypatch
):
    tokens: list[str | None] = []

    def broker_ready(
        _address: str, timeout: float = 0, token: str | None = None, web=None
    ) -> bool:
        tokens.append(token)
        return True

    monkeypatch.setattr("pulsar_admin.broker_ready", broker_ready)
    peer_rel = peer(
        {1: {REQUEST_KEY: "x", SIGNING_KEY_ID_KEY: NEW_ID}},
        app_data={GRANTED_KEY: f"{APP}/1"},
        unit_data={SIGNING_KEY_ID_KEY: OLD_ID},
    )
    st = with_internal(running_state(root, peer=peer_rel, leader=False), ROTATING)
    out = ctx.run(ctx.on.secret_changed(internal(ROTATING, owner=None)), st)

    assert out.unit_status == ops.WaitingStatus(
        "configuration changed; waiting for the rolling-restart lock"
    )
    assert key_file(root) == base64.b64decode(SIGNING_KEY)  # untouched until granted
    assert unit_key_id(out) == OLD_ID
    assert tokens == []  # no readiness poll while waiting for the lock


def test_granted_broker_restarts_with_the_new_key_and_reports_it(ctx, root, admin):
    peer_rel = peer(
        {1: {SIGNING_KEY_ID_KEY: NEW_ID}},
        app_data={GRANTED_KEY: f"{APP}/0"},
        unit_data={REQUEST_KEY: "pending", SIGNING_KEY_ID_KEY: OLD_ID},
    )
    st = with_internal(running_state(root, peer=peer_rel, leader=False), ROTATING)
    out = ctx.run(ctx.on.secret_changed(internal(ROTATING, owner=None)), st)
    assert key_file(root) == base64.b64decode(NEW_KEY)
    assert unit_key_id(out) == NEW_ID
    assert internal_content(out) == ROTATING  # only the leader finishes


def test_leader_finishes_when_the_last_broker_reports_the_new_key(ctx, root, admin):
    relation = client_relation()
    peer_rel = peer({1: {SIGNING_KEY_ID_KEY: NEW_ID}}, unit_data={SIGNING_KEY_ID_KEY: NEW_ID})
    rotating_auth = AuthMaterial(
        NEW_KEY, ROTATING["admin-token"], ROTATING["broker-token"], SIGNING_KEY, AUTH.admin_token
    )
    files = {**expected_files(), **auth_files(rotating_auth)}
    old_token = pulsar_tokens.mint_token(SIGNING_KEY, f"relation-{relation.id}")
    user = testing.Secret(
        tracked_content={"username": f"relation-{relation.id}", "token": old_token},
        owner="app",
        label=user_label(relation.id),
    )
    st = running_state(root, relation, peer=peer_rel, secrets=[user])
    st = with_internal(dataclasses.replace(st), ROTATING)
    # The broker already runs the new key (its files are the rotated ones).
    write_files(root, files)
    out = ctx.run(ctx.on.relation_changed(peer_rel, remote_unit=1), st)

    assert internal_content(out) == auth_content(NEW_KEY)  # the old key is dropped
    token = out.get_secret(label=user_label(relation.id)).latest_content["token"]  # type: ignore[index]
    assert pulsar_tokens.token_role(NEW_KEY, token) == f"relation-{relation.id}"
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar), 1 client")


def test_client_tokens_move_when_the_last_old_broker_holds_the_lock(ctx, root, admin):
    relation = client_relation()
    peer_rel = peer(
        {1: {SIGNING_KEY_ID_KEY: OLD_ID, REQUEST_KEY: "restart"}},
        app_data={GRANTED_KEY: f"{APP}/1"},
        unit_data={SIGNING_KEY_ID_KEY: NEW_ID},
    )
    rotating_auth = AuthMaterial(
        NEW_KEY, ROTATING["admin-token"], ROTATING["broker-token"], SIGNING_KEY, AUTH.admin_token
    )
    files = {**expected_files(), **auth_files(rotating_auth)}
    old_token = pulsar_tokens.mint_token(SIGNING_KEY, f"relation-{relation.id}")
    user = testing.Secret(
        tracked_content={"username": f"relation-{relation.id}", "token": old_token},
        owner="app",
        label=user_label(relation.id),
    )
    st = with_internal(running_state(root, relation, peer=peer_rel, secrets=[user]), ROTATING)
    write_files(root, files)  # this broker already runs the new key
    out = ctx.run(ctx.on.relation_changed(peer_rel, remote_unit=1), st)

    # The other broker is about to restart: its topics move to this one, on the new key.
    token = out.get_secret(label=user_label(relation.id)).latest_content["token"]  # type: ignore[index]
    assert pulsar_tokens.token_role(NEW_KEY, token) == f"relation-{relation.id}"
    assert internal_content(out) == ROTATING  # not finished: unit 1 still runs the old key


def test_a_token_already_on_the_new_key_is_never_minted_back(ctx, root, admin):
    # The clients switched, then the lock moved on before the last old broker reported: the
    # condition no longer holds, but the relation keeps its new-key token.
    relation = client_relation()
    peer_rel = peer(
        {1: {SIGNING_KEY_ID_KEY: OLD_ID}},
        app_data={GRANTED_KEY: f"{APP}/0"},
        unit_data={SIGNING_KEY_ID_KEY: NEW_ID},
    )
    rotating_auth = AuthMaterial(
        NEW_KEY, ROTATING["admin-token"], ROTATING["broker-token"], SIGNING_KEY, AUTH.admin_token
    )
    new_token = pulsar_tokens.mint_token(NEW_KEY, f"relation-{relation.id}")
    user = testing.Secret(
        tracked_content={"username": f"relation-{relation.id}", "token": new_token},
        owner="app",
        label=user_label(relation.id),
    )
    st = with_internal(running_state(root, relation, peer=peer_rel, secrets=[user]), ROTATING)
    write_files(root, {**expected_files(), **auth_files(rotating_auth)})
    out = ctx.run(ctx.on.update_status(), st)
    assert out.get_secret(label=user_label(relation.id)).latest_content["token"] == new_token  # type: ignore[index]


def test_a_new_leader_finishes_an_interrupted_rotation(ctx, root, admin):
    # The old leader started the rotation and was replaced; every broker runs the new key.
    peer_rel = peer({1: {SIGNING_KEY_ID_KEY: NEW_ID}}, unit_data={SIGNING_KEY_ID_KEY: OLD_ID})
    st = with_internal(running_state(root, peer=peer_rel), ROTATING)
    # This unit's broker still has the old key file: it restarts first (lock free), then
    # reports, and the same hook finishes the rotation.
    out = ctx.run(ctx.on.leader_elected(), st)
    assert key_file(root) == base64.b64decode(NEW_KEY)
    assert internal_content(out) == auth_content(NEW_KEY)


def test_a_rotation_does_not_finish_while_a_broker_is_not_serving(ctx, root, admin, fake_broker):
    fake_broker.ready = False
    peer_rel = peer({1: {SIGNING_KEY_ID_KEY: NEW_ID}}, unit_data={SIGNING_KEY_ID_KEY: OLD_ID})
    st = with_internal(running_state(root, peer=peer_rel), ROTATING)
    out = ctx.run(ctx.on.leader_elected(), st)
    assert internal_content(out) == ROTATING
    assert unit_key_id(out) == OLD_ID


# -- refused -----------------------------------------------------------------------------------


def test_non_leader_refuses(ctx, root):
    st = running_state(root, leader=False)
    with pytest.raises(testing.ActionFailed, match="leader unit only"):
        ctx.run(ctx.on.action("rotate-signing-key"), st)


@pytest.mark.parametrize(
    "drop, missing",
    [
        (PREVIOUS_ADMIN_TOKEN_FIELD, PREVIOUS_ADMIN_TOKEN_FIELD),
        (PREVIOUS_SIGNING_KEY_FIELD, PREVIOUS_SIGNING_KEY_FIELD),
    ],
)
def test_half_a_rotation_in_the_secret_waits_naming_the_field(ctx, root, calls, drop, missing):
    content = {k: v for k, v in ROTATING.items() if k != drop}
    st = with_internal(running_state(root), content)
    out = ctx.run(ctx.on.update_status(), st)
    assert out.unit_status == ops.WaitingStatus(
        f"pulsar-internal secret: {missing} is missing while a rotation is under way; "
        "waiting for valid data"
    )
    assert calls.names() == []


def test_a_previous_key_that_is_not_base64_is_refused(ctx, root, calls):
    content = {**ROTATING, PREVIOUS_SIGNING_KEY_FIELD: "not base64!"}
    out = ctx.run(ctx.on.update_status(), with_internal(running_state(root), content))
    assert isinstance(out.unit_status, ops.WaitingStatus)
    assert PREVIOUS_SIGNING_KEY_FIELD in out.unit_status.message
    assert calls.names() == []


def test_get_admin_token_gives_the_token_the_local_broker_accepts(ctx, root):
    # Rotation under way, this broker still on the old key: the old admin token.
    st = with_internal(running_state(root, leader=False), ROTATING)
    ctx.run(ctx.on.action("get-admin-token"), st)
    assert (ctx.action_results or {})["token"] == AUTH.admin_token


def test_old_internal_revisions_are_removed_when_nobody_tracks_them(ctx, root):
    # Revision 2 holds the rotated key; nobody tracks revision 1 (the old key) any more.
    secret = internal(auth_content(NEW_KEY))
    object.__setattr__(secret, "_latest_revision", 2)
    object.__setattr__(secret, "_tracked_revision", 2)
    st = dataclasses.replace(
        running_state(root), secrets=[s for s in running_state(root).secrets if s.id != secret.id]
    )
    st = dataclasses.replace(st, secrets=[*st.secrets, secret])
    out = ctx.run(ctx.on.secret_remove(secret, revision=1), st)
    assert out.get_secret(id=INTERNAL.id) is not None
    assert ctx.removed_secret_revisions == [1]
