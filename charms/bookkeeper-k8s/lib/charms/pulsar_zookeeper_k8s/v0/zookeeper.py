"""The `zookeeper` interface: a ZooKeeper chroot and digest credentials for one application.

The databag contract is the one Charmhub's ZooKeeper charm and its clients already speak:

requirer application databag
    ``database``          the chroot znode it wants, e.g. ``/pulsar``
    ``requested-secrets`` JSON list of provider fields to hand over in a secret
    ``extra-user-roles``  ZooKeeper ACL letters for the chroot (subset of ``cdrwa``)

provider application databag
    ``database``     the chroot granted
    ``endpoints``    comma-separated ``host:port`` of every server
    ``secret-user``  ID of a Juju secret holding ``username``, ``password`` and ``uris``
                     (``uris`` = ``host:port,host:port/chroot``, a ready connection string)
    ``tls``          ``"enabled"`` or ``"disabled"``

Requirers use :class:`ZooKeeperRequirer`; the ZooKeeper charm uses :class:`ZooKeeperProvider`.
Neither raises on bad data from the other side: bad or incomplete data reads as "not ready".
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
from dataclasses import dataclass

import ops

LIBID = "6a1c0f5e2d4b4f1e9a7c3b2d1e0f9a8b"
LIBAPI = 0
LIBPATCH = 2

logger = logging.getLogger(__name__)

DEFAULT_REQUESTED_SECRETS = ("username", "password", "uris")
_CHROOT = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_ACL_LETTERS = set("cdrwa")


def validate_chroot(chroot: str) -> str | None:
    """Return why ``chroot`` is not an acceptable chroot znode, or None if it is."""
    if not _CHROOT.match(chroot):
        return "must be an absolute znode path such as /pulsar (letters, digits, _ . -)"
    if chroot.split("/")[1] == "zookeeper" or any(p in (".", "..") for p in chroot.split("/")):
        return "must not be /zookeeper or contain . or .. segments"
    return None


def validate_acl(letters: str) -> str | None:
    """Return why ``letters`` is not a ZooKeeper ACL string, or None if it is."""
    if not letters or not set(letters) <= _ACL_LETTERS:
        return "must be a non-empty subset of the letters cdrwa"
    return None


def generate_password() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class ClientRequest:
    """What one related application asked for, as the provider sees it."""

    relation_id: int
    app_name: str
    chroot: str
    acl: str
    error: str | None = None

    @property
    def username(self) -> str:
        return f"relation-{self.relation_id}"


@dataclass(frozen=True)
class ZooKeeperConnection:
    """What a requirer needs to connect, as the requirer sees it."""

    endpoints: tuple[str, ...]
    chroot: str
    username: str
    password: str
    uris: str
    tls: bool

    @property
    def hosts(self) -> str:
        """``host:port,host:port`` without chroot."""
        return ",".join(self.endpoints)


def client_secret_label(relation_id: int) -> str:
    return f"zookeeper-client-{relation_id}"


class ZooKeeperProvider:
    """Provider side, used by the ZooKeeper charm. Pure data plumbing: no ZooKeeper calls."""

    def __init__(self, charm: ops.CharmBase, relation_name: str = "zookeeper"):
        self._charm = charm
        self._relation_name = relation_name

    @property
    def relations(self) -> list[ops.Relation]:
        return [r for r in self._charm.model.relations[self._relation_name] if r.app is not None]

    def requests(self) -> list[ClientRequest]:
        """Every related application's request; invalid ones carry ``error``."""
        found = []
        for relation in self.relations:
            assert relation.app is not None
            try:
                data = relation.data[relation.app]
                chroot = data.get("database", "")
                acl = data.get("extra-user-roles") or "cdrwa"
            except ops.ModelError as exc:  # pragma: no cover - Juju access errors
                logger.warning("cannot read relation %s: %s", relation.id, exc)
                continue
            if not chroot:
                continue  # the requirer has not asked yet
            error = validate_chroot(chroot) or validate_acl(acl)
            found.append(ClientRequest(relation.id, relation.app.name, chroot, acl, error))
        return sorted(found, key=lambda r: r.relation_id)

    def password(self, relation_id: int) -> str | None:
        """Return the client's password (readable on every unit of the provider application)."""
        try:
            secret = self._charm.model.get_secret(label=client_secret_label(relation_id))
            return secret.get_content(refresh=True).get("password")
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def ensure_password(self, relation_id: int) -> str | None:
        """Leader only: the client's password, generated once into the relation's secret.

        The secret exists (and is readable by every provider unit, by label) before anything is
        published, so each ZooKeeper server can load the user before the client may connect.
        Returns None when the secret cannot be read or created (not leader, Juju error).
        """
        existing = self.password(relation_id)
        if existing:
            return existing
        password = generate_password()
        content = {"username": f"relation-{relation_id}", "password": password}
        try:
            self._charm.app.add_secret(content, label=client_secret_label(relation_id))
        except ops.ModelError as exc:
            logger.warning("cannot create the secret of relation %s: %s", relation_id, exc)
            return None
        return password

    def publish(
        self,
        request: ClientRequest,
        *,
        endpoints: list[str],
        password: str,
        tls: bool = False,
    ) -> None:
        """Leader only: hand ``request``'s application its credentials. Idempotent."""
        relation = self._charm.model.get_relation(self._relation_name, request.relation_id)
        if relation is None:
            return
        uris = ",".join(endpoints) + request.chroot
        content = {"username": request.username, "password": password, "uris": uris}
        label = client_secret_label(request.relation_id)
        try:
            secret = self._charm.model.get_secret(label=label)
            if secret.get_content(refresh=True) != content:
                secret.set_content(content)
        except ops.SecretNotFoundError:
            secret = self._charm.app.add_secret(content, label=label)
        secret.grant(relation)
        wanted = {
            "database": request.chroot,
            "endpoints": ",".join(endpoints),
            "secret-user": secret.id or "",
            "tls": "enabled" if tls else "disabled",
        }
        _update(relation.data[self._charm.app], wanted)

    def withdraw(self, relation_id: int) -> None:
        """Leader only: forget a departed client's secret (its ACL is the charm's business)."""
        label = client_secret_label(relation_id)
        with contextlib.suppress(ops.SecretNotFoundError, ops.ModelError):
            self._charm.model.get_secret(label=label).remove_all_revisions()


