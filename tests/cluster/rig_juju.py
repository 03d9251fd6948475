"""A small Juju: delivers events to real charm code (ops.testing) whose Pebble is real.

The rig holds what the Juju controller holds (applications, units, leadership, relations and
their databags, secrets and their grants, config) and, for each event, builds the
``ops.testing.State`` that unit would see, runs the charm with ``Context.run``, and merges the
output state back. The charm's ``pulsar`` container talks to the unit's real Pebble (see
:mod:`tests.cluster.rig_pods`). Changes are propagated as Juju would: a changed databag queues
relation-changed on the units that can see it, a new secret revision queues secret-changed on
the units that track it, and so on. Between events the rig delivers only what Juju would:
update-status on each unit agent's timer, Pebble check events and custom notices. The rig knows
nothing about what the charms run or in which order: if a scenario needs the rig to know, the
charm is missing logic.

This module is the public facade (:class:`Model`); the parts live in modules of their own:

- :mod:`~tests.cluster.rig_entities`: the controller's records (apps, units, relations, secrets);
- :mod:`~tests.cluster.rig_events`: the event queue;
- :mod:`~tests.cluster.rig_relations`: which relation hooks Juju queues, and when;
- :mod:`~tests.cluster.rig_state`: records -> ``ops.testing.State`` for one unit, and back;
- :mod:`~tests.cluster.rig_delivery`: running one hook;
- :mod:`~tests.cluster.rig_watch`, :mod:`~tests.cluster.rig_update_status`: what a unit agent
  learns without the controller (its Pebble; its timer);
- :mod:`~tests.cluster.rig_history`, :mod:`~tests.cluster.rig_recording_client`: what ran;
- :mod:`~tests.cluster.rig_ops_private`: the only uses of ``ops`` internals.

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

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ops

from tests.cluster import rig_relations, rig_report, rig_watch
from tests.cluster.rig_charm_spec import (
    CONTAINER,
    has_workload_container,
    load_charm_spec,
    relation_interface,
    storage_mounts,
)
from tests.cluster.rig_delivery import deliverable, run_hook
from tests.cluster.rig_entities import (
    JsonDict,
    ModelRecords,
    RigApp,
    RigRelation,
    RigSecret,
    RigUnit,
)
from tests.cluster.rig_errors import HookFailedError, RigError, SettleTimeoutError
from tests.cluster.rig_events import POD_CHURN_EVENTS, EventQueue, Gate, QueuedEvent, RigAction
from tests.cluster.rig_history import EventRecord, PebbleCall, Recorder
from tests.cluster.rig_net import MODEL_NAME, AddressPlan
from tests.cluster.rig_pods import Image, Pod, pod_ready
from tests.cluster.rig_state import JUJU_VERSION, MODEL_UUID, build_state, merge_state
from tests.cluster.rig_update_status import UPDATE_STATUS_INTERVAL, UpdateStatusTimers

__all__ = [
    "CONTAINER",
    "JUJU_VERSION",
    "MODEL_UUID",
    "POD_CHURN_EVENTS",
    "UPDATE_STATUS_INTERVAL",
    "UPDATE_STATUS_INTERVAL_ENV",
    "EventRecord",
    "Gate",
    "HookFailedError",
    "JsonDict",
    "Model",
    "PebbleCall",
    "QueuedEvent",
    "RigAction",
    "RigApp",
    "RigEnv",
    "RigError",
    "RigRelation",
    "RigSecret",
    "RigUnit",
    "SettleTimeoutError",
    "storage_mounts",
]

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_DRAIN = 2000
READINESS_INITIAL_DELAY_S = 30.0
"""Juju's readiness probe on a sidecar workload container starts 30 s after the container
(``containerProbeInitialDelay``); Kubernetes counts the new pod ready only at its first success.
Pebble counts a new check up until its first run, so without the delay a rolling replacement
could move on before a charm's ready check had run once. Used by :meth:`Model.refresh`."""
UPDATE_STATUS_INTERVAL_ENV = "PULSAR_RIG_UPDATE_STATUS_INTERVAL"
"""Seconds; overrides the interval of every model (for experiments only)."""

_charm_spec = load_charm_spec
"""Old name, kept for callers written against it."""


