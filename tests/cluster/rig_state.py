"""From the controller's records to the ``ops.testing.State`` a unit sees, and back.

:func:`build_state` builds what one unit sees for one event (its relations and databags, the
secrets it owns or was granted, its container with the real Pebble's checks and notices, its
networks, leadership, config and stored state). :func:`merge_state` writes what the hook
changed back into the records and returns what Juju would deliver because of it: a changed
databag is relation-changed for the units that can see it, a new secret revision is
secret-changed for the units that track an older one.
"""

from __future__ import annotations

from typing import Any, cast

import ops
from ops import testing

from tests.cluster import rig_watch
from tests.cluster.rig_charm_spec import (
    CONTAINER,
    endpoint_names,
    has_workload_container,
    storage_names,
)
from tests.cluster.rig_entities import (
    ModelRecords,
    RigRelation,
    RigSecret,
    RigUnit,
    unit_number,
)
from tests.cluster.rig_events import QueuedEvent
from tests.cluster.rig_ops_private import secret_revisions, secret_with_revisions

JUJU_VERSION = "3.6.14"
MODEL_UUID = "00000000-0000-4000-8000-00000000ca11"

SecretViews = dict[str, RigSecret]
"""secret ID -> the record behind each secret a state shows."""


def build_state(
    records: ModelRecords, unit: RigUnit, item: QueuedEvent, model_name: str
) -> tuple[testing.State, SecretViews]:
    app = unit.app
    secrets, views = _secret_views(records, unit)
    state = testing.State(
        leader=unit.leader,
        config=dict(app.config),
        relations=_relations(records, unit, item),
        networks=[
            testing.Network(
                endpoint,
                bind_addresses=[testing.BindAddress([testing.Address(unit.address)])],
                ingress_addresses=[unit.address],
                egress_subnets=[f"{unit.address}/32"],
            )
            for endpoint in endpoint_names(app.meta)
        ],
        containers=[_container(unit, item)] if has_workload_container(app.meta) else [],
        storages=[testing.Storage(name, index=unit.number) for name in storage_names(app.meta)],
        secrets=secrets,
        planned_units=len(app.live_units),
        model=testing.Model(name=model_name, uuid=MODEL_UUID, type="kubernetes"),
        stored_states=unit.stored_states,
        deferred=list(unit.deferred),
        unit_status=unit.unit_status,
        app_status=app.app_status,
        workload_version=unit.workload_version,
    )
    return state, views


def _relations(records: ModelRecords, unit: RigUnit, item: QueuedEvent) -> list[Any]:
    app = unit.app
    relations: list[Any] = []
    for rel in records.relations.values():
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
        others = {unit_number(u): dict(rel.unit_data.get(u, {})) for u in sorted(in_scope)}
        if rel.is_peer:
            relations.append(
                testing.PeerRelation(
                    endpoint,
                    interface=rel.interface,
                    id=rel.id,
                    local_app_data=local_app,
                    local_unit_data=local_unit,
                    peers_data=others,
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
                    remote_units_data=others,
                )
            )
    return relations


def _container(unit: RigUnit, item: QueuedEvent) -> testing.Container:
    check_infos, plan = rig_watch.check_infos(unit)
    notices = rig_watch.custom_notices(unit) if item.kind == rig_watch.NOTICE_EVENT else []
    return testing.Container(
        CONTAINER,
        can_connect=unit.pod.running,
        # The charm talks to the real Pebble; these only keep ops.testing's checks coherent.
        layers={"rig-real-plan": ops.pebble.Layer(cast(Any, plan))} if check_infos else {},
        check_infos=check_infos,
        notices=notices,
    )


def _secret_views(
    records: ModelRecords, unit: RigUnit
) -> tuple[list[testing.Secret], SecretViews]:
    views: SecretViews = {}
    out = []
    for secret in records.secrets.values():
        owned = secret.owned_by(unit)
        if not owned and not records.granted(secret, unit):
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
        out.append(secret_with_revisions(view, tracked, secret.latest))
        views[secret.id] = secret
    return out, views


def merge_state(
    records: ModelRecords, unit: RigUnit, state_out: testing.State, views: SecretViews
) -> list[QueuedEvent]:
    """Record what the hook changed; return the events Juju delivers because of it."""
    app = unit.app
    unit.unit_status = state_out.unit_status
    unit.workload_version = state_out.workload_version
    unit.stored_states = frozenset(state_out.stored_states)
    unit.deferred = tuple(state_out.deferred)
    if unit.leader:
        app.app_status = state_out.app_status
    follow_up: list[QueuedEvent] = []
    for rel_out in state_out.relations:
        rel = records.relations.get(rel_out.id)
        if rel is None:
            continue
        new_unit = {k: v for k, v in dict(rel_out.local_unit_data).items() if v != ""}
        if new_unit != rel.unit_data.get(unit.name, {}):
            rel.unit_data[unit.name] = new_unit
            follow_up += _unit_data_changed(rel, unit)
        new_app = {k: v for k, v in dict(rel_out.local_app_data).items() if v != ""}
        if unit.leader and new_app != rel.app_data.get(app.name, {}):
            rel.app_data[app.name] = new_app
            follow_up += _app_data_changed(records, rel, unit)
    return follow_up + _merge_secrets(records, unit, state_out, views)


def _unit_data_changed(rel: RigRelation, writer: RigUnit) -> list[QueuedEvent]:
    return [
        QueuedEvent(other, "relation_changed", rel.id, writer.name)
        for other in sorted(rel.participants - {writer.name})
        if writer.name in rel.in_scope.get(other, set())
    ]


def _app_data_changed(
    records: ModelRecords, rel: RigRelation, writer: RigUnit
) -> list[QueuedEvent]:
    readers = rel.remote_app(writer.app.name)
    return [
        QueuedEvent(other.name, "relation_changed", rel.id, None)
        for other in records.units(readers)
        if other.name != writer.name and other.name in rel.participants
    ]


def _merge_secrets(
    records: ModelRecords, unit: RigUnit, state_out: testing.State, views: SecretViews
) -> list[QueuedEvent]:
    follow_up = []
    seen = set()
    for s in state_out.secrets:
        seen.add(s.id)
        tracked, latest = secret_revisions(s)
        secret = records.secrets.get(s.id)
        if secret is None:  # created during this hook
            secret = RigSecret(
                id=s.id,
                owner_app=unit.app.name,
                owner_unit=unit.name if s.owner == "unit" else None,
                revisions=[dict(s.latest_content)],
                label=s.label,
                description=s.description,
                expire=s.expire,
                rotate=s.rotate,
            )
            secret.tracked[unit.name] = 1
            secret.grants = {k: set(v) for k, v in s.remote_grants.items()}
            records.secrets[s.id] = secret
            continue
        owned = secret.owned_by(unit)
        if latest > secret.latest and s.latest_content is not None:
            secret.revisions.append(dict(s.latest_content))
            secret.tracked[unit.name] = secret.latest
            for other, revision in secret.tracked.items():
                other_unit = records.find_unit(other)
                if other_unit and revision < secret.latest and not secret.owned_by(other_unit):
                    follow_up.append(QueuedEvent(other, "secret_changed", secret_id=secret.id))
        else:
            secret.tracked[unit.name] = tracked
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
            del records.secrets[secret_id]  # removed (all revisions) by its owner
    return follow_up
