"""A small Juju: delivers events to real charm code (ops.testing) whose Pebble is real.

The rig holds what the Juju controller holds (applications, units, leadership, relations and
their databags, secrets and their grants, config) and, for each event, builds the
``ops.testing.State`` that unit would see, runs the charm with ``Context.run``, and merges the
output state back. The charm's ``pulsar`` container talks to the unit's real Pebble (see
:mod:`tests.cluster.rig_pods`). Changes are propagated as Juju would: a changed databag queues
relation-changed on the units that can see it, a new secret revision queues secret-changed on
the units that track it, and so on. The rig knows nothing about what the charms run or in which
order: if a scenario needs the rig to know, the charm is missing logic.

Usage, in short::

    model = Model(rig)                            # rig: RigEnv from conftest (namespace + image)
    model.deploy("pulsar-zookeeper-k8s", ZooKeeperCharm, units=3, config={"heap-mb": 128})
    model.integrate("pulsar-zookeeper-k8s:zookeeper", "bookkeeper-k8s:zookeeper")
    model.settle(until=model.all_active, timeout=600)
    model.execs(unit="bookkeeper-k8s/0", contains="initnewcluster")
    model.kill_service("pulsar-zookeeper-k8s/1", "zookeeper")
    model.lose_pod("bookkeeper-k8s/2")
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from unittest import mock

import ops
import scenario.mocking
from ops import testing

from tests.cluster.rig_net import MODEL_NAME, AddressPlan
from tests.cluster.rig_pods import Image, Pod

logger = logging.getLogger(__name__)

JUJU_VERSION = "3.6.14"
MODEL_UUID = "00000000-0000-4000-8000-00000000ca11"
CONTAINER = "pulsar"
POD_CHURN_EVENTS = ("upgrade_charm", "config_changed", "start", "pebble_ready")
"""What a unit sees when Kubernetes recreates its pod (charm container included)."""
MAX_EVENTS_PER_DRAIN = 2000
OUTPUT_TAIL = 4000
UPDATE_STATUS_INTERVAL = 300.0
"""Juju's model default ``update-status-hook-interval`` (5m)."""
UPDATE_STATUS_INTERVAL_ENV = "PULSAR_RIG_UPDATE_STATUS_INTERVAL"
"""Seconds; overrides the interval of every model (for experiments only)."""
UPDATE_STATUS_JITTER = 0.2
"""Juju waits a random 80-120% of the interval each time (``uniter.NewUpdateStatusTimer``)."""
CHECK_CHANGE_KINDS = ("perform-check", "recover-check")

JsonDict = dict[str, str]


class RigError(RuntimeError):
    pass


class HookFailedError(RigError):
    """The charm raised: under Juju the unit would be in error state."""


class SettleTimeoutError(RigError):
    pass


# --------------------------------------------------------------------------------------------
# Records: what ran, and what the charm asked Pebble to do
# --------------------------------------------------------------------------------------------


@dataclass
class PebbleCall:
    """One call the charm made on its unit's real Pebble."""

    seq: int
    unit: str
    event: str
    op: str
    """``exec``, ``push``, ``add_layer``, ``replan``, ``start``, ``stop``, ``restart``, ..."""
    args: dict[str, Any]
    exit_code: int | None = None
    """For ``exec``: set once the charm waited for the process."""
    stdout: str | None = None
    """For ``exec`` + ``wait_output()``: the last :data:`OUTPUT_TAIL` characters."""
    stderr: str | None = None

    @property
    def command(self) -> list[str]:
        return list(self.args.get("command", []))

    def __str__(self) -> str:
        detail = " ".join(self.command) if self.op == "exec" else self.args
        return f"#{self.seq} {self.unit} [{self.event}] {self.op} {detail} -> {self.exit_code}"


@dataclass
class EventRecord:
    seq: int
    unit: str
    event: str
    started: float
    duration: float = 0.0
    status: str = ""
    error: str | None = None
    juju_log: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        tail = f" ERROR {self.error.splitlines()[-1]}" if self.error else ""
        return (
            f"#{self.seq} {self.unit} {self.event} ({self.duration:.1f}s) -> {self.status}{tail}"
        )


class Recorder:
    def __init__(self) -> None:
        self.events: list[EventRecord] = []
        self.calls: list[PebbleCall] = []
        self.current: tuple[str, str] = ("", "")

    def call(self, op: str, **args: Any) -> PebbleCall:
        unit, event = self.current
        record = PebbleCall(len(self.calls), unit, event, op, args)
        self.calls.append(record)
        return record


class RecordingClient(ops.pebble.Client):
    """A real Pebble client that records what the charm does with it."""

    def __init__(self, socket_path: str, recorder: Recorder):
        super().__init__(socket_path=socket_path)
        self._recorder = recorder

    def exec(self, command: list[str], **kwargs: Any) -> Any:  # type: ignore[override]
        record = self._recorder.call(
            "exec",
            command=list(command),
            environment=dict(kwargs.get("environment") or {}),
            user_id=kwargs.get("user_id"),
            user=kwargs.get("user"),
            group_id=kwargs.get("group_id"),
            working_dir=kwargs.get("working_dir"),
        )
        process = super().exec(command, **kwargs)
        wait, wait_output = process.wait, process.wait_output

        def recorded_wait() -> None:
            try:
                wait()
                record.exit_code = 0
            except ops.pebble.ExecError as exc:
                record.exit_code = exc.exit_code
                record.stdout, record.stderr = _tail(exc.stdout), _tail(exc.stderr)
                raise

        def recorded_wait_output() -> Any:
            try:
                result = wait_output()
            except ops.pebble.ExecError as exc:
                record.exit_code = exc.exit_code
                record.stdout, record.stderr = _tail(exc.stdout), _tail(exc.stderr)
                raise
            record.exit_code = 0
            record.stdout, record.stderr = _tail(result[0]), _tail(result[1])
            return result

        process.wait = recorded_wait  # type: ignore[method-assign]
        process.wait_output = recorded_wait_output  # type: ignore[method-assign]
        return process

    def push(self, path: str, source: Any, **kwargs: Any) -> None:  # type: ignore[override]
        keep = ("user_id", "group_id", "permissions", "make_dirs")
        self._recorder.call("push", path=str(path), **{k: kwargs.get(k) for k in keep})
        super().push(path, source, **kwargs)

    def add_layer(self, label: str, layer: Any, *, combine: bool = False) -> None:
        self._recorder.call("add_layer", label=label, combine=combine)
        super().add_layer(label, layer, combine=combine)

    def replan_services(self, timeout: float = 30.0, delay: float = 0.1) -> Any:
        self._recorder.call("replan")
        return super().replan_services(timeout, delay)

    def start_services(self, services: Iterable[str], *args: Any, **kwargs: Any) -> Any:
        self._recorder.call("start", services=list(services))
        return super().start_services(list(services), *args, **kwargs)

    def stop_services(self, services: Iterable[str], *args: Any, **kwargs: Any) -> Any:
        self._recorder.call("stop", services=list(services))
        return super().stop_services(list(services), *args, **kwargs)

    def restart_services(self, services: Iterable[str], *args: Any, **kwargs: Any) -> Any:
        self._recorder.call("restart", services=list(services))
        return super().restart_services(list(services), *args, **kwargs)

    def send_signal(self, sig: int | str, services: Iterable[str]) -> None:
        self._recorder.call("signal", signal=str(sig), services=list(services))
        super().send_signal(sig, list(services))

    def make_dir(self, path: str, **kwargs: Any) -> None:  # type: ignore[override]
        self._recorder.call("make_dir", path=str(path))
        super().make_dir(path, **kwargs)

    def remove_path(self, path: str, *, recursive: bool = False) -> None:  # type: ignore[override]
        self._recorder.call("remove_path", path=str(path), recursive=recursive)
        super().remove_path(path, recursive=recursive)