@dataclass
class RigEnv:
    """What the session sets up once: the state dir, the image and the address plan."""

    state_dir: Path
    image: Image
    plan: AddressPlan


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
        self.name = name
        self.records = ModelRecords()
        self.apps: dict[str, RigApp] = self.records.apps
        self.relations: dict[int, RigRelation] = self.records.relations
        self.secrets: dict[str, RigSecret] = self.records.secrets
        self.queue = EventQueue()
        self.recorder = Recorder()
        self.raise_on_hook_error = raise_on_hook_error
        self.hook_errors: list[EventRecord] = []
        self.gates: list[Gate] = []
        override = os.environ.get(UPDATE_STATUS_INTERVAL_ENV)
        if override:
            update_status_interval = float(override)
        self.timers = UpdateStatusTimers(
            UPDATE_STATUS_INTERVAL if update_status_interval is None else update_status_interval
        )
        self._pods: list[Pod] = []
        self._images: dict[str, Image] = {}
        """Application -> the image its pods are created from (default: the env's)."""

    @property
    def update_status_interval(self) -> float:
        """Seconds between update-status hooks of a unit (each wait is 80-120% of it)."""
        return self.timers.interval

    @update_status_interval.setter
    def update_status_interval(self, seconds: float) -> None:
        self.timers.interval = seconds

    # -- lookups -----------------------------------------------------------------------------

    def app(self, name: str) -> RigApp:
        return self.apps[name]

    def unit(self, name: str) -> RigUnit:
        return self.records.unit(name)

    def units(self, app: str | None = None) -> list[RigUnit]:
        return self.records.units(app)

    def pod(self, unit: str) -> Pod:
        return self.unit(unit).pod

    def relation(self, relation_id: int) -> RigRelation:
        return self.relations[relation_id]

    def relations_of(self, app: str, endpoint: str | None = None) -> list[RigRelation]:
        return self.records.relations_of(app, endpoint)

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
        pulsar_version: str | None = None,
    ) -> RigApp:
        """``juju deploy``. ``storage`` overrides the storage -> container location mapping
        read from the charm's ``containers.pulsar.mounts``; ``pulsar_version``: the image's
        Pulsar (``--resource pulsar-image=...``; default: ``PULSAR_VERSION``)."""
        if name in self.apps:
            raise RigError(f"application {name} already deployed")
        spec = load_charm_spec(charm_type)
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
        if pulsar_version is not None:
            self._images[name] = self.env.image.for_version(pulsar_version)
        self.env.plan.add_app(name)
        for endpoint, info in (meta.get("peers") or {}).items():
            rel = rig_relations.new_relation(
                self.records, (name, name), (endpoint, endpoint), info["interface"]
            )
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
        rel = rig_relations.new_relation(self.records, (app_a, app_b), (ep_a, ep_b), iface_a)
        for unit in self.units(app_a) + self.units(app_b):
            self._push_all(rig_relations.enter(rel, unit))
        for unit in self.units(app_a) + self.units(app_b):
            self._push_all(rig_relations.join_all(self.records, rel, unit))
        return rel

    def remove_relation(self, relation_id: int) -> None:
        """``juju remove-relation``: departed for every unit pair, then broken everywhere."""
        rel = self.relations[relation_id]
        self._push_all(rig_relations.removal(rel))
        self._push(
            RigAction(
                "",
                f"drop relation {rel.id}",
                lambda: rig_relations.drop(self.records, rel),
                barrier=True,
            )
        )

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

    def refresh(self, app_name: str, pulsar_version: str | None = None) -> None:
        """``juju refresh app --resource pulsar-image=<Pulsar pulsar_version>``: the pods are
        replaced one by one as in :meth:`upgrade_charm`, each new pod from the new image, each
        deleted gracefully, and the next one only once this one passed Juju's readiness probe
        (:data:`READINESS_INITIAL_DELAY_S` after it started, then Pebble's ready level)."""
        image = (
            self.env.image
            if pulsar_version is None
            else self.env.image.for_version(pulsar_version)
        )
        self._images[app_name] = image
        self._rolling_replace(
            list(reversed(self.apps[app_name].live_units)),
            image,
            graceful=True,
            ready_after=READINESS_INITIAL_DELAY_S,
        )

    def image_of(self, app_name: str) -> Image:
        """The image new pods of the application are created from."""
        return self._images.get(app_name, self.env.image)

    def _rolling_replace(
        self,
        units: list[RigUnit],
        image: Image | None = None,
        graceful: bool = False,
        ready_after: float = 0.0,
    ) -> None:
        """Replace the pods one by one; the next once this one is ready, at the earliest
        ``ready_after`` seconds after it started (the readiness probe's initial delay)."""
        if not units:
            return
        unit, rest = units[0], units[1:]
        if unit.dying or unit.number not in unit.app.units:
            self._rolling_replace(rest, image, graceful, ready_after)
            return
        started: list[float] = []

        def recreate() -> None:
            if image is not None:
                unit.pod.image = image
            unit.pod.recreate(graceful=graceful)
            started.append(time.monotonic())
            self.timers.start(unit)

        def ready() -> bool:
            if not started or time.monotonic() < started[0] + ready_after:
                return False
            return pod_ready(unit.pod)

        self._push(RigAction(unit.name, "recreate pod", recreate))
        for kind in POD_CHURN_EVENTS:
            self._push(QueuedEvent(unit.name, kind))
        self.gates.append(
            Gate(
                f"{unit.name} ready",
                ready,
                lambda: self._rolling_replace(rest, image, graceful, ready_after),
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
        self.timers.start(unit)
        for kind in POD_CHURN_EVENTS:
            self._push(QueuedEvent(unit.name, kind))

    def restart_container(self, unit_name: str) -> None:
        """Only the workload container restarts (e.g. a liveness-probe kill): fresh filesystem
        from the image, same storage; the charm sees pebble-ready."""
        unit = self.unit(unit_name)
        unit.pod.recreate()
        self._push(QueuedEvent(unit.name, "pebble_ready"))

    # -- running -----------------------------------------------------------------------------

    def run_queue(self, max_events: int = MAX_EVENTS_PER_DRAIN, poll: float = 0.25) -> int:
        """Deliver queued events until the queue is empty; return how many ran.

        Juju's Pebble watchers run beside the hooks: a check event or a custom notice joins its
        unit's queue while other units' hooks run, not once every queue is empty. So the pods'
        Pebble is read every ``poll`` seconds between hooks here too (a relation cascade can
        keep the queue busy for tens of seconds during a cold deploy).
        """
        count = 0
        watched = time.monotonic()
        while self.queue:
            if time.monotonic() - watched >= poll:
                self._watch_pebble()
                watched = time.monotonic()
            if count >= max_events:
                raise RigError(
                    f"event storm: {count} events without settling; queue head: "
                    + ", ".join(f"{e.unit}:{e}" for e in list(self.queue)[:20])
                )
            item = self.queue.take_next()
            count += 1
            if isinstance(item, RigAction):
                logger.info("rig action %s %s", item.unit, item.what)
                item.run()
                continue
            unit = self.records.find_unit(item.unit)
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
        interval = tick  # None: the model's interval
        started = time.monotonic()
        deadline = started + timeout
        while True:
            self.run_queue(poll=poll)
            self._watch_pebble()
            self._open_gates()
            if not self.queue and not self.gates and until():
                return time.monotonic() - started
            now = time.monotonic()
            if now > deadline:
                raise SettleTimeoutError(f"not settled after {timeout:.0f}s\n{self.report()}")
            for unit in self.timers.due(self.units(), now, interval):
                self._push(QueuedEvent(unit.name, "update_status"))
            if not self.queue:
                time.sleep(poll)

    def _watch_pebble(self) -> None:
        """Queue what every pod's Pebble has given rise to (check events, custom notices)."""
        for unit in self.units():
            self._push_all(rig_watch.poll(unit))

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
        return rig_report.status_table(self.units())

    def report(self, log_lines: int = 25) -> str:
        """What a failed scenario needs: statuses, last events, failed execs, Pebble logs."""
        return rig_report.report(self.units(), self.recorder, log_lines)

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
            image=self.image_of(app.name),
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
        self.timers.start(unit)
        app.units[number] = unit
        for storage in app.storage_mounts:
            self._push(QueuedEvent(unit.name, "storage_attached", storage=storage))
        self._push(QueuedEvent(unit.name, "install"))
        for rel in self.relations_of(app.name):
            self._push_all(rig_relations.enter(rel, unit))
        if unit.leader:
            self._push(QueuedEvent(unit.name, "leader_elected"))
        self._push(QueuedEvent(unit.name, "config_changed"))
        self._push(QueuedEvent(unit.name, "start"))
        self._push(RigAction(unit.name, "start pod", pod.start))
        self._push(QueuedEvent(unit.name, "pebble_ready"))
        for rel in self.relations_of(app.name):
            self._push_all(rig_relations.join_all(self.records, rel, unit))
        return unit

    def _remove_unit(self, unit: RigUnit, destroy_storage: bool) -> None:
        unit.dying = True
        app = unit.app
        self._push_all(rig_relations.leaving(self.records, unit))
        for storage in app.storage_mounts:
            self._push(QueuedEvent(unit.name, "storage_detaching", storage=storage))
        self._push(QueuedEvent(unit.name, "stop"))
        self._push(QueuedEvent(unit.name, "remove"))

        def gone() -> None:
            unit.pod.stop(graceful=True)
            if destroy_storage:
                shutil.rmtree(unit.pod.storage_dir, ignore_errors=True)
            rig_relations.forget(self.records, unit)
            del app.units[unit.number]
            if unit.leader and app.live_units:
                self.set_leader(app.live_units[0].name)

        self._push(RigAction(unit.name, "pod deleted", gone, barrier=True))
        # Planned units changed for everyone else: nothing is delivered for that in Juju.

    # -- internals: relations ----------------------------------------------------------------

    def _endpoint(self, spec: str) -> tuple[str, str]:
        if ":" in spec:
            app, endpoint = spec.split(":", 1)
            return app, endpoint
        raise RigError(f"give app:endpoint, not {spec!r}")

    def _interface(self, app_name: str, endpoint: str) -> str:
        interface = relation_interface(self.apps[app_name].meta, endpoint)
        if interface is None:
            raise RigError(f"{app_name} has no relation endpoint {endpoint!r}")
        return interface

    # -- internals: queue --------------------------------------------------------------------

    def _push(self, item: QueuedEvent | RigAction) -> None:
        self.queue.push(item)

    def _push_all(self, items: Iterable[QueuedEvent]) -> None:
        for item in items:
            self.queue.push(item)

    # -- internals: running one event --------------------------------------------------------

    def _skipped(self, unit: RigUnit, item: QueuedEvent) -> EventRecord:
        return EventRecord(-1, unit.name, str(item), time.monotonic(), status="skipped")

    def _run_event(
        self,
        unit: RigUnit,
        item: QueuedEvent,
        params: Mapping[str, Any] | None = None,
        out: dict[str, Any] | None = None,
    ) -> EventRecord:
        rel = self.relations.get(item.relation_id) if item.relation_id is not None else None
        if item.kind == "relation_joined" and rel is not None:
            rel.in_scope[unit.name].add(item.remote_unit or "")
        if item.kind == "relation_departed" and rel is not None:
            rel.in_scope[unit.name].discard(item.remote_unit or "")
        if item.relation_id is not None and (rel is None or unit.name in rel.left):
            return self._skipped(unit, item)
        if item.kind == "secret_changed" and item.secret_id not in self.secrets:
            return self._skipped(unit, item)
        if item.kind == "pebble_ready" and (
            not unit.pod.running or not has_workload_container(unit.app.meta)
        ):
            # No pebble-ready without the container (a charm with no workload container, like
            # the test client, still gets a Pebble pod here: it is simply never used).
            return self._skipped(unit, item)
        state_in, secret_views = build_state(self.records, unit, item, self.name)
        if not deliverable(state_in, item):
            return self._skipped(unit, item)
        unit.last_event = str(item)
        run = run_hook(unit, item, state_in, self.recorder, params)
        record = run.record
        if run.state_out is not None:
            self._push_all(merge_state(self.records, unit, run.state_out, secret_views))
        if run.action_failed is not None:
            raise run.action_failed
        if run.error is not None:
            self.hook_errors.append(record)
            if self.raise_on_hook_error:
                raise HookFailedError(
                    f"{unit.name}: {item} raised\n{record.error}\n"
                    + "\n".join(record.juju_log[-30:])
                ) from run.error
            self._push(item)  # Juju retries a failed hook
            return record
        if out is not None:
            out.update(run.action_results)
        if item.kind == "relation_broken" and rel is not None:
            rel.left.add(unit.name)
        record.status = f"{unit.unit_status.name}: {unit.unit_status.message}".rstrip(": ")
        logger.info("%s", record)
        return record
