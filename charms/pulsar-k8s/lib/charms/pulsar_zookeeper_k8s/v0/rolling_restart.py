"""A one-unit-at-a-time restart lock over a peer relation, driven by the reconcile.

A unit that must restart an already running clustered service calls :meth:`request` with a token
naming what it wants to apply (e.g. a hash of the rendered files). The leader's reconcile calls
:meth:`arbitrate`, which grants the lock to one requesting unit at a time (lowest unit number
first). The granted unit restarts, then calls :meth:`release`; its peer-relation change wakes the
leader, which grants the next. No deferral: every step is a level-triggered check.

Databag keys (peer relation):
    unit ``restart-request``  the token the unit waits to apply ("" when none)
    app  ``restart-granted``  the unit name holding the lock ("" when free)
"""

from __future__ import annotations

import ops

LIBID = "0b7e4d3c2a1f4e5d8c9b0a1f2e3d4c5b"
LIBAPI = 0
LIBPATCH = 2

REQUEST_KEY = "restart-request"
GRANTED_KEY = "restart-granted"


def _unit_number(name: str) -> int:
    try:
        return int(name.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return 1 << 30


def next_grantee(current: str, requests: dict[str, str]) -> str:
    """Who holds the lock next: keep a holder still requesting, else the lowest requester."""
    if current and requests.get(current):
        return current
    waiting = sorted((u for u, token in requests.items() if token), key=_unit_number)
    return waiting[0] if waiting else ""


class RollingRestart:
    def __init__(self, charm: ops.CharmBase, relation_name: str = "cluster"):
        self._charm = charm
        self._relation_name = relation_name

    @property
    def _relation(self) -> ops.Relation | None:
        return self._charm.model.get_relation(self._relation_name)

    def request(self, token: str) -> None:
        """Ask to restart to apply ``token`` (writes only if the request changed)."""
        relation = self._relation
        if relation is not None and relation.data[self._charm.unit].get(REQUEST_KEY) != token:
            relation.data[self._charm.unit][REQUEST_KEY] = token

    def acquire(self, token: str) -> bool:
        """Ask for the lock to apply ``token``; True once this unit holds it.

        The leader arbitrates at once, so a leader (or a single unit) restarts in the same hook;
        another unit is woken by the leader's grant (a peer relation change).
        """
        self.request(token)
        if self._charm.unit.is_leader():
            self.arbitrate()
        return self.granted()

    def release(self) -> None:
        """Restart done (or no longer needed): give the lock back."""
        self.request("")

    def pending(self) -> str:
        relation = self._relation
        return relation.data[self._charm.unit].get(REQUEST_KEY, "") if relation else ""

    def granted(self) -> bool:
        """Return True when this unit holds the lock for a pending request.

        Without a peer relation (a single unit), there is nobody to coordinate with.
        """
        relation = self._relation
        if relation is None:
            return True
        holder = relation.data[self._charm.app].get(GRANTED_KEY, "")
        return bool(self.pending()) and holder == self._charm.unit.name

    def arbitrate(self) -> None:
        """Leader only: move the lock on when its holder is done or gone."""
        relation = self._relation
        if relation is None or not self._charm.unit.is_leader():
            return
        requests = {self._charm.unit.name: relation.data[self._charm.unit].get(REQUEST_KEY, "")}
        for unit in relation.units:
            requests[unit.name] = relation.data[unit].get(REQUEST_KEY, "")
        current = relation.data[self._charm.app].get(GRANTED_KEY, "")
        grantee = next_grantee(current, requests)
        if grantee != current:
            relation.data[self._charm.app][GRANTED_KEY] = grantee