class ZooKeeperRequirer:
    """Requirer side, used by charms that keep their metadata in ZooKeeper."""

    def __init__(
        self,
        charm: ops.CharmBase,
        relation_name: str = "zookeeper",
        *,
        chroot: str,
        acl: str = "cdrwa",
    ):
        self._charm = charm
        self._relation_name = relation_name
        self._chroot = chroot
        self._acl = acl

    @property
    def relation(self) -> ops.Relation | None:
        return self._charm.model.get_relation(self._relation_name)

    def request(self) -> None:
        """Leader only: ask for the chroot (writes only when the databag differs)."""
        relation = self.relation
        if relation is None or not self._charm.unit.is_leader():
            return
        _update(
            relation.data[self._charm.app],
            {
                "database": self._chroot,
                "requested-secrets": json.dumps(list(DEFAULT_REQUESTED_SECRETS)),
                "extra-user-roles": self._acl,
            },
        )

    def connection(self) -> ZooKeeperConnection | None:
        """Return the granted connection; None until the provider answered (correctly)."""
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        try:
            data = relation.data[relation.app]
            endpoints = tuple(e for e in data.get("endpoints", "").split(",") if e)
            chroot = data.get("database", "")
            secret_id = data.get("secret-user", "")
            tls = data.get("tls", "disabled") == "enabled"
            if not endpoints or chroot != self._chroot or not secret_id:
                return None
            content = self._charm.model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.info("zookeeper credentials not readable yet: %s", exc)
            return None
        username, password = content.get("username"), content.get("password")
        if not username or not password:
            return None
        uris = content.get("uris") or ",".join(endpoints) + chroot
        return ZooKeeperConnection(endpoints, chroot, username, password, uris, tls)


def _update(databag: ops.RelationDataContent, wanted: dict[str, str]) -> None:
    """Write only the keys whose value differs, so an unchanged reconcile writes nothing."""
    for key, value in wanted.items():
        if databag.get(key) != value:
            databag[key] = value
