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

    def __str__(self) -> str:
        return f"<{self.what}>"


@dataclass
class Gate:
    """The platform waits for ``ready()`` before doing ``then()`` (e.g. a rolling update)."""

    what: str
    ready: Callable[[], bool]
    then: Callable[[], None]


class EventQueue(deque[QueuedEvent | RigAction]):
    def push(self, item: QueuedEvent | RigAction) -> None:
        """Queue, coalescing an identical pending event (Juju delivers the latest data)."""
        if isinstance(item, QueuedEvent) and item in self:
            return
        self.append(item)
