"""Running one hook: the charm's real code, through ``ops.testing.Context.run``, on real Pebble."""

from __future__ import annotations

import atexit
import inspect
import shutil
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ops import testing

from tests.cluster import rig_watch
from tests.cluster.rig_charm_spec import CONTAINER
from tests.cluster.rig_entities import RigUnit, unit_number
from tests.cluster.rig_events import QueuedEvent
from tests.cluster.rig_history import EventRecord, Recorder
from tests.cluster.rig_ops_private import real_pebble
from tests.cluster.rig_recording_client import RecordingClient
from tests.cluster.rig_state import JUJU_VERSION

_CHARM_ROOTS: dict[Path, Path] = {}


def charm_root(charm_type: type) -> Path:
    """A charm directory as Juju unpacks it, for ``self.charm_dir``: ``src`` (alert rules,
    dashboards) is the charm's own; ops.testing writes the metadata files beside it per hook."""
    source = Path(inspect.getfile(charm_type)).resolve().parent.parent / "src"
    if source not in _CHARM_ROOTS:
        root = Path(tempfile.mkdtemp(prefix="rig-charm-root-"))
        (root / "src").symlink_to(source, target_is_directory=True)
        atexit.register(shutil.rmtree, root, True)
        _CHARM_ROOTS[source] = root
    return _CHARM_ROOTS[source]


@dataclass
class HookRun:
    record: EventRecord
    state_out: testing.State | None = None
    """The state after the hook (after a failed action too, when ops gives it)."""
    action_results: dict[str, Any] = field(default_factory=dict)
    action_failed: testing.ActionFailed | None = None
    error: Exception | None = None
    """What the charm raised (the unit would be in error state)."""


def run_hook(
    unit: RigUnit,
    item: QueuedEvent,
    state_in: testing.State,
    recorder: Recorder,
    params: Mapping[str, Any] | None = None,
) -> HookRun:
    app = unit.app
    ctx = testing.Context(
        app.charm_type,
        meta=app.meta,
        config=app.config_options,
        actions=app.actions,
        app_name=app.name,
        unit_id=unit.number,
        juju_version=JUJU_VERSION,
        charm_root=charm_root(app.charm_type),
    )
    if item.kind == "action":
        event = ctx.on.action(item.action or "", params=dict(params or {}))
    else:
        event = scenario_event(ctx.on, item, state_in)
    record = EventRecord(len(recorder.events), unit.name, str(item), time.time())
    recorder.events.append(record)
    recorder.current = (unit.name, str(item))
    run = HookRun(record)
    started = time.monotonic()
    try:
        with real_pebble(RecordingClient(str(unit.pod.socket_path), recorder)):
            run.state_out = ctx.run(event, state_in)
    except testing.ActionFailed as exc:
        record.error = f"action failed: {exc.message}"
        record.status = "action failed"
        run.action_failed = exc
        run.state_out = cast(testing.State, exc.state) if exc.state is not None else None
    except Exception as exc:
        record.error = "".join(traceback.format_exception(exc))
        record.status = "error"
        run.error = exc
    finally:
        recorder.current = ("", "")
        record.duration = time.monotonic() - started
        record.juju_log = [f"{log.level} {log.message}" for log in ctx.juju_log]
    run.action_results = dict(ctx.action_results or {})
    return run


def deliverable(state: testing.State, item: QueuedEvent) -> bool:
    """Whether what a workload event concerns is still there (a pod, a check or a notice may
    have gone away while the event was queued)."""
    if item.kind in rig_watch.CHECK_EVENTS:
        return any(c.name == item.check for c in state.get_container(CONTAINER).check_infos)
    if item.kind == rig_watch.NOTICE_EVENT:
        return any(n.id == item.notice_id for n in state.get_container(CONTAINER).notices)
    return True


def scenario_event(on: Any, item: QueuedEvent, state: testing.State) -> Any:
    """The ``ctx.on.<event>(...)`` for a queued event, with its relation, secret, storage,
    check or notice taken from ``state``."""
    kind = item.kind
    if kind.startswith("relation_"):
        assert item.relation_id is not None
        relation = state.get_relation(item.relation_id)
        remote = unit_number(item.remote_unit) if item.remote_unit else None
        if kind == "relation_created":
            return on.relation_created(relation)
        if kind == "relation_joined":
            return on.relation_joined(relation, remote_unit=remote)
        if kind == "relation_changed":
            return on.relation_changed(relation, remote_unit=remote)
        if kind == "relation_departed":
            departing = unit_number(item.departing_unit) if item.departing_unit else None
            return on.relation_departed(relation, remote_unit=remote, departing_unit=departing)
        if kind == "relation_broken":
            return on.relation_broken(relation)
    if kind == "pebble_ready":
        return on.pebble_ready(state.get_container(CONTAINER))
    if kind in rig_watch.CHECK_EVENTS:
        container = state.get_container(CONTAINER)
        info = next(c for c in container.check_infos if c.name == item.check)
        return getattr(on, kind)(container, info)
    if kind == rig_watch.NOTICE_EVENT:
        container = state.get_container(CONTAINER)
        notice = next(n for n in container.notices if n.id == item.notice_id)
        return on.pebble_custom_notice(container, notice)
    if kind == "secret_changed":
        return on.secret_changed(state.get_secret(id=item.secret_id))
    if kind in ("storage_attached", "storage_detaching"):
        storage = next(s for s in state.storages if s.name == item.storage)
        return getattr(on, kind)(storage)
    return getattr(on, kind)()
