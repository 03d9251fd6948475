"""The `bookkeeper` interface: BookKeeper metadata location and writable bookies.

Where a BookKeeper cluster keeps its metadata, and which bookies can take writes right now.

provider (bookkeeper-k8s) application databag
    ``metadata-service-uri``  e.g. ``zk+hierarchical://zk-0:2181;zk-1:2181/bookkeeper/ledgers``
    ``bookies``               JSON list of the ids (``host:3181``) of every bookie unit
    ``ready-bookies``         JSON list of the ids of the bookies that are writable now
    ``zookeeper-secret``      ID of a Juju secret granted to the requirer application, holding
                              the bookies' ZooKeeper identity: ``username``, ``password``,
                              ``endpoints`` (``host:port,...``) and ``chroot``; with
                              ``tls-ca`` (LIBPATCH 6) the endpoints serve TLS and the clients
                              trust that CA (PEM); without it they are plain text
    ``tls``                   ``enabled`` (LIBPATCH 7) once every bookie serves TLS on its port
                              (START_TLS, BookKeeper's in-band TLS); absent: plain text
    ``tls-ca``                with ``tls``: the CA chain (PEM) the bookies' certificates end
                              at. Public data (a CA certificate is no credential), so in the
                              databag: a change wakes the brokers with relation-changed.
                              Since LIBPATCH 8 it may hold several CA certificates: during a
                              CA rotation, the old and the new CA (trust every one of them)

One ZooKeeper identity per Pulsar cluster: brokers write ledger metadata under the BookKeeper
root, so they must be the same ZooKeeper user as the bookies against a ZooKeeper that gives each
relation exclusive ACLs over its chroot (Charmhub's does). The bookies' relation to ZooKeeper
owns the chroot; the brokers use the identity shared here.

provider (bookkeeper-k8s) unit databag, written by every bookie about itself (LIBPATCH 3)
    ``bookie-id``             this unit's bookie id
    ``bookie-state``          what the bookie itself reports now: ``writable``, ``read-only`` or
                              ``down``

requirer (pulsar-k8s) application databag (LIBPATCH 5; optional)
    ``ensemble-size``         the brokers' managed-ledger ensemble size (a decimal integer >= 1):
                              the provider refuses to decommission a bookie whose removal would
                              leave fewer bookies than the largest ensemble size it is told

A requirer counts a bookie as ready from the bookie's own unit report when there is one, and
from the leader's ``ready-bookies`` only for bookies that report nothing (older providers): the
leader's aggregate lags behind its hooks and must not hide what each bookie says. A bookie
publishes its report as soon as its state changes, so requirers are woken by relation-changed.

Neither side raises on bad data: a malformed databag reads as "not ready".
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import ops

LIBID = "9c8d7e6f5a4b4c3d2e1f0a9b8c7d6e5f"
LIBAPI = 0
LIBPATCH = 8

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BookKeeperInfo:
    metadata_service_uri: str
    bookies: tuple[str, ...]
    ready_bookies: tuple[str, ...]
    # the bookies serve TLS (LIBPATCH 7); ``tls_ca``: the CA they chain to, as published
    tls: bool = False
    tls_ca: str = ""


ZOOKEEPER_SECRET_KEY = "zookeeper-secret"
ENSEMBLE_SIZE_KEY = "ensemble-size"
# Java int: what Pulsar's managedLedgerDefaultEnsembleSize holds.
_MAX_SIZE = 2**31 - 1
ZOOKEEPER_SECRET_LABEL = "bookkeeper-zookeeper-identity"
TLS_KEY = "tls"
TLS_CA_KEY = "tls-ca"
TLS_ENABLED = "enabled"
_PEM_CERTIFICATES = re.compile(
    r"(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+"
)


def usable_tls_ca(info: BookKeeperInfo) -> str | None:
    """Return the CA (PEM, newline-terminated) to trust; "" for plain text; None if unusable.

    TLS without a CA, or with anything but PEM certificates (which would otherwise end up in a
    file the JVM reads), returns None: the requirer waits rather than trust what it cannot
    check.
    """
    if not info.tls:
        return ""
    ca = info.tls_ca.strip().replace("\r\n", "\n") + "\n"
    return ca if _PEM_CERTIFICATES.fullmatch(ca) else None


@dataclass(frozen=True)
class SharedZooKeeper:
    """The bookies' ZooKeeper identity, as handed to the brokers."""

    endpoints: tuple[str, ...]
    chroot: str
    username: str
    password: str
    # the CA of a ZooKeeper serving TLS on ``endpoints`` ("" : plain text)
    tls_ca: str = ""

    def content(self) -> dict[str, str]:
        content = {
            "username": self.username,
            "password": self.password,
            "endpoints": ",".join(self.endpoints),
            "chroot": self.chroot,
        }
        if self.tls_ca:
            content["tls-ca"] = self.tls_ca
        return content

    @classmethod
    def from_content(cls, content: dict[str, str]) -> SharedZooKeeper | None:
        endpoints = tuple(e for e in content.get("endpoints", "").split(",") if e)
        fields = (content.get("chroot"), content.get("username"), content.get("password"))
        if not endpoints or not all(fields):
            return None
        chroot, username, password = (str(f) for f in fields)
        return cls(endpoints, chroot, username, password, str(content.get("tls-ca") or ""))