# --------------------------------------------------------------------------------------------
# Controller-side data
# --------------------------------------------------------------------------------------------


@dataclass
class RigSecret:
    id: str
    owner_app: str
    owner_unit: str | None
    """Set for unit-owned secrets."""
    revisions: list[JsonDict]
    label: str | None = None
    description: str | None = None
    expire: Any = None
    rotate: Any = None
    grants: dict[int, set[str]] = field(default_factory=dict)
    """relation id -> granted application or unit names."""
    consumer_labels: dict[str, str] = field(default_factory=dict)
    tracked: dict[str, int] = field(default_factory=dict)
    """unit name -> revision it tracks (only units that have seen the content)."""

    @property
    def latest(self) -> int:
        return len(self.revisions)

    def owned_by(self, unit: RigUnit) -> bool:
        if self.owner_unit is not None:
            return self.owner_unit == unit.name
        return self.owner_app == unit.app.name

    def content(self, revision: int | None = None) -> JsonDict:
        return dict(self.revisions[(revision or self.latest) - 1])


@dataclass
class RigRelation:
    id: int
    apps: tuple[str, str]
    """(app, app) for a peer relation."""
    endpoints: tuple[str, str]
    interface: str
    app_data: dict[str, JsonDict] = field(default_factory=dict)
    unit_data: dict[str, JsonDict] = field(default_factory=dict)
    participants: set[str] = field(default_factory=set)
    """Units for which relation-created has been queued (they are in the relation)."""
    in_scope: dict[str, set[str]] = field(default_factory=dict)
    """unit -> remote (or peer) units it has seen join and not yet depart."""
    broken: bool = False
    left: set[str] = field(default_factory=set)
    """Units that have run relation-broken: the relation no longer exists for them."""

    @property
    def is_peer(self) -> bool:
        return self.apps[0] == self.apps[1]

    def side(self, app: str) -> int:
        return self.apps.index(app)

    def endpoint_of(self, app: str) -> str:
        return self.endpoints[self.side(app)]

    def remote_app(self, app: str) -> str:
        return self.apps[1 - self.side(app)] if not self.is_peer else app

    def __str__(self) -> str:
        a, b = (f"{x}:{y}" for x, y in zip(self.apps, self.endpoints, strict=True))
        return f"{self.id} {a}" if self.is_peer else f"{self.id} {a} <-> {b}"


@dataclass
class WorkloadWatch:
    """What Juju's Pebble notice watcher of one unit has already turned into events."""

    generation: int
    """The pod generation watched: a new pod is a new Pebble (IDs start again)."""
    notice_repeated: dict[str, Any] = field(default_factory=dict)
    """custom notice ID -> last-repeated time already delivered."""
    check_change: dict[str, str] = field(default_factory=dict)
    """check name -> the change ID Pebble last reported for it."""
    check_change_done: dict[str, int] = field(default_factory=dict)
    """check name -> highest finished perform-/recover-check change already judged."""


@dataclass
class RigUnit:
    app: RigApp
    number: int
    pod: Pod
    address: str
    fqdn: str
    leader: bool = False
    unit_status: Any = field(default_factory=lambda: testing.UnknownStatus())
    workload_version: str = ""
    stored_states: frozenset[Any] = frozenset()
    deferred: tuple[Any, ...] = ()
    dying: bool = False
    last_event: str = ""
    agent_started: float = 0.0
    """``time.time()`` when the unit agent last started (with the unit, or a new pod)."""
    next_update_status: float = 0.0
    """``time.monotonic()`` at which the unit agent's update-status timer fires next."""
    watch: WorkloadWatch = field(default_factory=lambda: WorkloadWatch(-1))

    @property
    def name(self) -> str:
        return f"{self.app.name}/{self.number}"

    @property
    def status(self) -> ops.StatusBase:
        return ops.StatusBase.from_name(self.unit_status.name, self.unit_status.message)

    def __str__(self) -> str:
        return self.name


@dataclass
class RigApp:
    name: str
    charm_type: type[ops.CharmBase]
    meta: dict[str, Any]
    config_options: dict[str, Any]
    actions: dict[str, Any] | None
    config: dict[str, Any]
    storage_mounts: dict[str, str]
    units: dict[int, RigUnit] = field(default_factory=dict)
    app_status: Any = field(default_factory=lambda: testing.UnknownStatus())
    peer_relation_ids: list[int] = field(default_factory=list)

    @property
    def live_units(self) -> list[RigUnit]:
        return [u for _, u in sorted(self.units.items()) if not u.dying]

    @property
    def leader(self) -> RigUnit | None:
        return next((u for u in self.units.values() if u.leader), None)


@dataclass(frozen=True)
class QueuedEvent:
    unit: str
    kind: str
    relation_id: int | None = None
    remote_unit: str | None = None
    departing_unit: str | None = None
    secret_id: str | None = None
    storage: str | None = None
    check: str | None = None
    action: str | None = None
    change_id: str | None = None
    """For check events: the Pebble change that ended (each transition is its own hook)."""
    notice_id: str | None = None
    notice_key: str | None = None
    notice_repeated: str | None = None
    """The occurrence (last-repeated time): each repeat is its own hook, never coalesced."""

    def __str__(self) -> str:
        parts = [self.kind]
        if self.relation_id is not None:
            parts.append(f"rel={self.relation_id}")
        for name in ("remote_unit", "departing_unit", "secret_id", "storage", "check", "action"):
            if getattr(self, name):
                parts.append(f"{name.split('_')[0]}={getattr(self, name)}")
        if self.notice_key:
            parts.append(f"key={self.notice_key} id={self.notice_id}")
        return " ".join(parts)


@dataclass(frozen=True)
class RigAction:
    """Something the platform (not the charm) does, in queue order, e.g. a pod coming up."""

    unit: str
    what: str
    run: Callable[[], None] = field(compare=False, hash=False)

    def __str__(self) -> str:
        return f"<{self.what}>"


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass
class Gate:
    """The platform waits for ``ready()`` before doing ``then()`` (e.g. a rolling update)."""

    what: str
    ready: Callable[[], bool]
    then: Callable[[], None]


@dataclass
class RigEnv:
    """What the session sets up once: the state dir, the image and the address plan."""

    state_dir: Path
    image: Image
    plan: AddressPlan


def _charm_spec(charm_type: type[ops.CharmBase]) -> Any:
    from scenario.state import _CharmSpec

    return _CharmSpec.autoload(charm_type)


