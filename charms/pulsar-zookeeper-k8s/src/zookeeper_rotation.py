"""Rotating a client relation's ZooKeeper credentials: the state and its pure decisions.

ZooKeeper reads its JAAS ``Server`` users only at start and has one password per user, so a
relation's password is replaced by a NEW user (``relation-<id>-r<n>``), in phases kept in the
peer application databag (``rotations``, JSON {relation id: {phase, old, new}}) beside the
``zookeeper-client-<id>-rotation`` secret (``old-password``, ``new-password``):

``adding``     every server loads both users (a rolling restart); the leader waits for every
               member's ``users`` to hold the new one, then gives the new user the old one's
               ACL entries under the chroot and publishes the new user in the relation's secret.
``switching``  the clients restart with the new user, each unit reporting the user its running
               workload logged in with (``zookeeper-username``, unit databag of the ``zookeeper``
               relation). When every unit of the relation reports the new user and no unit of
               any client relation (brokers report the bookies' user they share) reports the old
               one, the leader revokes the old user's ACL entries and removes the secret.
``removing``   the servers restart without the old user; when every member runs without it,
               the rotation is over (the state is dropped).

Every step is woken by a real event: a peer unit's ``users`` (a server restarted), a client
unit's report (relation-changed), or the view check's retry after a failed ZooKeeper call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from charms.pulsar_k8s.v0.validation import InvalidField, parse_json_object, parse_username

ROTATIONS_KEY = "rotations"
ADDING, SWITCHING, REMOVING = "adding", "switching", "removing"
PHASES = (ADDING, SWITCHING, REMOVING)
_USER = re.compile(r"^relation-(\d+)(?:-r(\d+))?$")


@dataclass(frozen=True)
class Rotation:
    """One relation's rotation in progress."""

    phase: str
    old: str
    new: str

    def encode(self) -> dict[str, str]:
        return {"phase": self.phase, "old": self.old, "new": self.new}


def rotation_secret_label(relation_id: int) -> str:
    return f"zookeeper-client-{relation_id}-rotation"


def relation_id_of(username: str) -> int | None:
    """Return the relation id in a user name (``relation-5``, ``relation-5-r2``), else None."""
    match = _USER.fullmatch(username)
    return int(match.group(1)) if match else None


def next_username(relation_id: int, current: str) -> str:
    """Return the user that replaces ``current``: ``relation-<id>-r<n+1>``."""
    match = _USER.fullmatch(current)
    generation = int(match.group(2) or 0) if match else 0
    return f"relation-{relation_id}-r{generation + 1}"


def parse_rotations(source: str, raw: str | None) -> dict[int, Rotation]:
    """Read the ``rotations`` record; InvalidField when refused (never read as empty)."""
    decoded = parse_json_object(source, ROTATIONS_KEY, raw or None)
    rotations: dict[int, Rotation] = {}
    for key, value in decoded.items():
        where = f"{ROTATIONS_KEY}[{key}]"
        if not (key.isascii() and key.isdigit()) or not isinstance(value, dict):
            raise InvalidField(source, where, "is not a relation id with a rotation object")
        phase = value.get("phase")
        if phase not in PHASES:
            raise InvalidField(source, where, f"phase must be one of {', '.join(PHASES)}")
        old = parse_username(source, f"{where}.old", value.get("old"))
        new = parse_username(source, f"{where}.new", value.get("new"))
        rotations[int(key)] = Rotation(phase, old, new)
    return rotations


def encode_rotations(rotations: Mapping[int, Rotation]) -> str:
    return json.dumps({str(k): rotations[k].encode() for k in sorted(rotations)})


@dataclass(frozen=True)
class ClientProgress:
    """How far the clients are in a switch."""

    on_new: int
    total: int
    still_old: tuple[str, ...]  # units (of any client relation) still reporting the old user

    @property
    def done(self) -> bool:
        return self.on_new == self.total and not self.still_old


def client_progress(
    rotated: Mapping[str, str | None], others: Mapping[str, str | None], rotation: Rotation
) -> ClientProgress:
    """Decide whether every client runs with the new user.

    ``rotated``: unit -> reported user for the units of the rotated relation; ``others``: the
    same for every other client relation (applications sharing the identity report it there).
    A unit that reports nothing has not switched: the old user stays until it does.
    """
    on_new = sum(1 for user in rotated.values() if user == rotation.new)
    still_old = tuple(
        sorted(
            unit
            for unit, user in [*rotated.items(), *others.items()]
            if user == rotation.old or (unit in rotated and user != rotation.new)
        )
    )
    return ClientProgress(on_new, len(rotated), still_old)


def describe(rotation: Rotation, detail: str = "") -> str:
    """Return the progress line of one rotation (action results, status notes)."""
    text = f"{rotation.phase} ({rotation.old} -> {rotation.new})"
    return f"{text}: {detail}" if detail else text
