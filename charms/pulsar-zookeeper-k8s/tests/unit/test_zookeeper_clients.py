"""Client relations: credentials, ACLs, publication after every member loaded the user,
revocation, and the provider databag checked against the interface schema."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import ops
from charms.pulsar_k8s.v0.workload import unit_fqdn
from ops import testing
from zookeeper_contract_schemas import strict_schema
from zookeeper_render import SERVICE

REQUEST = {
    "database": "/pulsar",
    "requested-secrets": json.dumps(["username", "password", "tls", "tls-ca", "uris"]),
    "extra-user-roles": "cdrwa",
}


def address(n: int) -> str:
    return unit_fqdn(f"pulsar-zookeeper-k8s/{n}", "pulsar-zookeeper-k8s", "testing")


def peer_unit(n: int, users: list[str]) -> dict[str, str]:
    return {
        "address": address(n),
        "server-id": str(n + 1),
        "started": "true",
        "users": json.dumps(users),
    }


def base_state(tmp_path: Path, relations: set, **kwargs) -> testing.State:
    for sub in ("data", "conf", "logs"):
        (tmp_path / sub).mkdir(exist_ok=True)
    container = testing.Container(
        "pulsar",
        can_connect=True,
        mounts={
            "data": testing.Mount(location="/pulsar/data", source=tmp_path / "data"),
            "conf": testing.Mount(location="/pulsar/conf", source=tmp_path / "conf"),
            # the view file; ops.testing wipes unmounted paths between runs
            "logs": testing.Mount(location="/pulsar/logs", source=tmp_path / "logs"),
        },
        execs={testing.Exec(["chown"])},
    )
    secret = testing.Secret(
        {"super-password": "super-pw", "quorum-password": "quorum-pw"},
        label="zookeeper-internal",
        owner="app",
    )
    return testing.State(
        leader=True,
        relations=relations,
        secrets={secret, *kwargs.pop("secrets", set())},
        containers={container},
        model=testing.Model(name="testing"),
        **kwargs,
    )


def running(state: testing.State) -> testing.State:
    c = state.get_container("pulsar")
    active = dataclasses.replace(c, service_statuses={SERVICE: ops.pebble.ServiceStatus.ACTIVE})
    return dataclasses.replace(state, containers={active})


def with_peer_users(state: testing.State, peer_id: int, users: list[str]) -> testing.State:
    peer = state.get_relation(peer_id)
    assert isinstance(peer, testing.PeerRelation)
    updated = dataclasses.replace(peer, peers_data={n: peer_unit(n, users) for n in (1, 2)})
    others = {r for r in state.relations if r.id != peer_id}
    return dataclasses.replace(state, relations={updated, *others})


def test_credentials_published_only_after_every_member_loaded_the_user(
    ctx, tmp_path, ensemble, pebble_calls
):
    members = json.dumps({str(n + 1): address(n) for n in range(3)})
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members},
        peers_data={n: peer_unit(n, []) for n in (1, 2)},
    )
    client = testing.Relation("zookeeper", remote_app_name="bookkeeper", remote_app_data=REQUEST)
    user = f"relation-{client.id}"
    state = base_state(tmp_path, {peer, client}, planned_units=3)

    # 1st: server starts; leader creates the password secret and the chroot ACL, publishes nothing
    out = running(ctx.run(ctx.on.relation_changed(client), state))
    assert ("grant", "/pulsar", user, "cdrwa", True) in ensemble.calls  # exclusive: default
    clients = json.loads(out.get_relation(peer.id).local_app_data["clients"])
    assert clients == {user: "/pulsar"}
    assert "secret-user" not in out.get_relation(client.id).local_app_data

    # 2nd: the password existed before the server's first start, so the user was in its JAAS
    # from the beginning: no restart; the other members have not reported it yet
    out = running(ctx.run(ctx.on.update_status(), out))
    assert pebble_calls.restarts == 0
    assert json.loads(out.get_relation(peer.id).local_unit_data["users"]) == [user]
    assert "secret-user" not in out.get_relation(client.id).local_app_data
    assert "waiting for members to load credentials of /pulsar" in out.unit_status.message

    # 3rd: the other members report the user: now (and only now) the client gets credentials
    out = ctx.run(ctx.on.update_status(), with_peer_users(out, peer.id, [user]))
    app_data = out.get_relation(client.id).local_app_data
    assert app_data["database"] == "/pulsar"
    assert app_data["endpoints"] == ",".join(f"{address(n)}:2181" for n in range(3))
    secret = next(s for s in out.secrets if s.id == app_data["secret-user"])
    content = secret.latest_content or {}
    assert content["username"] == user
    assert content["uris"].endswith(":2181/pulsar")
    assert isinstance(out.unit_status, testing.ActiveStatus)
    assert out.unit_status.message == "3 members, quorum ok; clients: /pulsar"

    tls_secret = next(s for s in out.secrets if s.id == app_data["secret-tls"])
    assert tls_secret.latest_content == {"tls": "disabled"}

    # what the provider wrote validates against the interface schema, no key beyond it
    jsonschema.validate({"app": dict(app_data)}, strict_schema("provider"))
    # and the request we answered validates against the requirer schema (list field decoded)
    decoded = {**REQUEST, "requested-secrets": json.loads(REQUEST["requested-secrets"])}
    jsonschema.validate({"app": decoded}, strict_schema("requirer"))


def test_invalid_request_is_skipped_and_reported(ctx, tmp_path, ensemble):
    peer = testing.PeerRelation(
        "cluster", local_app_data={"members": json.dumps({"1": address(0)})}
    )
    client = testing.Relation(
        "zookeeper",
        remote_app_name="broken-app",
        remote_app_data={**REQUEST, "database": "../etc"},
    )
    state = running(ctx.run(ctx.on.update_status(), base_state(tmp_path, {peer, client})))
    out = ctx.run(ctx.on.relation_changed(client), state)
    assert not [c for c in ensemble.calls if c[0] == "grant"]
    assert "invalid request from broken-app" in out.unit_status.message
    assert out.get_relation(client.id).local_app_data == {}


def test_broken_relation_revokes_acl_withdraws_secret_and_leaves_jaas(ctx, tmp_path, ensemble):
    old = testing.Secret(
        {"username": "relation-9", "password": "pw-9"}, label="zookeeper-client-9", owner="app"
    )
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={
            "members": json.dumps({"1": address(0)}),
            "clients": json.dumps({"relation-9": "/old"}),
        },
    )
    out = ctx.run(ctx.on.update_status(), base_state(tmp_path, {peer}, secrets={old}))
    assert ("revoke", "/old", "relation-9", True) in ensemble.calls  # the whole tree
    assert json.loads(out.get_relation(peer.id).local_app_data["clients"]) == {}
    assert not [s for s in out.secrets if s.label == "zookeeper-client-9"]
    assert "relation-9" not in (tmp_path / "conf" / "zookeeper-jaas.conf").read_text()


def test_relation_broken_event_revokes_that_client(ctx, tmp_path, ensemble):
    client = testing.Relation("zookeeper", remote_app_name="pulsar", remote_app_data=REQUEST)
    user = f"relation-{client.id}"
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={
            "members": json.dumps({"1": address(0)}),
            "clients": json.dumps({user: "/pulsar"}),
        },
    )
    out = ctx.run(ctx.on.relation_broken(client), base_state(tmp_path, {peer, client}))
    assert ("revoke", "/pulsar", user, True) in ensemble.calls
    assert json.loads(out.get_relation(peer.id).local_app_data["clients"]) == {}


def test_shared_chroot_is_named_once_while_members_load_credentials(
    ctx, tmp_path, ensemble, pebble_calls
):
    # acl-policy=shared: bookies and brokers both ask for /pulsar, the status names it once
    members = json.dumps({str(n + 1): address(n) for n in range(3)})
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members},
        peers_data={n: peer_unit(n, []) for n in (1, 2)},
    )
    bookies = testing.Relation("zookeeper", remote_app_name="bookkeeper", remote_app_data=REQUEST)
    brokers = testing.Relation("zookeeper", remote_app_name="pulsar", remote_app_data=REQUEST)
    state = base_state(
        tmp_path, {peer, bookies, brokers}, planned_units=3, config={"acl-policy": "shared"}
    )
    out = running(ctx.run(ctx.on.relation_changed(bookies), state))
    grants = [c for c in ensemble.calls if c[0] == "grant"]
    assert {c[2] for c in grants} == {f"relation-{bookies.id}", f"relation-{brokers.id}"}
    assert all(c[4] is False for c in grants)  # entries on the chroot only
    out = running(ctx.run(ctx.on.update_status(), out))
    message = out.unit_status.message
    assert "waiting for members to load credentials of /pulsar" in message
    assert "/pulsar, /pulsar" not in message


def test_default_exclusive_policy_serves_the_older_of_two_relations_asking_for_one_chroot(
    ctx, tmp_path, ensemble
):
    members = json.dumps({"1": address(0)})
    peer = testing.PeerRelation("cluster", local_app_data={"members": members})
    bookies = testing.Relation("zookeeper", remote_app_name="bookkeeper", remote_app_data=REQUEST)
    brokers = testing.Relation("zookeeper", remote_app_name="pulsar", remote_app_data=REQUEST)
    state = base_state(tmp_path, {peer, bookies, brokers}, planned_units=1)  # the default
    out = running(ctx.run(ctx.on.relation_changed(brokers), state))
    grants = [c for c in ensemble.calls if c[0] == "grant"]
    assert grants == [("grant", "/pulsar", f"relation-{bookies.id}", "cdrwa", True)]
    assert "/pulsar overlaps /pulsar held by bookkeeper (acl-policy=exclusive)" in (
        out.unit_status.message
    )
    # the refused relation gets nothing; a second reconcile re-applies the subtree ACLs
    assert out.get_relation(brokers.id).local_app_data == {}
    ensemble.calls.clear()
    out = ctx.run(ctx.on.update_status(), out)
    assert [c for c in ensemble.calls if c[0] == "grant"] == grants


def test_bad_acl_policy_blocks_naming_the_option_and_touches_nothing(
    ctx, tmp_path, ensemble, pebble_calls
):
    peer = testing.PeerRelation(
        "cluster", local_app_data={"members": json.dumps({"1": address(0)})}
    )
    client = testing.Relation("zookeeper", remote_app_name="bookkeeper", remote_app_data=REQUEST)
    state = base_state(tmp_path, {peer, client}, config={"acl-policy": "private"})
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.BlockedStatus("acl-policy: must be one of shared, exclusive")
    assert ensemble.calls == []
    assert (pebble_calls.pushes, pebble_calls.layers, pebble_calls.starts) == ([], 0, 0)


def test_a_client_arriving_after_the_first_start_restarts_the_member_to_load_it(
    ctx, tmp_path, ensemble, pebble_calls
):
    members = json.dumps({str(n + 1): address(n) for n in range(3)})
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members},
        peers_data={n: peer_unit(n, []) for n in (1, 2)},
    )
    booted = running(
        ctx.run(ctx.on.update_status(), base_state(tmp_path, {peer}, planned_units=3))
    )
    assert pebble_calls.starts == 1 and pebble_calls.restarts == 0
    client = testing.Relation("zookeeper", remote_app_name="bookkeeper", remote_app_data=REQUEST)
    state = dataclasses.replace(booted, relations={*booted.relations, client})
    out = running(ctx.run(ctx.on.relation_changed(client), state))
    out = running(ctx.run(ctx.on.update_status(), out))
    assert pebble_calls.restarts == 1
    user = f"relation-{client.id}"
    assert json.loads(out.get_relation(peer.id).local_unit_data["users"]) == [user]


def test_a_related_application_that_asks_after_the_first_start_needs_no_restart(
    ctx, tmp_path, ensemble, pebble_calls
):
    """The relation exists before the ensemble starts, the request comes later (a bundle):
    the user was in every member's JAAS from the start, unusable until granted."""
    members = json.dumps({str(n + 1): address(n) for n in range(3)})
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members},
        peers_data={n: peer_unit(n, []) for n in (1, 2)},
    )
    client = testing.Relation("zookeeper", remote_app_name="bookkeeper", remote_app_data={})
    user = f"relation-{client.id}"
    booted = running(
        ctx.run(
            ctx.on.relation_created(client), base_state(tmp_path, {peer, client}, planned_units=3)
        )
    )
    assert f'user_{user}="' in (tmp_path / "conf" / "zookeeper-jaas.conf").read_text()
    assert "secret-user" not in booted.get_relation(client.id).local_app_data
    asked = dataclasses.replace(client, remote_app_data=REQUEST)
    state = dataclasses.replace(
        booted, relations={*(r for r in booted.relations if r.id != client.id), asked}
    )
    out = running(ctx.run(ctx.on.relation_changed(asked), state))
    out = running(ctx.run(ctx.on.update_status(), out))
    assert pebble_calls.starts == 1 and pebble_calls.restarts == 0
    assert ("grant", "/pulsar", user, "cdrwa", True) in ensemble.calls
