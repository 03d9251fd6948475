# pyright: reportMissingImports=false, reportAttributeAccessIssue=false
"""Measure a rolling restart of 3 units with each restart-lock library, in ops.testing.

Compares the hand-written ``charms.pulsar_zookeeper_k8s.v0.rolling_restart`` with
``charmlibs-rollingops`` (peer mode); the figures are in docs/explanation/architecture.md,
"Rolling restarts". Not part of any tox environment (it needs the candidate library)::

    python3 -m venv /tmp/rollsim && /tmp/rollsim/bin/pip install 'ops[testing]==3.9.0' \
        charmlibs-rollingops==1.1.5
    /tmp/rollsim/bin/python -W ignore -m tools.rolling_restart_sim [--blocking]

A mini-Juju on a discrete clock: shared peer databags, one hook at a time per unit
(``HOOK_S`` each), relation-changed on the other units when a unit's or the application's
databag changes. The workload lives outside the charm, like a container: a restart leaves it
not ready for ``READY_S`` (environment, default 20 s), and its readiness reaches the charm as a
pebble-custom-notice at that moment (both libraries get the same notices). Each charm keeps the
lock until its workload is ready again: the hand-written one by keeping its request until the
reconcile sees the workload ready; the rollingops one by returning ``RETRY_HOLD`` from its
callback until then (or, with ``--blocking``, by holding the hook until the workload is ready).
"""

from __future__ import annotations

import heapq
import itertools
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import ops
from ops import testing

from tools.repo import CHARMS_DIR

sys.path.insert(0, str(CHARMS_DIR / "pulsar-zookeeper-k8s" / "lib"))

HOOK_S = 1.0
READY_AFTER_S = float(os.environ.get("READY_S", "20"))
DISPATCH_DELAY_S = 10.0  # charmlibs-rollingops' worker sleeps 10 s before juju-exec
UNITS = 3
APP = "app"


@dataclass
class Workload:
    applied: int = 0
    restarted_at: float | None = None
    restarts: int = 0


@dataclass
class World:
    clock: float = 0.0
    wanted: int = 1
    leader: int = 0
    app_data: dict[str, str] = field(default_factory=dict)
    unit_data: dict[int, dict[str, str]] = field(default_factory=dict)
    workloads: dict[int, Workload] = field(default_factory=dict)
    max_not_ready: int = 0
    hooks: int = 0
    hooks_by_kind: dict[str, int] = field(default_factory=dict)
    writes: int = 0
    bytes_written: int = 0
    blocked_s: float = 0.0
    queue: list = field(default_factory=list)
    busy_until: dict[int, float] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)

    def ready(self, n: int) -> bool:
        w = self.workloads[n]
        return w.restarted_at is None or self.clock - w.restarted_at >= READY_AFTER_S

    def restart(self, n: int) -> None:
        w = self.workloads[n]
        w.applied, w.restarted_at, w.restarts = self.wanted, self.clock, w.restarts + 1
        not_ready = sum(not self.ready(m) for m in self.workloads)
        self.max_not_ready = max(self.max_not_ready, not_ready)
        self.push(self.clock + READY_AFTER_S, n, "notice")

    def push(self, at: float, unit: int, kind: str, remote: int | None = None) -> None:
        heapq.heappush(self.queue, (at, next(self.counter), unit, kind, remote))


WORLD = World()


def me(charm: ops.CharmBase) -> int:
    return int(charm.unit.name.split("/")[1])


# -- the hand-written library --------------------------------------------------------------------
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import RollingRestart  # noqa: E402

HAND_META = {
    "name": APP,
    "peers": {"cluster": {"interface": "cluster"}},
    "containers": {"workload": {}},
}


class HandCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.lock = RollingRestart(self, "cluster")
        for event in (
            self.on.config_changed,
            self.on.cluster_relation_changed,
            self.on.update_status,
            self.on["workload"].pebble_custom_notice,
        ):
            framework.observe(event, self._reconcile)

    def _reconcile(self, _: ops.EventBase) -> None:
        n, leader = me(self), self.unit.is_leader()
        w = WORLD.workloads[n]
        if leader:
            self.lock.arbitrate()
        if w.applied != WORLD.wanted:
            self.lock.request(str(WORLD.wanted))
            if leader:
                self.lock.arbitrate()
            if self.lock.granted():
                WORLD.restart(n)
        elif self.lock.pending() and WORLD.ready(n):
            self.lock.release()
            if leader:
                self.lock.arbitrate()


# -- charmlibs-rollingops ------------------------------------------------------------------------
from charmlibs import pathops  # noqa: E402
from charmlibs.rollingops import OperationResult, RollingOpsManager  # noqa: E402
from charmlibs.rollingops._peer._worker import PeerRollingOpsAsyncWorker  # noqa: E402

BASE = tempfile.mkdtemp()
OPS_META = {
    "name": APP,
    "peers": {"restart": {"interface": "rollingops-peers"}},
    "containers": {"workload": {}},
}
BLOCKING = "--blocking" in sys.argv


def _worker_start(self: PeerRollingOpsAsyncWorker) -> None:
    # The real worker: a background process that sleeps 10 s, then `juju-exec` dispatches the
    # rollingops_lock_granted hook on the leader; update-status takes the same code path.
    WORLD.push(WORLD.clock + DISPATCH_DELAY_S, me(self._charm), "lock_granted")