class Model:
    """A Juju model named "rig" whose units are real Pebble pods driven by real charm code."""

    def __init__(
        self,
        env: RigEnv,
        name: str = MODEL_NAME,
        raise_on_hook_error: bool = True,
        update_status_interval: float | None = None,
    ):
        """``update_status_interval``: the model's ``update-status-hook-interval`` in seconds
        (default :data:`UPDATE_STATUS_INTERVAL`, as Juju; ``$PULSAR_RIG_UPDATE_STATUS_INTERVAL``
        overrides it for experiments)."""
        self.env = env
        override = os.environ.get(UPDATE_STATUS_INTERVAL_ENV)
        if override:
            update_status_interval = float(override)
        self.update_status_interval = (
            UPDATE_STATUS_INTERVAL if update_status_interval is None else update_status_interval
        )
        self._update_status_random = random.Random(0)  # reproducible phases
        self.name = name
        self.apps: dict[str, RigApp] = {}
        self.relations: dict[int, RigRelation] = {}
        self.secrets: dict[str, RigSecret] = {}
        self.queue: deque[QueuedEvent | RigAction] = deque()
        self.recorder = Recorder()
        self.raise_on_hook_error = raise_on_hook_error
        self.hook_errors: list[EventRecord] = []
        self.gates: list[Gate] = []
        self._next_relation_id = 0
        self._pods: list[Pod] = []
        self._running: RigUnit | None = None

    # -- lookups -----------------------------------------------------------------------------

    def app(self, name: str) -> RigApp:
        return self.apps[name]

    def unit(self, name: str) -> RigUnit:
        app, number = name.rsplit("/", 1)
        return self.apps[app].units[int(number)]

    def units(self, app: str | None = None) -> list[RigUnit]:
        apps = [self.apps[app]] if app else list(self.apps.values())
        return [u for a in apps for u in a.live_units]

    def pod(self, unit: str) -> Pod:
        return self.unit(unit).pod

    def relation(self, relation_id: int) -> RigRelation:
        return self.relations[relation_id]

    def relations_of(self, app: str, endpoint: str | None = None) -> list[RigRelation]:
        return [
            r
            for r in self.relations.values()
            if app in r.apps
            and not r.broken
            and (endpoint is None or r.endpoint_of(app) == endpoint)
        ]

    def peer_relation(self, app: str) -> RigRelation:
        return self.relations[self.apps[app].peer_relation_ids[0]]

    def app_data(self, relation_id: int, app: str) -> JsonDict:
        return dict(self.relations[relation_id].app_data.get(app, {}))

    def unit_data(self, relation_id: int, unit: str) -> JsonDict:
        return dict(self.relations[relation_id].unit_data.get(unit, {}))

    def secret(self, id_or_label: str, owner: str | None = None) -> RigSecret:
        """A secret by ID, or by its owner's label (``owner``: app or unit name)."""
        if id_or_label in self.secrets:
            return self.secrets[id_or_label]
        found = [
            s
            for s in self.secrets.values()
            if s.label == id_or_label and (owner is None or owner in (s.owner_app, s.owner_unit))
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} secrets labelled {id_or_label!r} (owner {owner})")
        return found[0]

    def secret_content(self, id_or_label: str, owner: str | None = None) -> JsonDict:
        return self.secret(id_or_label, owner).content()

    # -- records -----------------------------------------------------------------------------

    def execs(
        self, unit: str | None = None, contains: str | None = None, since: int = 0
    ) -> list[PebbleCall]:
        """Every exec the charms made (optionally: on ``unit``, whose argv contains a word)."""
        return [
            c
            for c in self.recorder.calls[since:]
            if c.op == "exec"
            and (unit is None or c.unit == unit)
            and (contains is None or any(contains in arg for arg in c.command))
        ]

    def pebble_calls(self, unit: str | None = None, op: str | None = None) -> list[PebbleCall]:
        return [
            c
            for c in self.recorder.calls
            if (unit is None or c.unit == unit) and (op is None or c.op == op)
        ]

    def events(self, unit: str | None = None, kind: str | None = None) -> list[EventRecord]:
        return [
            e
            for e in self.recorder.events
            if (unit is None or e.unit == unit) and (kind is None or e.event.startswith(kind))
        ]

    # -- juju commands -----------------------------------------------------------------------

    def deploy(
        self,
        name: str,
        charm_type: type[ops.CharmBase],
        units: int = 1,
        config: Mapping[str, Any] | None = None,
        storage: Mapping[str, str] | None = None,
    ) -> RigApp:
        """``juju deploy``. ``storage`` overrides the storage -> container location mapping
        read from the charm's ``containers.pulsar.mounts``."""
        if name in self.apps:
            raise RigError(f"application {name} already deployed")
        spec = _charm_spec(charm_type)
        meta = spec.meta
        mounts = storage_mounts(meta)
        app = RigApp(
            name=name,
            charm_type=charm_type,
            meta=meta,
            config_options=spec.config or {},
            actions=spec.actions,
            config=dict(config or {}),
            storage_mounts=dict(storage) if storage is not None else mounts,
        )
        self.apps[name] = app
        self.env.plan.add_app(name)
        for endpoint, info in (meta.get("peers") or {}).items():
            rel = self._new_relation((name, name), (endpoint, endpoint), info["interface"])
            app.peer_relation_ids.append(rel.id)
        self.add_unit(name, units)
        return app

    def add_unit(self, app_name: str, count: int = 1) -> list[RigUnit]:
        """``juju add-unit`` (Kubernetes: the next pod ordinals)."""
        app = self.apps[app_name]
        added = []
        for _ in range(count):
            number = max(app.units, default=-1) + 1
            if number in app.units:  # pragma: no cover
                raise RigError(f"{app_name}/{number} exists")
            added.append(self._create_unit(app, number))
        return added

    def remove_unit(self, app_name: str, count: int = 1, destroy_storage: bool = True) -> None:
        """``juju remove-unit --num-units`` on Kubernetes: the highest ordinals go."""
        app = self.apps[app_name]
        for unit in list(reversed(app.live_units))[:count]:
            self._remove_unit(unit, destroy_storage)

    def scale(self, app_name: str, units: int) -> None:
        current = len(self.apps[app_name].live_units)
        if units > current:
            self.add_unit(app_name, units - current)
        elif units < current:
            self.remove_unit(app_name, current - units)

    def integrate(self, a: str, b: str) -> RigRelation:
        """``juju integrate app:endpoint app:endpoint``."""
        (app_a, ep_a), (app_b, ep_b) = (self._endpoint(a), self._endpoint(b))
        iface_a = self._interface(app_a, ep_a)
        iface_b = self._interface(app_b, ep_b)
        if iface_a != iface_b:
            raise RigError(f"{a} ({iface_a}) cannot integrate with {b} ({iface_b})")
        rel = self._new_relation((app_a, app_b), (ep_a, ep_b), iface_a)
        for unit in self.units(app_a) + self.units(app_b):
            self._enter_relation(rel, unit)
        for unit in self.units(app_a) + self.units(app_b):
            self._join_all(rel, unit)
        return rel

    def remove_relation(self, relation_id: int) -> None:
        """``juju remove-relation``: departed for every unit pair, then broken everywhere."""
        rel = self.relations[relation_id]
        for unit_name in sorted(rel.participants):
            for other in sorted(rel.in_scope.get(unit_name, set())):
                self._push(
                    QueuedEvent(
                        unit_name, "relation_departed", rel.id, other, departing_unit=other
                    )
                )
        for unit_name in sorted(rel.participants):
            self._push(QueuedEvent(unit_name, "relation_broken", rel.id))
        self._push(RigAction("", f"drop relation {rel.id}", lambda: self._drop_relation(rel)))

    def config(self, app_name: str, **values: Any) -> None:
        """``juju config app key=value`` (``None`` resets a key to its default)."""
        app = self.apps[app_name]
        for key, value in values.items():
            if key not in app.config_options.get("options", {}):
                raise RigError(f"{app_name} has no config option {key!r}")
            if value is None:
                app.config.pop(key, None)
            else:
                app.config[key] = value
        for unit in app.live_units:
            self._push(QueuedEvent(unit.name, "config_changed"))

    def set_leader(self, unit_name: str) -> None:
        """Move leadership (as Juju does when the leader's agent goes away)."""
        unit = self.unit(unit_name)
        for other in unit.app.units.values():
            other.leader = False
        unit.leader = True
        self._push(QueuedEvent(unit.name, "leader_elected"))

    def upgrade_charm(self, app_name: str, recreate_pods: bool = True) -> None:
        """``juju refresh``. With ``recreate_pods`` (what a sidecar refresh does), Kubernetes
        replaces the pods one by one, highest ordinal first, and moves on only once the new pod
        is ready (Pebble's ``/v1/health?level=ready``, which Juju uses as readiness probe)."""
        app = self.apps[app_name]
        if not recreate_pods:
            for unit in app.live_units:
                self._push(QueuedEvent(unit.name, "upgrade_charm"))
                self._push(QueuedEvent(unit.name, "config_changed"))
            return
        self._rolling_replace(list(reversed(app.live_units)))

    def _rolling_replace(self, units: list[RigUnit]) -> None:
        if not units:
            return
        unit, rest = units[0], units[1:]
        if unit.dying or unit.number not in unit.app.units:
            self._rolling_replace(rest)
            return

        def recreate() -> None:
            unit.pod.recreate()
            self._start_agent_timer(unit)

        self._push(RigAction(unit.name, "recreate pod", recreate))
        for kind in POD_CHURN_EVENTS:
            self._push(QueuedEvent(unit.name, kind))
        self.gates.append(
            Gate(
                f"{unit.name} ready",
                lambda: self._pod_ready(unit),
                lambda: self._rolling_replace(rest),
            )
        )

    def update_status(self, units: Iterable[RigUnit] | None = None) -> None:
        for unit in units if units is not None else self.units():
            self._push(QueuedEvent(unit.name, "update_status"))

    # -- workload faults ---------------------------------------------------------------------

    def kill_service(self, unit_name: str, service: str, sig: int = 9) -> int:
        """``kill -9`` the service's process; Pebble's restart policy decides what follows."""
        return self.pod(unit_name).kill_service(service, sig)

    def lose_pod(self, unit_name: str, restart: bool = True) -> None:
        """The pod disappears (all processes killed, everything but storage wiped).

        With ``restart`` (default), Kubernetes recreates it at once and the unit sees
        :data:`POD_CHURN_EVENTS`; otherwise it stays down until :meth:`restore_pod`.
        """
        unit = self.unit(unit_name)
        unit.pod.lose()
        if restart:
            self.restore_pod(unit_name)

    def restore_pod(self, unit_name: str) -> None:
        unit = self.unit(unit_name)
        unit.pod.start()
        self._start_agent_timer(unit)
        for kind in POD_CHURN_EVENTS:
            self._push(QueuedEvent(unit.name, kind))

    def restart_container(self, unit_name: str) -> None:
        """Only the workload container restarts (e.g. a liveness-probe kill): fresh filesystem
        from the image, same storage; the charm sees pebble-ready."""
        unit = self.unit(unit_name)
        unit.pod.recreate()
        self._push(QueuedEvent(unit.name, "pebble_ready"))

    # -- running -----------------------------------------------------------------------------

    def run_queue(self, max_events: int = MAX_EVENTS_PER_DRAIN) -> int:
        """Deliver queued events until the queue is empty; return how many ran."""
        count = 0
        while self.queue:
            if count >= max_events:
                raise RigError(
                    f"event storm: {count} events without settling; queue head: "
                    + ", ".join(f"{e.unit}:{e}" for e in list(self.queue)[:20])
                )
            item = self.queue.popleft()
            count += 1
            if isinstance(item, RigAction):
                logger.info("rig action %s %s", item.unit, item.what)
                item.run()
                continue
            unit = self._find_unit(item.unit)
            if unit is None:
                continue  # the unit went away while the event was queued
            self._run_event(unit, item)
        return count

    def settle(
        self,
        until: Callable[[], bool] | None = None,
        timeout: float = 300.0,
        tick: float | None = None,
        poll: float = 0.25,
    ) -> float:
        """Deliver events until ``until()`` holds with an empty queue (default: every unit
        active), as Juju would meanwhile: update-status per unit on its own timer
        (:attr:`update_status_interval`; ``tick``, kept for old callers, replaces it for this
        call), Pebble check events and custom notices as the pods' Pebble reports them.
        Returns the time taken; raises :class:`SettleTimeoutError` with the status table and
        Pebble logs."""
        until = until or self.all_active
        interval = self.update_status_interval if tick is None else tick
        started = time.monotonic()
        deadline = started + timeout
        while True:
            self.run_queue()
            self._poll_workloads()
            self._open_gates()
            if not self.queue and not self.gates and until():
                return time.monotonic() - started
            now = time.monotonic()
            if now > deadline:
                raise SettleTimeoutError(f"not settled after {timeout:.0f}s\n{self.report()}")
            self._fire_due_update_status(now, interval)
            if not self.queue:
                time.sleep(poll)

    def _update_status_wait(self, interval: float) -> float:
        spread = UPDATE_STATUS_JITTER * interval
        return interval - spread + self._update_status_random.random() * 2 * spread

    def _start_agent_timer(self, unit: RigUnit) -> None:
        """The unit agent (re)started: its update-status timer starts now, as Juju's does."""
        unit.agent_started = time.time()
        unit.next_update_status = time.monotonic() + self._update_status_wait(
            self.update_status_interval
        )

    def _fire_due_update_status(self, now: float, interval: float) -> None:
        for unit in self.units():
            # No pod, no unit agent (it runs in the pod's charm container): no timer either.
            if unit.pod.running and now >= unit.next_update_status:
                self._push(QueuedEvent(unit.name, "update_status"))
                unit.next_update_status = now + self._update_status_wait(interval)

    def _open_gates(self) -> None:
        for gate in list(self.gates):
            if gate.ready():
                self.gates.remove(gate)
                gate.then()

    def all_active(self) -> bool:
        units = self.units()
        return bool(units) and all(u.unit_status.name == "active" for u in units)

    def run_for(self, seconds: float, tick: float | None = None) -> None:
        """Let time pass for ``seconds``: deliver what Juju would (see :meth:`settle`)."""
        deadline = time.monotonic() + seconds
        self.settle(until=lambda: time.monotonic() >= deadline, timeout=seconds + 600, tick=tick)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 120.0) -> float:
        """Alias of :meth:`settle` for readability in tests."""
        return self.settle(until=predicate, timeout=timeout)

    def run(self, unit_name: str, kind: str, **kwargs: Any) -> EventRecord:
        """Deliver one event now (bypassing the queue), e.g. ``run("x/0", "update_status")``."""
        unit = self.unit(unit_name)
        return self._run_event(unit, QueuedEvent(unit.name, kind, **kwargs))

    def run_action(
        self, unit_name: str, action: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``juju run unit action``: returns the results; raises ``ops.testing.ActionFailed``."""
        unit = self.unit(unit_name)
        results: dict[str, Any] = {}
        self._run_event(
            unit, QueuedEvent(unit.name, "action", action=action), params=params, out=results
        )
        return results

    # -- reporting ---------------------------------------------------------------------------

    def status_table(self) -> str:
        rows = [("unit", "L", "status", "message", "pod", "services", "last event")]
        for unit in self.units():
            services = "-"
            if unit.pod.running:
                try:
                    services = ",".join(
                        f"{s.name}={getattr(s.current, 'value', s.current)}"
                        for s in unit.pod.client().get_services()
                    )
                except (ops.pebble.Error, OSError) as exc:
                    services = f"? {exc}"
            rows.append(
                (
                    unit.name,
                    "*" if unit.leader else "",
                    unit.unit_status.name,
                    unit.unit_status.message,
                    "up" if unit.pod.running else "down",
                    services or "-",
                    unit.last_event,
                )
            )
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        )

    def report(self, log_lines: int = 25) -> str:
        parts = [self.status_table(), "", "last events:"]
        parts += [f"  {e}" for e in self.recorder.events[-15:]]
        failed = [c for c in self.recorder.calls if c.op == "exec" and c.exit_code]
        if failed:
            parts += ["", "last failed execs:"]
            for call in failed[-5:]:
                parts.append(f"  {call}")
                output = (call.stderr or "") + (call.stdout or "")
                parts += [f"    | {line}" for line in output.strip().splitlines()[-8:]]
        for unit in self.units():
            parts += ["", f"--- {unit.name}: pebble logs ---", unit.pod.service_logs(log_lines)]
        return "\n".join(parts)

    # -- teardown ----------------------------------------------------------------------------

    def teardown(self) -> None:
        errors = []
        for pod in self._pods:
            try:
                pod.stop(graceful=False)
            except Exception as exc:  # keep stopping the others
                errors.append(f"{pod.name}: {exc}")
        if errors:
            raise RigError("teardown: " + "; ".join(errors))

    # -- internals: units --------------------------------------------------------------------

    def _create_unit(self, app: RigApp, number: int) -> RigUnit:
        plan = self.env.plan
        pod_name = f"{app.name}-{number}"
        pod = Pod(
            name=pod_name,
            hostname=pod_name,
            image=self.env.image,
            pod_dir=self.env.state_dir / "pods" / pod_name,
            storage_dir=self.env.state_dir / "storage" / pod_name,
            storage=app.storage_mounts,
        )
        self._pods.append(pod)
        unit = RigUnit(
            app=app,
            number=number,
            pod=pod,
            address=plan.address(app.name, number),
            fqdn=plan.fqdn(app.name, number),
            leader=app.leader is None,
        )
        self._start_agent_timer(unit)
        app.units[number] = unit
        for storage in app.storage_mounts:
            self._push(QueuedEvent(unit.name, "storage_attached", storage=storage))
        self._push(QueuedEvent(unit.name, "install"))
        for rel in self.relations_of(app.name):
            self._enter_relation(rel, unit)
        if unit.leader:
            self._push(QueuedEvent(unit.name, "leader_elected"))
        self._push(QueuedEvent(unit.name, "config_changed"))
        self._push(QueuedEvent(unit.name, "start"))
        self._push(RigAction(unit.name, "start pod", pod.start))
        self._push(QueuedEvent(unit.name, "pebble_ready"))
        for rel in self.relations_of(app.name):
            self._join_all(rel, unit)
        return unit

    def _remove_unit(self, unit: RigUnit, destroy_storage: bool) -> None:
        unit.dying = True
        app = unit.app
        for rel in self.relations_of(app.name):
            for other_name in sorted(rel.participants - {unit.name}):
                if unit.name in rel.in_scope.get(other_name, set()):
                    self._push(
                        QueuedEvent(other_name, "relation_departed", rel.id, unit.name, unit.name)
                    )
            for other_name in sorted(rel.in_scope.get(unit.name, set())):
                self._push(
                    QueuedEvent(unit.name, "relation_departed", rel.id, other_name, unit.name)
                )
            self._push(QueuedEvent(unit.name, "relation_broken", rel.id))
        for storage in app.storage_mounts:
            self._push(QueuedEvent(unit.name, "storage_detaching", storage=storage))
        self._push(QueuedEvent(unit.name, "stop"))
        self._push(QueuedEvent(unit.name, "remove"))

        def gone() -> None:
            unit.pod.stop(graceful=True)
            if destroy_storage:
                shutil.rmtree(unit.pod.storage_dir, ignore_errors=True)
            for rel in self.relations.values():
                rel.participants.discard(unit.name)
                rel.in_scope.pop(unit.name, None)
                rel.unit_data.pop(unit.name, None)
            del app.units[unit.number]
            if unit.leader and app.live_units:
                self.set_leader(app.live_units[0].name)

        self._push(RigAction(unit.name, "pod deleted", gone))
        # Planned units changed for everyone else: nothing is delivered for that in Juju.

    def _find_unit(self, name: str) -> RigUnit | None:
        try:
            return self.unit(name)
        except KeyError:
            return None

    def _pod_ready(self, unit: RigUnit) -> bool:
        """Kubernetes' readiness probe on a Juju sidecar pod: Pebble's ready checks."""
        if not unit.pod.running:
            return False
        try:
            health = unit.pod.client()._request("GET", "/v1/health", {"level": "ready"})
            return bool(health["result"]["healthy"])
        except (ops.pebble.Error, OSError):
            return False

    # -- internals: relations ----------------------------------------------------------------

    def _endpoint(self, spec: str) -> tuple[str, str]:
        if ":" in spec:
            app, endpoint = spec.split(":", 1)
            return app, endpoint
        raise RigError(f"give app:endpoint, not {spec!r}")

    def _interface(self, app_name: str, endpoint: str) -> str:
        meta = self.apps[app_name].meta
        for section in ("requires", "provides"):
            info = (meta.get(section) or {}).get(endpoint)
            if info:
                return info["interface"]
        raise RigError(f"{app_name} has no relation endpoint {endpoint!r}")

    def _new_relation(
        self, apps: tuple[str, str], endpoints: tuple[str, str], interface: str
    ) -> RigRelation:
        rel = RigRelation(self._next_relation_id, apps, endpoints, interface)
        self._next_relation_id += 1
        self.relations[rel.id] = rel
        for app in set(apps):
            rel.app_data[app] = {}
        return rel

    def _enter_relation(self, rel: RigRelation, unit: RigUnit) -> None:
        rel.participants.add(unit.name)
        rel.unit_data.setdefault(unit.name, {})
        rel.in_scope.setdefault(unit.name, set())
        self._push(QueuedEvent(unit.name, "relation_created", rel.id))

    def _join_all(self, rel: RigRelation, unit: RigUnit) -> None:
        """``unit`` enters scope: it and every counterpart see each other join."""
        remote_app = rel.remote_app(unit.app.name)
        for other in self.units(remote_app):
            if other.name == unit.name or other.name not in rel.participants:
                continue
            if other.name not in rel.in_scope.get(unit.name, set()):
                self._push(QueuedEvent(unit.name, "relation_joined", rel.id, other.name))
                self._push(QueuedEvent(unit.name, "relation_changed", rel.id, other.name))
            if unit.name not in rel.in_scope.get(other.name, set()):
                self._push(QueuedEvent(other.name, "relation_joined", rel.id, unit.name))
                self._push(QueuedEvent(other.name, "relation_changed", rel.id, unit.name))

    def _drop_relation(self, rel: RigRelation) -> None:
        rel.broken = True
        self.relations.pop(rel.id, None)
        for secret in self.secrets.values():
            secret.grants.pop(rel.id, None)

    # -- internals: queue --------------------------------------------------------------------

    def _push(self, item: QueuedEvent | RigAction) -> None:
        """Queue, coalescing an identical pending event (Juju delivers the latest data)."""
        if isinstance(item, QueuedEvent) and item in self.queue:
            return
        self.queue.append(item)

    # -- internals: running one event --------------------------------------------------------

    def _run_event(
        self,
        unit: RigUnit,
        item: QueuedEvent,
        params: Mapping[str, Any] | None = None,
        out: dict[str, Any] | None = None,
    ) -> EventRecord:
        if item.kind == "relation_joined" and item.relation_id in self.relations:
            self.relations[item.relation_id].in_scope[unit.name].add(item.remote_unit or "")
        if item.kind == "relation_departed" and item.relation_id in self.relations:
            self.relations[item.relation_id].in_scope[unit.name].discard(item.remote_unit or "")
        if item.relation_id is not None and (
            item.relation_id not in self.relations
            or unit.name in self.relations[item.relation_id].left
        ):
            return EventRecord(-1, unit.name, str(item), time.monotonic(), status="skipped")
        if item.kind == "secret_changed" and item.secret_id not in self.secrets:
            return EventRecord(-1, unit.name, str(item), time.monotonic(), status="skipped")
        if item.kind == "pebble_ready" and (
            not unit.pod.running or CONTAINER not in (unit.app.meta.get("containers") or {})
        ):
            # No pebble-ready without the container (a charm with no workload container, like
            # the test client, still gets a Pebble pod here: it is simply never used).
            return EventRecord(-1, unit.name, str(item), time.monotonic(), status="skipped")

        state_in, secret_views = self._build_state(unit, item)
        if not self._workload_event_possible(state_in, item):
            # The pod (or the check) went away while the event was queued.
            return EventRecord(-1, unit.name, str(item), time.monotonic(), status="skipped")
        app = unit.app
        ctx = testing.Context(
            app.charm_type,
            meta=app.meta,
            config=app.config_options,
            actions=app.actions,
            app_name=app.name,
            unit_id=unit.number,
            juju_version=JUJU_VERSION,
        )
        if item.kind == "action":
            event = ctx.on.action(item.action or "", params=dict(params or {}))
        else:
            event = self._scenario_event(ctx.on, item, state_in)
        record = EventRecord(len(self.recorder.events), unit.name, str(item), time.time())
        self.recorder.events.append(record)
        unit.last_event = str(item)
        self.recorder.current = (unit.name, str(item))
        started = time.monotonic()
        try:
            with self._real_pebble(unit):
                state_out = ctx.run(event, state_in)
        except testing.ActionFailed as exc:
            record.duration = time.monotonic() - started
            record.error = f"action failed: {exc.message}"
            record.status = "action failed"
            if exc.state is not None:
                self._merge(unit, state_in, cast(testing.State, exc.state), secret_views)
            raise
        except Exception as exc:
            record.duration = time.monotonic() - started
            record.error = "".join(traceback.format_exception(exc))
            record.status = "error"
            record.juju_log = [f"{log.level} {log.message}" for log in ctx.juju_log]
            self.hook_errors.append(record)
            if self.raise_on_hook_error:
                raise HookFailedError(
                    f"{unit.name}: {item} raised\n{record.error}\n"
                    + "\n".join(record.juju_log[-30:])
                ) from exc
            self._push(item)  # Juju retries a failed hook
            return record
        finally:
            self.recorder.current = ("", "")
        record.duration = time.monotonic() - started
        record.juju_log = [f"{log.level} {log.message}" for log in ctx.juju_log]
        self._merge(unit, state_in, state_out, secret_views)
        if out is not None:
            out.update(ctx.action_results or {})
        if item.kind == "relation_broken" and item.relation_id in self.relations:
            self.relations[item.relation_id].left.add(unit.name)
        record.status = f"{unit.unit_status.name}: {unit.unit_status.message}".rstrip(": ")
        logger.info("%s", record)
        return record

    @contextlib.contextmanager
    def _real_pebble(self, unit: RigUnit) -> Iterator[None]:
        socket = str(unit.pod.socket_path)
        recorder = self.recorder

        def get_pebble(backend: Any, socket_path: str) -> ops.pebble.Client:
            # /charm/containers/<name>/pebble.socket: every charm here has one container.
            return RecordingClient(socket, recorder)

        with mock.patch.object(scenario.mocking._MockModelBackend, "get_pebble", get_pebble):
            yield

    def _scenario_event(self, on: Any, item: QueuedEvent, state: testing.State) -> Any:
        kind = item.kind
        if kind.startswith("relation_"):
            assert item.relation_id is not None
            relation = state.get_relation(item.relation_id)
            remote = _unit_number(item.remote_unit) if item.remote_unit else None
            if kind == "relation_created":
                return on.relation_created(relation)
            if kind == "relation_joined":
                return on.relation_joined(relation, remote_unit=remote)
            if kind == "relation_changed":
                return on.relation_changed(relation, remote_unit=remote)
            if kind == "relation_departed":
                departing = _unit_number(item.departing_unit) if item.departing_unit else None
                return on.relation_departed(relation, remote_unit=remote, departing_unit=departing)
            if kind == "relation_broken":
                return on.relation_broken(relation)
        if kind == "pebble_ready":
            return on.pebble_ready(state.get_container(CONTAINER))
        if kind in ("pebble_check_failed", "pebble_check_recovered"):
            container = state.get_container(CONTAINER)
            info = next(c for c in container.check_infos if c.name == item.check)
            return getattr(on, kind)(container, info)
        if kind == "pebble_custom_notice":
            container = state.get_container(CONTAINER)
            notice = next(n for n in container.notices if n.id == item.notice_id)
            return on.pebble_custom_notice(container, notice)
        if kind == "secret_changed":
            return on.secret_changed(state.get_secret(id=item.secret_id))
        if kind in ("storage_attached", "storage_detaching"):
            storage = next(s for s in state.storages if s.name == item.storage)
            return getattr(on, kind)(storage)
        return getattr(on, kind)()

    def _build_state(
        self, unit: RigUnit, item: QueuedEvent
    ) -> tuple[testing.State, dict[str, RigSecret]]:
        app = unit.app
        relations: list[Any] = []
        for rel in self.relations.values():
            if app.name not in rel.apps or unit.name not in rel.participants:
                continue
            if unit.name in rel.left and item.relation_id != rel.id:
                continue
            in_scope = set(rel.in_scope.get(unit.name, set()))
            if item.kind == "relation_broken" and item.relation_id == rel.id:
                in_scope = set()
            endpoint = rel.endpoint_of(app.name)
            local_app = dict(rel.app_data.get(app.name, {}))
            local_unit = dict(rel.unit_data.get(unit.name, {}))
            if rel.is_peer:
                relations.append(
                    testing.PeerRelation(
                        endpoint,
                        interface=rel.interface,
                        id=rel.id,
                        local_app_data=local_app,
                        local_unit_data=local_unit,
                        peers_data={
                            _unit_number(u): dict(rel.unit_data.get(u, {}))
                            for u in sorted(in_scope)
                        },
                    )
                )
            else:
                remote_app = rel.remote_app(app.name)
                relations.append(
                    testing.Relation(
                        endpoint,
                        interface=rel.interface,
                        id=rel.id,
                        remote_app_name=remote_app,
                        local_app_data=local_app,
                        local_unit_data=local_unit,
                        remote_app_data=dict(rel.app_data.get(remote_app, {})),
                        remote_units_data={
                            _unit_number(u): dict(rel.unit_data.get(u, {}))
                            for u in sorted(in_scope)
                        },
                    )
                )
        secrets, views = self._secret_views(unit)
        check_infos, plan = self._check_infos(unit)
        notices = self._notices(unit) if item.kind == "pebble_custom_notice" else []
        container = testing.Container(
            CONTAINER,
            can_connect=unit.pod.running,
            # The charm talks to the real Pebble; these only keep scenario's checks coherent.
            layers={"rig-real-plan": ops.pebble.Layer(cast(Any, plan))} if check_infos else {},
            check_infos=check_infos,
            notices=notices,
        )
        networks = [
            testing.Network(
                endpoint,
                bind_addresses=[testing.BindAddress([testing.Address(unit.address)])],
                ingress_addresses=[unit.address],
                egress_subnets=[f"{unit.address}/32"],
            )
            for endpoint in _endpoints(app.meta)
        ]
        state = testing.State(
            leader=unit.leader,
            config=dict(app.config),
            relations=relations,
            networks=networks,
            containers=[container] if CONTAINER in (app.meta.get("containers") or {}) else [],
            storages=[testing.Storage(name, index=unit.number) for name in _storages(app.meta)],
            secrets=secrets,
            planned_units=len(app.live_units),
            model=testing.Model(name=self.name, uuid=MODEL_UUID, type="kubernetes"),
            stored_states=unit.stored_states,
            deferred=list(unit.deferred),
            unit_status=unit.unit_status,
            app_status=app.app_status,
            workload_version=unit.workload_version,
        )
        return state, views

    def _secret_views(self, unit: RigUnit) -> tuple[list[testing.Secret], dict[str, RigSecret]]:
        views: dict[str, RigSecret] = {}
        out = []
        for secret in self.secrets.values():
            owned = secret.owned_by(unit)
            if not owned and not self._granted(secret, unit):
                continue
            tracked = secret.tracked.get(unit.name, secret.latest)
            view = testing.Secret(
                secret.content(tracked),
                latest_content=secret.content(),
                id=secret.id,
                owner=("unit" if secret.owner_unit else "app") if owned else None,
                remote_grants=secret.grants if owned else {},
                label=secret.label if owned else secret.consumer_labels.get(unit.name),
                description=secret.description if owned else None,
                expire=secret.expire if owned else None,
                rotate=secret.rotate if owned else None,
            )
            object.__setattr__(view, "_tracked_revision", tracked)
            object.__setattr__(view, "_latest_revision", secret.latest)
            out.append(view)
            views[secret.id] = secret
        return out, views

    def _granted(self, secret: RigSecret, unit: RigUnit) -> bool:
        for relation_id, grantees in secret.grants.items():
            rel = self.relations.get(relation_id)
            if rel is None or unit.app.name not in rel.apps:
                continue
            if unit.app.name in grantees or unit.name in grantees:
                return True
        return False

    def _check_infos(self, unit: RigUnit) -> tuple[list[testing.CheckInfo], dict[str, Any]]:
        if not unit.pod.running:
            return [], {}
        try:
            client = unit.pod.client()
            checks = client.get_checks()
            plan: dict[str, Any] = dict(client.get_plan().to_dict())
        except (ops.pebble.Error, OSError):
            return [], {}
        infos = [
            testing.CheckInfo(
                c.name,
                level=c.level if isinstance(c.level, ops.pebble.CheckLevel) else None,
                status=c.status
                if isinstance(c.status, ops.pebble.CheckStatus)
                else ops.pebble.CheckStatus.UP,
                failures=c.failures,
                threshold=c.threshold,
            )
            for c in checks
            if c.name in (plan.get("checks") or {})
        ]
        return infos, plan

    def _notices(self, unit: RigUnit) -> list[testing.Notice]:
        """The pod's custom notices (every user's), as the charm's Pebble would list them."""
        try:
            found = unit.pod.client().get_notices(
                users=ops.pebble.NoticesUsers.ALL, types=[ops.pebble.NoticeType.CUSTOM]
            )
        except (ops.pebble.Error, OSError):
            return []
        return [
            testing.Notice(
                n.key,
                id=n.id,
                user_id=n.user_id,
                type=n.type,
                first_occurred=n.first_occurred,
                last_occurred=n.last_occurred,
                last_repeated=n.last_repeated,
                occurrences=n.occurrences,
                last_data=dict(n.last_data),
                repeat_after=n.repeat_after,
                expire_after=n.expire_after,
            )
            for n in found
        ]

    @staticmethod
    def _workload_event_possible(state: testing.State, item: QueuedEvent) -> bool:
        if item.kind in ("pebble_check_failed", "pebble_check_recovered"):
            infos = state.get_container(CONTAINER).check_infos
            return any(c.name == item.check for c in infos)
        if item.kind == "pebble_custom_notice":
            notices = state.get_container(CONTAINER).notices
            return any(n.id == item.notice_id for n in notices)
        return True

    def _poll_workloads(self) -> None:
        """What Juju's Pebble notice watcher does for each unit: custom notices become
        pebble-custom-notice, check changes becoming Error/Done become check events."""
        for unit in self.units():
            if not unit.pod.running or CONTAINER not in (unit.app.meta.get("containers") or {}):
                continue
            if unit.watch.generation != unit.pod.generation:
                unit.watch = WorkloadWatch(unit.pod.generation)
            try:
                client = unit.pod.client()
                self._poll_custom_notices(unit, client)
                self._poll_check_changes(unit, client)
            except (ops.pebble.Error, OSError):
                continue  # the pod is going away; its next generation starts afresh

    def _poll_custom_notices(self, unit: RigUnit, client: ops.pebble.Client) -> None:
        """One event per observed repeat of a custom notice (``pebble notify``), as Juju's
        watcher does: it waits for notices repeated after the last one it saw. A notice
        re-recorded within its ``--repeat-after`` does not repeat, so it raises no event."""
        notices = client.get_notices(
            users=ops.pebble.NoticesUsers.ALL, types=[ops.pebble.NoticeType.CUSTOM]
        )
        for notice in sorted(notices, key=lambda n: n.last_repeated):
            if unit.watch.notice_repeated.get(notice.id) == notice.last_repeated:
                continue
            unit.watch.notice_repeated[notice.id] = notice.last_repeated
            self._push(
                QueuedEvent(
                    unit.name,
                    "pebble_custom_notice",
                    notice_id=notice.id,
                    notice_key=notice.key,
                    notice_repeated=notice.last_repeated.isoformat(),
                )
            )

    def _poll_check_changes(self, unit: RigUnit, client: ops.pebble.Client) -> None:
        """Juju 3.6 sends pebble-check-failed when a check's ``perform-check`` change ends in
        Error (failures reached the threshold) and pebble-check-recovered when its
        ``recover-check`` change ends Done (it passed again). A check's change ID moves on
        each such transition; only then are the change-update notices read (they name every
        change of the check, so transitions between two polls are not lost)."""
        moved = set()
        for check in client.get_checks():
            if check.change_id and unit.watch.check_change.get(check.name) != check.change_id:
                unit.watch.check_change[check.name] = check.change_id
                moved.add(check.name)
        if not moved:
            return
        updates = client.get_notices(
            users=ops.pebble.NoticesUsers.ALL, types=[ops.pebble.NoticeType.CHANGE_UPDATE]
        )
        check_changes = sorted(
            (int(n.key), n.last_data.get("kind", ""), n.last_data.get("check-name", ""))
            for n in updates
            if n.last_data.get("kind") in CHECK_CHANGE_KINDS
            and n.last_data.get("check-name") in moved
        )
        for change_id, kind, check_name in check_changes:
            if change_id <= unit.watch.check_change_done.get(check_name, 0):
                continue
            change = client.get_change(ops.pebble.ChangeID(str(change_id)))
            if not change.ready:
                continue  # the check's current change
            unit.watch.check_change_done[check_name] = change_id
            if kind == "perform-check" and change.status == "Error":
                event = "pebble_check_failed"
            elif kind == "recover-check" and change.status == "Done":
                event = "pebble_check_recovered"
            else:
                continue  # stopped or replaced by a new plan: Juju says nothing
            self._push(QueuedEvent(unit.name, event, check=check_name, change_id=str(change_id)))

    # -- internals: merging an output state --------------------------------------------------

    def _merge(
        self,
        unit: RigUnit,
        state_in: testing.State,
        state_out: testing.State,
        views: dict[str, RigSecret],
    ) -> None:
        app = unit.app
        unit.unit_status = state_out.unit_status
        unit.workload_version = state_out.workload_version
        unit.stored_states = frozenset(state_out.stored_states)
        unit.deferred = tuple(state_out.deferred)
        if unit.leader:
            app.app_status = state_out.app_status
        for rel_out in state_out.relations:
            rel = self.relations.get(rel_out.id)
            if rel is None:
                continue
            new_unit = {k: v for k, v in dict(rel_out.local_unit_data).items() if v != ""}
            if new_unit != rel.unit_data.get(unit.name, {}):
                rel.unit_data[unit.name] = new_unit
                self._notify_unit_data(rel, unit)
            new_app = {k: v for k, v in dict(rel_out.local_app_data).items() if v != ""}
            if unit.leader and new_app != rel.app_data.get(app.name, {}):
                rel.app_data[app.name] = new_app
                self._notify_app_data(rel, unit)
        self._merge_secrets(unit, state_out, views)

    def _notify_unit_data(self, rel: RigRelation, writer: RigUnit) -> None:
        for other in sorted(rel.participants - {writer.name}):
            if writer.name in rel.in_scope.get(other, set()):
                self._push(QueuedEvent(other, "relation_changed", rel.id, writer.name))

    def _notify_app_data(self, rel: RigRelation, writer: RigUnit) -> None:
        readers = rel.remote_app(writer.app.name)
        for other in self.units(readers):
            if other.name == writer.name or other.name not in rel.participants:
                continue
            self._push(QueuedEvent(other.name, "relation_changed", rel.id, None))

    def _merge_secrets(
        self, unit: RigUnit, state_out: testing.State, views: dict[str, RigSecret]
    ) -> None:
        seen = set()
        for s in state_out.secrets:
            seen.add(s.id)
            secret = self.secrets.get(s.id)
            if secret is None:  # created during this hook
                owner_unit = unit.name if s.owner == "unit" else None
                secret = RigSecret(
                    id=s.id,
                    owner_app=unit.app.name,
                    owner_unit=owner_unit,
                    revisions=[dict(s.latest_content)],
                    label=s.label,
                    description=s.description,
                    expire=s.expire,
                    rotate=s.rotate,
                )
                secret.tracked[unit.name] = 1
                secret.grants = {k: set(v) for k, v in s.remote_grants.items()}
                self.secrets[s.id] = secret
                continue
            owned = secret.owned_by(unit)
            if s._latest_revision > secret.latest and s.latest_content is not None:
                secret.revisions.append(dict(s.latest_content))
                secret.tracked[unit.name] = secret.latest
                for other, revision in secret.tracked.items():
                    other_unit = self._find_unit(other)
                    if other_unit and revision < secret.latest and not secret.owned_by(other_unit):
                        self._push(QueuedEvent(other, "secret_changed", secret_id=secret.id))
            else:
                secret.tracked[unit.name] = s._tracked_revision
            if owned:
                secret.label = s.label
                secret.description = s.description
                secret.expire = s.expire
                secret.rotate = s.rotate
                secret.grants = {k: set(v) for k, v in s.remote_grants.items()}
            elif s.label:
                secret.consumer_labels[unit.name] = s.label
        for secret_id, secret in views.items():
            if secret_id not in seen and secret.owned_by(unit):
                del self.secrets[secret_id]  # removed (all revisions) by its owner


def _tail(output: str | bytes | None) -> str | None:
    if output is None:
        return None
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    return text[-OUTPUT_TAIL:]


def _unit_number(unit_name: str | None) -> int:
    assert unit_name is not None
    return int(unit_name.rsplit("/", 1)[1])


def _endpoints(meta: Mapping[str, Any]) -> list[str]:
    names = ["juju-info"]
    for section in ("requires", "provides", "peers"):
        names += list((meta.get(section) or {}).keys())
    return names


def storage_mounts(meta: Mapping[str, Any]) -> dict[str, str]:
    """storage name -> location in the workload container, as Juju mounts it: the container
    mount's ``location``, else the storage's own ``location``."""
    storages = meta.get("storage") or {}
    mounts = {}
    for mount in (meta.get("containers") or {}).get(CONTAINER, {}).get("mounts", []):
        name = mount["storage"]
        location = mount.get("location") or (storages.get(name) or {}).get("location")
        if not location:
            raise RigError(f"storage {name!r} has no location")
        mounts[name] = location
    return mounts


def _storages(meta: Mapping[str, Any]) -> list[str]:
    return list((meta.get("storage") or {}).keys())
