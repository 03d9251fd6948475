"""The event queue: what Juju has decided to deliver to which unit, in order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

POD_CHURN_EVENTS = ("upgrade_charm", "config_changed", "start", "pebble_ready")
"""What a unit sees when Kubernetes recreates its pod (charm container included)."""


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
    barrier: bool = False
    """It changes what every unit sees (a relation or unit dropped from the records): it runs
    only once everything queued before it has run, and nothing queued after it runs first."""

    def __str__(self) -> str:
        return f"<{self.what}>"


@dataclass
class Gate:
    """The platform waits for ``ready()`` before doing ``then()`` (e.g. a rolling update)."""

    what: str
    ready: Callable[[], bool]
    then: Callable[[], None]


class EventQueue(deque[QueuedEvent | RigAction]):
    """Every unit's pending items, in the order Juju decided them.

    Juju gives each unit agent its own queue and runs the agents side by side. The rig runs one
    hook at a time, so the units take turns: the next item is the oldest one of the unit that
    has waited longest since its last turn. Each unit's own order is kept, and a barrier (see
    ``RigAction``) keeps the order of everything around it. A unit whose events
    were queued behind a burst of other units' events no longer waits for all of them, as it
    would not on a controller.
    """

    def __init__(self) -> None:
        super().__init__()
        self._turns = 0
        self._last_turn: dict[str, int] = {}

    def take_next(self) -> QueuedEvent | RigAction:
        """Remove and return the next item to deliver (see the class docstring)."""
        chosen, chosen_turn, seen = 0, 0, set()
        for index, item in enumerate(self):
            if isinstance(item, RigAction) and item.barrier:
                break  # nothing queued after a barrier runs before it; it runs at the head
            if item.unit in seen:
                continue
            seen.add(item.unit)
            turn = self._last_turn.get(item.unit, -1)
            if len(seen) == 1 or turn < chosen_turn:
                chosen, chosen_turn = index, turn
        item = self[chosen]
        del self[chosen]
        self._turns += 1
        self._last_turn[item.unit] = self._turns
        return item

    def push(self, item: QueuedEvent | RigAction) -> None:
        """Queue, coalescing an identical pending event (Juju delivers the latest data)."""
        if isinstance(item, QueuedEvent) and item in self:
            return
        self.append(item)
