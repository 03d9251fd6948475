"""The controller's records: applications, units, relations (with their databags), secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ops
from ops import testing

from tests.cluster.rig_pods import Pod

JsonDict = dict[str, str]


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


def unit_number(unit_name: str | None) -> int:
    assert unit_name is not None
    return int(unit_name.rsplit("/", 1)[1])


class ModelRecords:
    """Everything the controller knows, with the lookups every part of the rig needs."""

    def __init__(self) -> None:
        self.apps: dict[str, RigApp] = {}
        self.relations: dict[int, RigRelation] = {}
        self.secrets: dict[str, RigSecret] = {}
        self.next_relation_id = 0

    def unit(self, name: str) -> RigUnit:
        app, number = name.rsplit("/", 1)
        return self.apps[app].units[int(number)]

    def find_unit(self, name: str) -> RigUnit | None:
        try:
            return self.unit(name)
        except KeyError:
            return None

    def units(self, app: str | None = None) -> list[RigUnit]:
        """Live units (not dying), of one application or all."""
        apps = [self.apps[app]] if app else list(self.apps.values())
        return [u for a in apps for u in a.live_units]

    def relations_of(self, app: str, endpoint: str | None = None) -> list[RigRelation]:
        return [
            r
            for r in self.relations.values()
            if app in r.apps
            and not r.broken
            and (endpoint is None or r.endpoint_of(app) == endpoint)
        ]

    def granted(self, secret: RigSecret, unit: RigUnit) -> bool:
        """Whether ``unit`` may read ``secret`` through a grant on a relation it is in."""
        for relation_id, grantees in secret.grants.items():
            rel = self.relations.get(relation_id)
            if rel is None or unit.app.name not in rel.apps:
                continue
            if unit.app.name in grantees or unit.name in grantees:
                return True
        return False
