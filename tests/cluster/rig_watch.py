"""What a unit agent learns from its pod's Pebble, as Juju 3.6's Pebble notice watcher does.

- ``pebble-custom-notice``: one event per observed *repeat* of a custom notice (``pebble
  notify`` in the pod). Juju's watcher waits for notices repeated after the last one it saw, so
  a notice re-recorded within its ``--repeat-after`` (an occurrence, not a repeat) raises none.
- ``pebble-check-failed`` / ``pebble-check-recovered``: Juju derives them from Pebble
  ``change-update`` notices: a check's ``perform-check`` change ending in Error (failures
  reached the threshold) or its ``recover-check`` change ending Done (it passed again).

Only public ``ops.pebble`` calls are used. A new pod is a new Pebble (IDs start again), so the
watch starts afresh with every pod generation.
"""

from __future__ import annotations

from typing import Any

import ops
from ops import testing

from tests.cluster.rig_charm_spec import has_workload_container
from tests.cluster.rig_entities import RigUnit, WorkloadWatch
from tests.cluster.rig_events import QueuedEvent

CHECK_CHANGE_KINDS = ("perform-check", "recover-check")
CHECK_EVENTS = ("pebble_check_failed", "pebble_check_recovered")
NOTICE_EVENT = "pebble_custom_notice"


def poll(unit: RigUnit) -> list[QueuedEvent]:
    """The events the unit's Pebble has given rise to since the last poll."""
    if not unit.pod.running or not has_workload_container(unit.app.meta):
        return []
    if unit.watch.generation != unit.pod.generation:
        unit.watch = WorkloadWatch(unit.pod.generation)
    try:
        client = unit.pod.client()
        return _custom_notice_events(unit, client) + _check_events(unit, client)
    except (ops.pebble.Error, OSError):
        return []  # the pod is going away; its next generation starts afresh


def _custom_notice_events(unit: RigUnit, client: ops.pebble.Client) -> list[QueuedEvent]:
    events = []
    notices = client.get_notices(
        users=ops.pebble.NoticesUsers.ALL, types=[ops.pebble.NoticeType.CUSTOM]
    )
    for notice in sorted(notices, key=lambda n: n.last_repeated):
        if unit.watch.notice_repeated.get(notice.id) == notice.last_repeated:
            continue
        unit.watch.notice_repeated[notice.id] = notice.last_repeated
        events.append(
            QueuedEvent(
                unit.name,
                NOTICE_EVENT,
                notice_id=notice.id,
                notice_key=notice.key,
                notice_repeated=notice.last_repeated.isoformat(),
            )
        )
    return events


def _check_events(unit: RigUnit, client: ops.pebble.Client) -> list[QueuedEvent]:
    """A check's change ID moves on each transition; only then are the change-update notices
    read (they name every change of the check, so two transitions between polls both count)."""
    moved = set()
    for check in client.get_checks():
        if check.change_id and unit.watch.check_change.get(check.name) != check.change_id:
            unit.watch.check_change[check.name] = check.change_id
            moved.add(check.name)
    if not moved:
        return []
    updates = client.get_notices(
        users=ops.pebble.NoticesUsers.ALL, types=[ops.pebble.NoticeType.CHANGE_UPDATE]
    )
    check_changes = sorted(
        (int(n.key), n.last_data.get("kind", ""), n.last_data.get("check-name", ""))
        for n in updates
        if n.last_data.get("kind") in CHECK_CHANGE_KINDS and n.last_data.get("check-name") in moved
    )
    events = []
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
        events.append(QueuedEvent(unit.name, event, check=check_name, change_id=str(change_id)))
    return events


def check_infos(unit: RigUnit) -> tuple[list[testing.CheckInfo], dict[str, Any]]:
    """The pod's checks as ``ops.testing`` state, and the plan that declares them."""
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


def custom_notices(unit: RigUnit) -> list[testing.Notice]:
    """The pod's custom notices (every user's) as ``ops.testing`` state."""
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