class BookKeeperProvider:
    def __init__(self, charm: ops.CharmBase, relation_name: str = "bookkeeper"):
        self._charm = charm
        self._relation_name = relation_name

    def publish(self, info: BookKeeperInfo | None) -> None:
        """Leader only: tell every related application; ``None`` withdraws (not ready)."""
        if not self._charm.unit.is_leader():
            return
        wanted = (
            {
                "metadata-service-uri": info.metadata_service_uri,
                "bookies": json.dumps(sorted(info.bookies)),
                "ready-bookies": json.dumps(sorted(info.ready_bookies)),
                TLS_KEY: TLS_ENABLED if info.tls else "",
                TLS_CA_KEY: info.tls_ca if info.tls else "",
            }
            if info
            else {
                "metadata-service-uri": "",
                "bookies": "[]",
                "ready-bookies": "[]",
                TLS_KEY: "",
                TLS_CA_KEY: "",
            }
        )
        for relation in self._charm.model.relations[self._relation_name]:
            databag = relation.data[self._charm.app]
            for key, value in wanted.items():
                if databag.get(key, "") != value:
                    if value:
                        databag[key] = value
                    else:
                        del databag[key]

    def share_zookeeper(self, identity: SharedZooKeeper | None) -> None:
        """Leader only: grant every related application the bookies' ZooKeeper identity.

        ``None`` withdraws the databag key (the secret stays for a later share).
        """
        if not self._charm.unit.is_leader():
            return
        relations = self._charm.model.relations[self._relation_name]
        secret_id = ""
        if identity is not None and relations:
            content = identity.content()
            try:
                secret = self._charm.model.get_secret(label=ZOOKEEPER_SECRET_LABEL)
                if secret.get_content(refresh=True) != content:
                    secret.set_content(content)
            except ops.SecretNotFoundError:
                secret = self._charm.app.add_secret(
                    content,
                    label=ZOOKEEPER_SECRET_LABEL,
                    description="The bookies' ZooKeeper identity, shared with the brokers",
                )
            secret_id = secret.id or secret.get_info().id
            for relation in relations:
                secret.grant(relation)
        for relation in relations:
            databag = relation.data[self._charm.app]
            if databag.get(ZOOKEEPER_SECRET_KEY, "") != secret_id:
                if secret_id:
                    databag[ZOOKEEPER_SECRET_KEY] = secret_id
                else:
                    del databag[ZOOKEEPER_SECRET_KEY]

    def required_bookies(self) -> int | None:
        """Return the largest ``ensemble-size`` a related application asks for (None: none).

        A malformed value is ignored (logged): it never raises.
        """
        sizes = []
        for relation in self._charm.model.relations[self._relation_name]:
            if relation.app is None:
                continue
            try:
                raw = relation.data[relation.app].get(ENSEMBLE_SIZE_KEY, "")
            except ops.ModelError:
                continue
            size = _parse_size(raw)
            if size is None and raw:
                logger.info("ignoring a malformed %s from %s", ENSEMBLE_SIZE_KEY, relation.app)
            if size is not None:
                sizes.append(size)
        return max(sizes, default=None)

    def report(self, bookie_id: str, state: str | None) -> None:
        """Every unit: publish this bookie's own state (``None`` withdraws the report)."""
        wanted = {"bookie-id": bookie_id, "bookie-state": state} if state else {}
        for relation in self._charm.model.relations[self._relation_name]:
            databag = relation.data[self._charm.unit]
            for key in ("bookie-id", "bookie-state"):
                value = wanted.get(key, "")
                if databag.get(key, "") != value:
                    if value:
                        databag[key] = value
                    else:
                        del databag[key]


