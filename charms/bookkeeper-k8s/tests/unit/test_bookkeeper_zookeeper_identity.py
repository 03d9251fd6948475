"""The bookies share their ZooKeeper identity with the brokers (one identity per cluster)."""

from __future__ import annotations

from charms.bookkeeper_k8s.v0.bookkeeper import ZOOKEEPER_SECRET_LABEL
from ops import testing
from test_bookkeeper_charm import (
    PASSWORD,
    USERNAME,
    ZK_ENDPOINTS,
    container,
    state,
    zk_relation,
)


def test_leader_grants_the_brokers_its_zookeeper_identity_in_a_secret(
    ctx, storage, tmp_path, fake_http
):
    brokers = testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")
    st = state(container(storage, tmp_path, running=True), extra=(brokers,))
    out = ctx.run(ctx.on.update_status(), st)
    data = out.get_relation(brokers.id).local_app_data
    shared = next(s for s in out.secrets if s.label == ZOOKEEPER_SECRET_LABEL)
    assert data["zookeeper-secret"] == shared.id
    assert PASSWORD not in "".join(data.values())  # the password is only in the secret
    assert shared.tracked_content == {
        "username": USERNAME,
        "password": PASSWORD,
        "endpoints": ZK_ENDPOINTS,
        "chroot": "/pulsar",
    }
    assert shared.remote_grants == {brokers.id: {"pulsar-k8s"}}

    # an unchanged reconcile adds no revision and writes nothing
    again = ctx.run(ctx.on.update_status(), out)
    same = next(s for s in again.secrets if s.label == ZOOKEEPER_SECRET_LABEL)
    assert same.tracked_content == shared.tracked_content
    assert same.latest_content == shared.latest_content
    assert again.get_relation(brokers.id).local_app_data == data


def test_nothing_is_shared_before_zookeeper_answered(ctx, storage, tmp_path):
    brokers = testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")
    no_answer = zk_relation(None, endpoints="", **{"secret-user": ""})
    st = state(container(storage, tmp_path), zk=False, extra=(brokers, no_answer))
    out = ctx.run(ctx.on.update_status(), st)
    assert "zookeeper-secret" not in out.get_relation(brokers.id).local_app_data
    assert not [s for s in out.secrets if s.label == ZOOKEEPER_SECRET_LABEL]


def test_a_non_leader_shares_nothing(ctx, storage, tmp_path, fake_http):
    brokers = testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")
    st = state(container(storage, tmp_path, running=True), leader=False, extra=(brokers,))
    out = ctx.run(ctx.on.update_status(), st)
    assert out.get_relation(brokers.id).local_app_data == {}
    assert not [s for s in out.secrets if s.label == ZOOKEEPER_SECRET_LABEL]
