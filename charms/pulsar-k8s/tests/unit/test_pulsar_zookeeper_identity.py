"""The brokers log in to ZooKeeper as the bookies do: the identity bookkeeper-k8s shares."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ops
import pytest
from ops import testing
from test_pulsar_charm import (
    BK_URI,
    PASSWORD,
    SECRET,
    USERNAME,
    ZK_HOSTS,
    bk_relation,
    full_state,
    peers,
    state,
    zk_relation,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


BOOKIES_USER, BOOKIES_PASSWORD = "relation-1", "bookies-pw"


def shared_secret(chroot: str = "/pulsar", **extra: str) -> testing.Secret:
    return testing.Secret(
        tracked_content={
            "username": BOOKIES_USER,
            "password": BOOKIES_PASSWORD,
            "endpoints": ZK_HOSTS,
            "chroot": chroot,
            **extra,
        }
    )


def sharing_bookies(secret: testing.Secret) -> testing.Relation:
    relation = bk_relation()
    data = {**relation.remote_app_data, "zookeeper-secret": secret.id}
    return dataclasses.replace(relation, remote_app_data=data)


def test_brokers_use_the_shared_identity_without_a_zookeeper_relation(ctx, root):
    secret = shared_secret()
    relations = [sharing_bookies(secret), peers()]
    before = state(root, relations=relations, secrets=[secret])
    ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    jaas = (root / "conf" / "zookeeper-jaas.conf").read_text()
    assert f'username="{BOOKIES_USER}"' in jaas
    assert f'password="{BOOKIES_PASSWORD}"' in jaas
    conf = (root / "conf" / "broker.conf").read_text()
    assert f"metadataStoreUrl=zk:{ZK_HOSTS}/pulsar" in conf
    assert BK_URI in conf


def test_the_shared_identity_wins_and_the_leader_takes_back_its_own_request(ctx, root):
    own = zk_relation(
        SECRET, **{"database": "/pulsar", "endpoints": ZK_HOSTS, "secret-user": SECRET.id}
    )
    own = dataclasses.replace(
        own,
        local_app_data={
            "database": "/pulsar",
            "requested-secrets": json.dumps(["username", "password", "uris"]),
            "extra-user-roles": "cdrwa",
        },
    )
    secret = shared_secret()
    relations = [own, sharing_bookies(secret), peers()]
    before = state(root, relations=relations, secrets=[secret, SECRET])
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    # no second relation competes for the tree: the request is gone
    assert out.get_relation(own.id).local_app_data == {}
    jaas = (root / "conf" / "zookeeper-jaas.conf").read_text()
    assert f'password="{BOOKIES_PASSWORD}"' in jaas and PASSWORD not in jaas


def test_bookies_on_another_chroot_block_with_the_way_out(ctx, root):
    secret = shared_secret("/bookkeeper")
    out = ctx.run(
        ctx.on.update_status(),
        state(root, relations=[sharing_bookies(secret), peers()], secrets=[secret]),
    )
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert "/bookkeeper" in out.unit_status.message and "/pulsar" in out.unit_status.message


def test_unreadable_shared_secret_waits_and_asks_for_nothing(ctx, root):
    relation = bk_relation()
    relation = dataclasses.replace(
        relation, remote_app_data={"zookeeper-secret": "secret:doesnotexist0000000000"}
    )
    own = testing.Relation("zookeeper", remote_app_name="pulsar-zookeeper-k8s")
    out = ctx.run(ctx.on.update_status(), state(root, relations=[relation, own, peers()]))
    assert out.unit_status == ops.WaitingStatus(
        "waiting for bookkeeper to publish its metadata service"
    )
    assert out.get_relation(own.id).local_app_data == {}


def test_a_ready_broker_reports_the_zookeeper_user_it_runs_with(ctx, root):
    out = ctx.run(ctx.on.leader_elected(), full_state(root))
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")
    (zk,) = [r for r in out.relations if r.endpoint == "zookeeper"]
    assert zk.local_unit_data["zookeeper-username"] == USERNAME


def test_the_shared_identity_is_reported_on_the_brokers_own_zookeeper_relation(ctx, root):
    own = zk_relation(
        SECRET, **{"database": "/pulsar", "endpoints": ZK_HOSTS, "secret-user": SECRET.id}
    )
    secret = shared_secret()
    relations = [own, sharing_bookies(secret), peers()]
    out = ctx.run(ctx.on.leader_elected(), full_state(root, relations=relations))
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(out, secrets={secret, SECRET}))
    assert out.get_relation(own.id).local_unit_data.get("zookeeper-username") == BOOKIES_USER


ZK_CA = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"


def test_a_shared_identity_with_a_ca_makes_the_brokers_zookeeper_clients_use_tls(ctx, root):
    secret = shared_secret(**{"tls-ca": ZK_CA})
    relations = [sharing_bookies(secret), peers()]
    before = state(root, relations=relations, secrets=[secret])
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    assert (root / "conf" / "zookeeper-ca.pem").read_text() == ZK_CA
    env = out.get_container("pulsar").plan.services["broker"].environment
    opts = env["PULSAR_EXTRA_OPTS"]
    assert "-Dzookeeper.client.secure=true" in opts
    assert "-Dzookeeper.ssl.trustStore.location=/pulsar/conf/zookeeper-ca.pem" in opts
    assert "-Djava.security.auth.login.config=" in opts  # SASL inside TLS


def test_a_shared_ca_that_is_not_pem_waits_naming_the_field(ctx, root):
    secret = shared_secret(**{"tls-ca": "garbage"})
    relations = [sharing_bookies(secret), peers()]
    before = state(root, relations=relations, secrets=[secret])
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    assert isinstance(out.unit_status, ops.WaitingStatus)
    assert "tls-ca" in out.unit_status.message
    assert not (root / "conf" / "broker.conf").exists()
