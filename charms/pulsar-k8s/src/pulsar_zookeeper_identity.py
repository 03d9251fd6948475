"""Which ZooKeeper identity the brokers use: the bookies', shared over the `bookkeeper` relation.

Brokers write ledger metadata under the BookKeeper root, and a JVM has one ZooKeeper login, so
against a ZooKeeper that gives each relation exclusive ACLs over its chroot (Charmhub's does, and
pulsar-zookeeper-k8s with ``acl-policy=exclusive``) the brokers must be the bookies' ZooKeeper
user. bookkeeper-k8s grants that identity in a Juju secret; the brokers then hold no chroot of
their own (the leader takes back any earlier request, so no second relation competes for the
tree). Only bookies of a charm revision that shares nothing make the brokers fall back to their
own ``zookeeper`` relation, asking for the same chroot as before.
"""

from __future__ import annotations

import ops
from charms.bookkeeper_k8s.v0.bookkeeper import BookKeeperRequirer
from charms.pulsar_zookeeper_k8s.v0.zookeeper import ZooKeeperConnection, ZooKeeperRequirer


def broker_zookeeper(
    charm: ops.CharmBase,
    zookeeper: ZooKeeperRequirer,
    bookkeeper: BookKeeperRequirer,
    chroot: str,
) -> ZooKeeperConnection | ops.StatusBase:
    """Return the connection the brokers use, or the status saying what they wait for."""
    leader = charm.unit.is_leader()
    shared = bookkeeper.shared_zookeeper()
    if shared is not None:
        if leader:
            zookeeper.withdraw_request()
        if shared.chroot != chroot:
            return ops.BlockedStatus(
                f"bookkeeper-k8s keeps its metadata in {shared.chroot}, brokers need {chroot}: "
                "relate bookies that use the Pulsar chroot"
            )
        hosts = ",".join(shared.endpoints)
        return ZooKeeperConnection(
            shared.endpoints,
            chroot,
            shared.username,
            shared.password,
            hosts + chroot,
            tls=bool(shared.tls_ca),
            tls_ca=shared.tls_ca,
        )
    if bookkeeper.relation is None:
        return ops.WaitingStatus("waiting for a bookkeeper relation")
    if bookkeeper.info() is None:
        return ops.WaitingStatus("waiting for bookkeeper to publish its metadata service")
    # ready bookies that share nothing (older revision): the brokers ask for the tree themselves
    if zookeeper.relation is None:
        return ops.WaitingStatus("waiting for a zookeeper relation")
    if leader:
        zookeeper.request()
    connection = zookeeper.connection()
    if connection is None:
        return ops.WaitingStatus(f"waiting for zookeeper credentials for {chroot}")
    return connection
