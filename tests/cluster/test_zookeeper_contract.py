"""The bundle against a ZooKeeper that gives each relation exclusive ACLs over its chroot.

One module-scoped model: the bundle's shape with ``pulsar-zookeeper-k8s`` on
``acl-policy=exclusive`` (the behaviour of Charmhub's ZooKeeper: each relation's user holds the
only ACL over its chroot and everything under it), plus a third ZooKeeper client application
(``zookeeper_client_charm/``) asking for a chroot of its own. The tests run in order:

1. the cluster moves messages; the brokers log in as the bookies' ZooKeeper user (shared over
   the ``bookkeeper`` relation) and ask for no chroot of their own;
2. after a ZooKeeper reconcile, every znode under ``/pulsar`` is that user's alone;
3. the third application's user can work in its own chroot but cannot read or write Pulsar's.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER, deploy_bundle
from tests.cluster.rig_juju import Model, RigEnv

sys.path.insert(0, str(Path(__file__).parent / "zookeeper_client_charm" / "src"))
from rig_zookeeper_client_charm import (  # pyright: ignore[reportMissingImports]
    RigZooKeeperClientCharm,
)

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
THIRD = "third-app"
THIRD_CHROOT = "/third-app"
REFUSED = "NoAuthError"


def zk_hosts(model: Model) -> str:
    return ",".join(f"{u.address}:2181" for u in model.units(ZOOKEEPER))


def granted(model: Model, app: str) -> dict[str, Any]:
    """The credentials pulsar-zookeeper-k8s granted ``app`` (its secret-user content)."""
    (relation,) = model.relations_of(app, "zookeeper")
    secret_id = model.app_data(relation.id, ZOOKEEPER)["secret-user"]
    return dict(model.secret(secret_id).content())


def as_user(model: Model, username: str, password: str, op: Any) -> str:
    """Run ``op`` in a SASL session as ``username``: "ok: <result>" or the exception class."""
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    client = KazooClient(
        hosts=zk_hosts(model),
        timeout=5.0,
        sasl_options={"mechanism": "DIGEST-MD5", "username": username, "password": password},
        connection_retry=KazooRetry(max_tries=1, ignore_expire=False),
        command_retry=KazooRetry(max_tries=1, ignore_expire=False),
    )
    try:
        client.start(timeout=10)
        return f"ok: {op(client)!r}"[:200]
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        try:
            client.stop()
        finally:
            client.close()


@pytest.fixture(scope="module")
def exclusive(rig_env: RigEnv) -> Iterator[Model]:
    from tests.cluster.conftest import new_model

    model = new_model(rig_env)
    try:
        started = time.monotonic()
        deploy_bundle(model, config={ZOOKEEPER: {"acl-policy": "exclusive"}})
        model.deploy(THIRD, RigZooKeeperClientCharm, config={"chroot": THIRD_CHROOT})
        model.integrate(f"{ZOOKEEPER}:zookeeper", f"{THIRD}:zookeeper")
        settled = model.settle(timeout=SETTLE)
        record("zk_contract.exclusive_bundle_settle_s", settled)
        record("zk_contract.total_settle_s", time.monotonic() - started)
        workload.Operator.of(model)
        yield model
    except Exception:
        print(f"\n===== rig report (zookeeper contract) =====\n{model.report()}")
        raise
    finally:
        model.teardown()


def test_bundle_moves_messages_with_one_zookeeper_identity(exclusive: Model):
    model = exclusive
    workload.round_trip([f"exclusive-{n}".encode() for n in range(10)])

    # the brokers log in as the bookies' ZooKeeper user and hold no chroot of their own
    bookies = granted(model, BOOKKEEPER)
    broker_jaas = model.pod(f"{BROKER}/0").read("/pulsar/conf/zookeeper-jaas.conf")
    assert f'username="{bookies["username"]}"' in broker_jaas
    (brokers_zk,) = model.relations_of(BROKER, "zookeeper")
    assert "database" not in model.app_data(brokers_zk.id, BROKER)
    assert "secret-user" not in model.app_data(brokers_zk.id, ZOOKEEPER)
    leader = model.app(ZOOKEEPER).leader
    assert leader is not None
    assert leader.unit_status.message.endswith(f"clients: /pulsar, {THIRD_CHROOT}")


def test_every_pulsar_znode_is_the_pulsar_identity_alone(exclusive: Model):
    from kazoo.client import KazooClient

    model = exclusive
    workload.round_trip([b"one more topic: new znodes, world-open as Pulsar creates them"])
    model.update_status()  # the leader re-applies the exclusive ACLs (level-triggered)
    model.settle(timeout=120)
    username = granted(model, BOOKKEEPER)["username"]
    password = model.secret("zookeeper-internal", owner=ZOOKEEPER).content()["super-password"]

    def owners(client: KazooClient) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        pending = ["/pulsar"]
        while pending:
            path = pending.pop()
            acls, _ = cast("tuple[list[Any], Any]", client.get_acls(path))
            found[path] = sorted(f"{a.id.scheme}:{a.id.id.split(':')[0]}" for a in acls)
            pending += [f"{path}/{c}" for c in client.get_children(path) or []]
        return found

    result: dict[str, dict[str, list[str]]] = {}
    outcome = as_user(model, "super", password, lambda c: result.setdefault("tree", owners(c)))
    assert outcome.startswith("ok"), outcome
    tree = result["tree"]
    expected = sorted([f"sasl:{username}", f"digest:{username}"])
    strangers = {path: ids for path, ids in tree.items() if ids != expected}
    print(f"{len(tree)} znodes under /pulsar; not the Pulsar identity's alone: {strangers}")
    assert len(tree) > 20 and "/pulsar/ledgers" in tree and "/pulsar/admin" in tree
    assert strangers == {}
    record("zk_contract.pulsar_znodes", len(tree))


def test_a_third_application_cannot_read_or_write_the_pulsar_chroot(exclusive: Model):
    model = exclusive
    third = granted(model, THIRD)
    user, password = third["username"], third["password"]
    (relation,) = model.relations_of(THIRD, "zookeeper")
    published = model.app_data(relation.id, ZOOKEEPER)
    # the answer is the data-platform contract's: no plain tls, nothing beyond the schema
    assert set(published) == {"database", "endpoints", "secret-user", "secret-tls"}

    attempts = {
        "list /pulsar": lambda c: c.get_children("/pulsar"),
        "read cluster": lambda c: c.get("/pulsar/admin/clusters/pulsar")[0][:20],
        "read ledgers": lambda c: c.get_children("/pulsar/ledgers"),
        "write ledgers": lambda c: c.create("/pulsar/ledgers/probe", b"x"),
    }
    results = {name: as_user(model, user, password, op) for name, op in attempts.items()}
    print(results)
    for name, outcome in results.items():
        assert outcome.startswith(REFUSED), f"{name}: {outcome}"
    record("zk_contract.third_app_refusals", {k: v.split(":")[0] for k, v in results.items()})

    # positive controls: the third user works in its own chroot, Pulsar's user reads Pulsar's
    own = as_user(
        model,
        user,
        password,
        lambda c: (c.create(f"{THIRD_CHROOT}/mine", b"x"), c.get(f"{THIRD_CHROOT}/mine")[0]),
    )
    assert own.startswith("ok") and "b'x'" in own, own
    bookies = granted(model, BOOKKEEPER)
    pulsars = as_user(
        model,
        bookies["username"],
        bookies["password"],
        lambda c: c.get("/pulsar/admin/clusters/pulsar")[0][:20],
    )
    assert pulsars.startswith("ok"), pulsars
