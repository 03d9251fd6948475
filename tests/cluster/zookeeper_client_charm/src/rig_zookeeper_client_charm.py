"""A third ZooKeeper client for the rig: requests a chroot, reports what it was granted."""

from __future__ import annotations

import ops
from charms.pulsar_zookeeper_k8s.v0.zookeeper import ZooKeeperRequirer


class RigZooKeeperClientCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        chroot = str(self.config.get("chroot") or "/third-app")
        self.zookeeper = ZooKeeperRequirer(self, chroot=chroot)
        for event in (
            self.on.config_changed,
            self.on.update_status,
            self.on.leader_elected,
            self.on.secret_changed,
            self.on.zookeeper_relation_created,
            self.on.zookeeper_relation_changed,
            self.on.zookeeper_relation_broken,
        ):
            framework.observe(event, self._reconcile)

    def _reconcile(self, _: ops.EventBase) -> None:
        if self.zookeeper.relation is None:
            self.unit.status = ops.BlockedStatus("needs a zookeeper relation")
            return
        self.zookeeper.request()
        connection = self.zookeeper.connection()
        if connection is None:
            self.unit.status = ops.WaitingStatus("waiting for zookeeper credentials")
            return
        self.unit.status = ops.ActiveStatus(f"{connection.chroot} as {connection.username}")