WRITABLE = "writable"


class BookKeeperRequirer:
    def __init__(self, charm: ops.CharmBase, relation_name: str = "bookkeeper"):
        self._charm = charm
        self._relation_name = relation_name

    @property
    def relation(self) -> ops.Relation | None:
        return self._charm.model.get_relation(self._relation_name)

    def info(self) -> BookKeeperInfo | None:
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        try:
            data = relation.data[relation.app]
            uri = data.get("metadata-service-uri", "")
            bookies = json.loads(data.get("bookies", "[]"))
            ready = json.loads(data.get("ready-bookies", "[]"))
            tls = data.get(TLS_KEY, "") == TLS_ENABLED
            tls_ca = data.get(TLS_CA_KEY, "") if tls else ""
        except (ops.ModelError, ValueError) as exc:
            logger.info("bookkeeper relation data not usable: %s", exc)
            return None
        if not uri or not _is_str_list(bookies) or not _is_str_list(ready):
            return None
        reports = _unit_reports(relation)
        merged = {b for b in ready if b not in reports}
        merged.update(b for b, state in reports.items() if state == WRITABLE)
        # Only bookies the provider lists count (a report may precede the leader's listing).
        ready_listed = tuple(sorted(merged & set(bookies)))
        return BookKeeperInfo(uri, tuple(bookies), ready_listed, tls=tls, tls_ca=tls_ca)

    def publish_ensemble_size(self, size: int | None) -> None:
        """Leader only: tell the bookies the ensemble size (``None`` withdraws it)."""
        if not self._charm.unit.is_leader():
            return
        wanted = str(size) if size else ""
        for relation in self._charm.model.relations[self._relation_name]:
            databag = relation.data[self._charm.app]
            if databag.get(ENSEMBLE_SIZE_KEY, "") != wanted:
                if wanted:
                    databag[ENSEMBLE_SIZE_KEY] = wanted
                else:
                    del databag[ENSEMBLE_SIZE_KEY]

    def shared_zookeeper(self) -> SharedZooKeeper | None:
        """Return the bookies' ZooKeeper identity; None when not shared (yet) or not readable."""
        relation = self._charm.model.get_relation(self._relation_name)
        if relation is None or relation.app is None:
            return None
        try:
            secret_id = relation.data[relation.app].get(ZOOKEEPER_SECRET_KEY, "")
            if not secret_id:
                return None
            content = self._charm.model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.info("bookies' zookeeper identity not readable: %s", exc)
            return None
        return SharedZooKeeper.from_content(content)


def _unit_reports(relation: ops.Relation) -> dict[str, str]:
    """Bookie id -> the state that bookie's unit reports about itself."""
    reports: dict[str, str] = {}
    for unit in relation.units:
        try:
            data = relation.data[unit]
            bookie, state = data.get("bookie-id", ""), data.get("bookie-state", "")
        except ops.ModelError:
            continue
        if bookie and state:
            reports[bookie] = state
    return reports


def _parse_size(raw: str) -> int | None:
    """Return a positive decimal integer (ASCII digits only), else None."""
    if not raw or len(raw) > 10 or not raw.isascii() or not raw.isdigit():
        return None
    size = int(raw)
    return size if 1 <= size <= _MAX_SIZE else None


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