PeerRollingOpsAsyncWorker.start = _worker_start  # type: ignore[method-assign]
PeerRollingOpsAsyncWorker.stop = lambda self: None  # type: ignore[method-assign]


class OpsCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.rollingops = RollingOpsManager(
            self,
            callback_targets={"restart": self._restart},
            peer_relation_name="restart",
            base_dir=pathops.LocalPath(BASE),
        )
        for event in (self.on.config_changed, self.on["workload"].pebble_custom_notice):
            framework.observe(event, self._reconcile)

    def _reconcile(self, _: ops.EventBase) -> None:
        if WORLD.workloads[me(self)].applied != WORLD.wanted:
            self.rollingops.request_async_lock("restart", kwargs={"generation": WORLD.wanted})

    def _restart(self, generation: int) -> OperationResult:
        n = me(self)
        if WORLD.workloads[n].applied != generation:
            WORLD.restart(n)
            if BLOCKING:  # keep the hook until the workload is ready, then release
                WORLD.blocked_s += READY_AFTER_S
                WORLD.clock += READY_AFTER_S
                return OperationResult.RELEASE
        return OperationResult.RELEASE if WORLD.ready(n) else OperationResult.RETRY_HOLD


# -- the mini-Juju -------------------------------------------------------------------------------


def run(charm_type: type[ops.CharmBase], meta: dict, endpoint: str) -> World:
    global WORLD
    WORLD = World()
    for n in range(UNITS):
        WORLD.unit_data[n] = {}
        WORLD.workloads[n] = Workload()
        WORLD.busy_until[n] = 0.0
        WORLD.push(0.0, n, "config_changed")
    while WORLD.queue and WORLD.clock < 3600:
        at, _, n, kind, remote = heapq.heappop(WORLD.queue)
        start = max(at, WORLD.busy_until[n])
        WORLD.clock = start
        deliver(charm_type, meta, endpoint, n, kind, remote)
        WORLD.busy_until[n] = WORLD.clock + HOOK_S
    return WORLD


def deliver(charm_type, meta, endpoint, n, kind, remote) -> None:
    ctx = testing.Context(charm_type, meta=meta, config={"options": {}}, app_name=APP, unit_id=n)
    relation = testing.PeerRelation(
        endpoint,
        id=1,
        local_app_data=dict(WORLD.app_data),
        local_unit_data=dict(WORLD.unit_data[n]),
        peers_data={m: dict(WORLD.unit_data[m]) for m in range(UNITS) if m != n},
    )
    notice = testing.Notice(key="example.com/ready")
    container = testing.Container("workload", can_connect=True, notices=[notice])
    state = testing.State(leader=(n == WORLD.leader), relations=[relation], containers=[container])
    if kind == "config_changed":
        event = ctx.on.config_changed()
    elif kind == "relation_changed":
        event = ctx.on.relation_changed(relation, remote_unit=remote)
    elif kind == "notice":
        event = ctx.on.pebble_custom_notice(container, notice)
    else:  # lock_granted: the dispatched hook; update-status runs the same handler
        event = ctx.on.update_status()
    WORLD.hooks += 1
    WORLD.hooks_by_kind[kind] = WORLD.hooks_by_kind.get(kind, 0) + 1
    out = ctx.run(event, state).get_relation(1)
    unit_changes = diff(WORLD.unit_data[n], out.local_unit_data)
    app_changes = diff(WORLD.app_data, out.local_app_data) if n == WORLD.leader else 0
    WORLD.writes += unit_changes + app_changes
    WORLD.bytes_written += changed_bytes(WORLD.unit_data[n], out.local_unit_data)
    if n == WORLD.leader:
        WORLD.bytes_written += changed_bytes(WORLD.app_data, out.local_app_data)
    WORLD.unit_data[n] = dict(out.local_unit_data)
    if n == WORLD.leader:
        WORLD.app_data = dict(out.local_app_data)
    if unit_changes or app_changes:
        for m in range(UNITS):
            if m != n:
                WORLD.push(WORLD.clock + HOOK_S, m, "relation_changed", n)


def diff(before: Mapping[str, str], after: Mapping[str, str]) -> int:
    keys = set(before) | set(after)
    return sum(before.get(k) != after.get(k) for k in keys)


def changed_bytes(before: Mapping[str, str], after: Mapping[str, str]) -> int:
    return sum(
        len(after.get(k, "")) for k in set(before) | set(after) if before.get(k) != after.get(k)
    )


def report(name: str, world: World) -> None:
    done = all(w.applied == world.wanted for w in world.workloads.values())
    print(
        f"{name}: done={done} restarts={[w.restarts for w in world.workloads.values()]} "
        f"hooks={world.hooks} {world.hooks_by_kind} key-writes={world.writes} "
        f"bytes={world.bytes_written} "
        f"max-not-ready-at-once={world.max_not_ready} blocked-in-hooks={world.blocked_s:.0f}s "
        f"last-event-at={world.clock:.0f}s"
    )


if __name__ == "__main__":
    report("hand-written", run(HandCharm, HAND_META, "cluster"))
    variant = "blocking callback" if BLOCKING else "RETRY_HOLD until ready"
    report(f"charmlibs-rollingops ({variant})", run(OpsCharm, OPS_META, "restart"))
