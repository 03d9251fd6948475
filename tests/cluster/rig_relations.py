"""Relations as Juju sequences them: which hooks each unit gets as units enter and leave."""

from __future__ import annotations

from tests.cluster.rig_entities import ModelRecords, RigRelation, RigUnit
from tests.cluster.rig_events import QueuedEvent


def new_relation(
    records: ModelRecords, apps: tuple[str, str], endpoints: tuple[str, str], interface: str
) -> RigRelation:
    rel = RigRelation(records.next_relation_id, apps, endpoints, interface)
    records.next_relation_id += 1
    records.relations[rel.id] = rel
    for app in set(apps):
        rel.app_data[app] = {}
    return rel


def enter(rel: RigRelation, unit: RigUnit) -> list[QueuedEvent]:
    """``unit`` is in the relation (relation-created), not yet in scope of anyone."""
    rel.participants.add(unit.name)
    rel.unit_data.setdefault(unit.name, {})
    rel.in_scope.setdefault(unit.name, set())
    return [QueuedEvent(unit.name, "relation_created", rel.id)]


def join_all(records: ModelRecords, rel: RigRelation, unit: RigUnit) -> list[QueuedEvent]:
    """``unit`` enters scope: it and every counterpart see each other join."""
    events = []
    for other in records.units(rel.remote_app(unit.app.name)):
        if other.name == unit.name or other.name not in rel.participants:
            continue
        if other.name not in rel.in_scope.get(unit.name, set()):
            events.append(QueuedEvent(unit.name, "relation_joined", rel.id, other.name))
            events.append(QueuedEvent(unit.name, "relation_changed", rel.id, other.name))
        if unit.name not in rel.in_scope.get(other.name, set()):
            events.append(QueuedEvent(other.name, "relation_joined", rel.id, unit.name))
            events.append(QueuedEvent(other.name, "relation_changed", rel.id, unit.name))
    return events


def removal(rel: RigRelation) -> list[QueuedEvent]:
    """``juju remove-relation``: departed for every pair in scope, then broken everywhere."""
    events = [
        QueuedEvent(unit_name, "relation_departed", rel.id, other, departing_unit=other)
        for unit_name in sorted(rel.participants)
        for other in sorted(rel.in_scope.get(unit_name, set()))
    ]
    events += [QueuedEvent(u, "relation_broken", rel.id) for u in sorted(rel.participants)]
    return events


def drop(records: ModelRecords, rel: RigRelation) -> None:
    """The relation is gone (after every unit ran relation-broken); so are its grants."""
    rel.broken = True
    records.relations.pop(rel.id, None)
    for secret in records.secrets.values():
        secret.grants.pop(rel.id, None)


def leaving(records: ModelRecords, unit: RigUnit) -> list[QueuedEvent]:
    """``unit`` goes away: every unit that sees it sees it depart, and it leaves everything."""
    events = []
    for rel in records.relations_of(unit.app.name):
        for other_name in sorted(rel.participants - {unit.name}):
            if unit.name in rel.in_scope.get(other_name, set()):
                events.append(
                    QueuedEvent(other_name, "relation_departed", rel.id, unit.name, unit.name)
                )
        for other_name in sorted(rel.in_scope.get(unit.name, set())):
            events.append(
                QueuedEvent(unit.name, "relation_departed", rel.id, other_name, unit.name)
            )
        events.append(QueuedEvent(unit.name, "relation_broken", rel.id))
    return events


def forget(records: ModelRecords, unit: RigUnit) -> None:
    """The unit's pod is deleted: it is in no relation any more."""
    for rel in records.relations.values():
        rel.participants.discard(unit.name)
        rel.in_scope.pop(unit.name, None)
        rel.unit_data.pop(unit.name, None)
