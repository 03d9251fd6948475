"""The `zookeeper` interface: a ZooKeeper chroot and SASL credentials for one application.

The databag contract is the data-platform one that Charmhub's ZooKeeper charm and its clients
(e.g. Kafka 3) speak (``charm-relation-interfaces``, ``interfaces/zookeeper/v0``):

requirer application databag
    ``database``          the chroot znode it wants, e.g. ``/pulsar`` (a missing leading ``/`` is
                          added, as Charmhub's ZooKeeper does)
    ``requested-secrets`` JSON list of provider fields to hand over in Juju secrets
    ``extra-user-roles``  ZooKeeper ACL letters for the chroot (subset of ``cdrwa``; default all)
    legacy ``chroot`` / ``chroot-acl``: read when ``database`` / ``extra-user-roles`` are absent

provider application databag
    ``database``     the chroot granted (with its leading ``/``)
    ``endpoints``    comma-separated ``host:port`` of every server
    ``secret-user``  ID of a Juju secret holding ``username`` and ``password``, plus ``uris``
                     (``host:port,host:port/chroot``) when requested as a secret
    ``secret-tls``   ID of a Juju secret holding ``tls`` (``enabled``/``disabled``) and
                     ``tls-ca``, when the requirer requested either as a secret
    ``uris``, ``tls``, ``tls-ca``  plain, when the requirer did not request them as secrets
                     (``tls-ca`` is PEM and may hold several CAs: during a CA rotation both
                     the old and the new one; a client trusts every certificate in it)
    ``chroot``       echo of the granted chroot, only for a requirer that sent the legacy key

The credentials (``username``, ``password``) always travel in ``secret-user``, whatever the
requirer asked: a password is never written into a databag.

requirer unit databag (an addition of this library, optional for other requirers)
    ``zookeeper-username`` the ZooKeeper user the unit's running workload logged in with; a
                          unit that shares its identity with another application (the brokers
                          use the bookies' user) reports it on its own ``zookeeper`` relation.
                          The provider removes a rotated-out user only when no unit reports it.

Requirers use :class:`ZooKeeperRequirer`; the ZooKeeper charm uses :class:`ZooKeeperProvider`.
Neither raises on bad data from the other side: bad or incomplete data reads as "not ready".
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

import ops

LIBID = "6a1c0f5e2d4b4f1e9a7c3b2d1e0f9a8b"
LIBAPI = 0
LIBPATCH = 7

logger = logging.getLogger(__name__)

# What data-platform requirers (Kafka 3, DatabaseRequirerData) ask for, in their order.
DEFAULT_REQUESTED_SECRETS = ("username", "password", "tls", "tls-ca", "uris")
# data_interfaces' secret groups: which secret a requested field travels in.
SECRET_GROUP_OF = {
    "username": "secret-user",
    "password": "secret-user",
    "uris": "secret-user",
    "tls": "secret-tls",
    "tls-ca": "secret-tls",
}
# Every key the provider may write into its application databag (others are left alone).
PROVIDER_KEYS = (
    "database",
    "endpoints",
    "chroot",
    "uris",
    "tls",
    "tls-ca",
    "secret-user",
    "secret-tls",
)
# Requirer unit databag key: the user the unit's running workload logged in with.
RUNNING_USER_KEY = "zookeeper-username"
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CHROOT = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_ACL_LETTERS = set("cdrwa")


def normalise_chroot(raw: str) -> str:
    """Add the leading ``/`` a requirer may omit (Charmhub's ZooKeeper does the same)."""
    return raw if raw.startswith("/") else f"/{raw}"


def validate_chroot(chroot: str) -> str | None:
    """Return why ``chroot`` is not an acceptable chroot znode, or None if it is."""
    if not _CHROOT.fullmatch(chroot):
        return "must be a znode path such as /pulsar (letters, digits, _ . -)"
    if chroot.split("/")[1] == "zookeeper" or any(p in (".", "..") for p in chroot.split("/")):
        return "must not be /zookeeper or contain . or .. segments"
    return None


def validate_acl(letters: str) -> str | None:
    """Return why ``letters`` is not a ZooKeeper ACL string, or None if it is."""
    if not letters or not set(letters) <= _ACL_LETTERS:
        return "must be a non-empty subset of the letters cdrwa"
    return None


def chroots_overlap(a: str, b: str) -> bool:
    """Whether one chroot is the other or lies under it (``/a`` and ``/a/b``, not ``/ab``)."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def generate_password() -> str:
    return secrets.token_urlsafe(24)


def client_username(relation_id: int) -> str:
    """Return the ZooKeeper user of one relation (the naming of Charmhub's ZooKeeper)."""
    return f"relation-{relation_id}"


@dataclass(frozen=True)
class ClientRequest:
    """What one related application asked for, as the provider sees it."""

    relation_id: int
    app_name: str
    chroot: str
    acl: str
    error: str | None = None
    requested_secrets: frozenset[str] = field(
        default_factory=lambda: frozenset(DEFAULT_REQUESTED_SECRETS)
    )
    echo_chroot: bool = False
    # the relation's current user when it is not the first one (after a credential rotation)
    user: str | None = None

    @property
    def username(self) -> str:
        return self.user or client_username(self.relation_id)


def parse_request(
    relation_id: int, app_name: str, data: Mapping[str, str]
) -> ClientRequest | None:
    """Read a requirer's databag; None while it has not asked, ``error`` set when invalid."""
    raw_chroot = data.get("database") or data.get("chroot") or ""
    if not raw_chroot:
        return None
    chroot = normalise_chroot(raw_chroot)
    acl = data.get("extra-user-roles") or data.get("chroot-acl") or "cdrwa"
    error = None
    requested: frozenset[str] = frozenset()
    raw_requested = data.get("requested-secrets")
    if raw_requested is not None:
        try:
            decoded = json.loads(raw_requested)
        except ValueError:
            decoded = None
        if isinstance(decoded, list) and all(isinstance(item, str) for item in decoded):
            requested = frozenset(decoded)
        else:
            error = "requested-secrets must be a JSON list of field names"
    chroot_error = validate_chroot(chroot)
    acl_error = validate_acl(acl)
    if chroot_error:
        error = f"database {raw_chroot!r} {chroot_error}"
    elif acl_error:
        error = f"extra-user-roles {acl!r} {acl_error}"
    return ClientRequest(
        relation_id,
        app_name,
        chroot,
        acl,
        error,
        requested_secrets=requested,
        echo_chroot="chroot" in data,
    )


@dataclass(frozen=True)
class ProviderAnswer:
    """What the provider hands one requirer: plain databag fields and two secrets' contents.

    ``databag`` holds neither ``secret-user`` nor ``secret-tls``: their IDs exist only once the
    secrets do, so the publisher adds them (``tls_secret`` empty means no ``secret-tls``).
    """

    databag: dict[str, str]
    user_secret: dict[str, str]
    tls_secret: dict[str, str]


def render_answer(
    request: ClientRequest,
    *,
    endpoints: list[str],
    password: str,
    tls: bool = False,
    tls_ca: str = "",
) -> ProviderAnswer:
    """Split the answer to ``request`` as data-platform does: secrets only for what it asked."""
    joined = ",".join(endpoints)
    fields = {"uris": joined + request.chroot, "tls": "enabled" if tls else "disabled"}
    if tls_ca:
        fields["tls-ca"] = tls_ca
    databag = {"database": request.chroot, "endpoints": joined}
    if request.echo_chroot:
        databag["chroot"] = request.chroot
    user_secret = {"username": request.username, "password": password}
    tls_secret: dict[str, str] = {}
    for name, value in fields.items():
        if name not in request.requested_secrets:
            databag[name] = value
        elif SECRET_GROUP_OF[name] == "secret-user":
            user_secret[name] = value
        else:
            tls_secret[name] = value
    return ProviderAnswer(databag, user_secret, tls_secret)


@dataclass(frozen=True)
class ZooKeeperConnection:
    """What a requirer needs to connect, as the requirer sees it."""

    endpoints: tuple[str, ...]
    chroot: str
    username: str
    password: str
    uris: str
    tls: bool
    tls_ca: str = ""

    @property
    def hosts(self) -> str:
        """``host:port,host:port`` without chroot."""
        return ",".join(self.endpoints)


# Where a requirer's JVM clients find the CA of a ZooKeeper that serves TLS (LIBPATCH 6).
CLIENT_TLS_CA_PATH = "/pulsar/conf/zookeeper-ca.pem"
_PEM_CERTIFICATE = re.compile(
    r"(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+"
)


def usable_tls_ca(connection: ZooKeeperConnection) -> str | None:
    """Return the CA (PEM, newline-terminated) a TLS connection trusts; None when unusable.

    Plain text (``tls`` disabled) returns "". TLS without a CA, or with anything but PEM
    certificates, returns None: the requirer waits rather than trust what it cannot check.
    """
    if not connection.tls:
        return ""
    ca = connection.tls_ca.strip().replace("\r\n", "\n") + "\n"
    if not _PEM_CERTIFICATE.fullmatch(ca):
        return None
    return ca


def client_tls_jvm_options(ca_path: str = CLIENT_TLS_CA_PATH) -> tuple[str, ...]:
    """JVM system properties that make ZooKeeper clients (bookies, brokers) use TLS.

    The ZooKeeper client reads them through ``ZKClientConfig``: the Netty socket, the secure
    port and a PEM trust store holding the server's CA; the server name is checked against
    the certificate. SASL works unchanged inside the TLS connection.
    """
    return (
        "-Dzookeeper.client.secure=true",
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        f"-Dzookeeper.ssl.trustStore.location={ca_path}",
        "-Dzookeeper.ssl.trustStore.type=PEM",
    )


def read_answer(
    chroot: str,
    databag: Mapping[str, str],
    user_secret: Mapping[str, str],
    tls_secret: Mapping[str, str],
) -> ZooKeeperConnection | None:
    """Read a provider's answer for ``chroot`` (None when incomplete or for another chroot).

    Requested fields are read from their secret first, then from the databag, as
    ``data_interfaces`` does; the credentials only from the secret.
    """
    endpoints = tuple(e for e in databag.get("endpoints", "").split(",") if e)
    granted = databag.get("database") or databag.get("chroot") or ""
    if not endpoints or not granted or normalise_chroot(granted) != normalise_chroot(chroot):
        return None
    username, password = user_secret.get("username"), user_secret.get("password")
    if not username or not password:
        return None
    granted = normalise_chroot(granted)
    uris = user_secret.get("uris") or databag.get("uris") or ",".join(endpoints) + granted
    tls = (tls_secret.get("tls") or databag.get("tls") or "disabled") == "enabled"
    tls_ca = tls_secret.get("tls-ca") or databag.get("tls-ca") or ""
    return ZooKeeperConnection(endpoints, granted, username, password, uris, tls, tls_ca)


def client_secret_label(relation_id: int) -> str:
    return f"zookeeper-client-{relation_id}"


def client_tls_secret_label(relation_id: int) -> str:
    return f"zookeeper-client-{relation_id}-tls"


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
                data = dict(relation.data[relation.app])
            except ops.ModelError as exc:  # pragma: no cover - Juju access errors
                logger.warning("cannot read relation %s: %s", relation.id, exc)
                continue
            request = parse_request(relation.id, relation.app.name, data)
            if request is not None:
                found.append(request)
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
        content = {"username": client_username(relation_id), "password": password}
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
        tls_ca: str = "",
    ) -> None:
        """Leader only: hand ``request``'s application its credentials. Idempotent."""
        relation = self._charm.model.get_relation(self._relation_name, request.relation_id)
        if relation is None:
            return
        answer = render_answer(
            request, endpoints=endpoints, password=password, tls=tls, tls_ca=tls_ca
        )
        wanted = dict(answer.databag)
        wanted["secret-user"] = self._granted_secret(
            client_secret_label(request.relation_id), answer.user_secret, relation
        )
        if answer.tls_secret:
            wanted["secret-tls"] = self._granted_secret(
                client_tls_secret_label(request.relation_id), answer.tls_secret, relation
            )
        _converge_databag(relation.data[self._charm.app], wanted, PROVIDER_KEYS)

    def _granted_secret(self, label: str, content: dict[str, str], relation: ops.Relation) -> str:
        try:
            secret = self._charm.model.get_secret(label=label)
            if secret.get_content(refresh=True) != content:
                secret.set_content(content)
        except ops.SecretNotFoundError:
            secret = self._charm.app.add_secret(content, label=label)
        secret.grant(relation)
        return secret.id or secret.get_info().id

    def unpublish(self, relation_id: int) -> None:
        """Leader only: take back what was published to a request no longer served."""
        relation = self._charm.model.get_relation(self._relation_name, relation_id)
        if relation is not None:
            _converge_databag(relation.data[self._charm.app], {}, PROVIDER_KEYS)

    def running_users(self, relation: ops.Relation) -> dict[str, str | None]:
        """Return unit name -> the user it reports running with (None: nothing valid)."""
        found: dict[str, str | None] = {}
        for unit in relation.units:
            try:
                value = relation.data[unit].get(RUNNING_USER_KEY)
            except ops.ModelError as exc:  # pragma: no cover - a unit departing mid-hook
                logger.info("cannot read %s on relation %s: %s", unit.name, relation.id, exc)
                value = None
            found[unit.name] = value if value and _USERNAME.fullmatch(value) else None
        return found

    def withdraw(self, relation_id: int) -> None:
        """Leader only: forget a departed client's secrets (its ACL is the charm's business)."""
        for label in (client_secret_label(relation_id), client_tls_secret_label(relation_id)):
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

    def request_data(self) -> dict[str, str]:
        """Return the application databag this requirer writes (valid against the v0 schema)."""
        return {
            "database": self._chroot,
            "requested-secrets": json.dumps(list(DEFAULT_REQUESTED_SECRETS)),
            "extra-user-roles": self._acl,
        }

    def request(self) -> None:
        """Leader only: ask for the chroot (writes only when the databag differs)."""
        relation = self.relation
        if relation is None or not self._charm.unit.is_leader():
            return
        _converge_databag(relation.data[self._charm.app], self.request_data(), ())

    def withdraw_request(self) -> None:
        """Leader only: take the request back (the provider then revokes this user)."""
        relation = self.relation
        if relation is None or not self._charm.unit.is_leader():
            return
        _converge_databag(relation.data[self._charm.app], {}, tuple(self.request_data()))

    def report_running_user(self, username: str | None) -> None:
        """Tell the provider which user this unit's running workload logged in with.

        Call it once the workload runs with the credentials of ``connection()`` (None: it runs
        with none). Writes only when the value differs.
        """
        relation = self.relation
        if relation is None:
            return
        databag = relation.data[self._charm.unit]
        if username is None:
            if RUNNING_USER_KEY in databag:
                del databag[RUNNING_USER_KEY]
        elif databag.get(RUNNING_USER_KEY) != username:
            databag[RUNNING_USER_KEY] = username

    def connection(self) -> ZooKeeperConnection | None:
        """Return the granted connection; None until the provider answered (correctly)."""
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        try:
            databag = dict(relation.data[relation.app])
            user_secret = self._secret_content(databag.get("secret-user", ""))
            tls_secret = self._secret_content(databag.get("secret-tls", ""))
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.info("zookeeper credentials not readable yet: %s", exc)
            return None
        return read_answer(self._chroot, databag, user_secret, tls_secret)

    def _secret_content(self, secret_id: str) -> dict[str, str]:
        if not secret_id:
            return {}
        return self._charm.model.get_secret(id=secret_id).get_content(refresh=True)


def _converge_databag(
    databag: ops.RelationDataContent, wanted: Mapping[str, str], owned: tuple[str, ...]
) -> None:
    """Write only the keys whose value differs and drop ``owned`` keys no longer wanted.

    An unchanged reconcile writes nothing.
    """
    for key, value in wanted.items():
        if databag.get(key) != value:
            databag[key] = value
    for key in owned:
        if key not in wanted and key in databag:
            del databag[key]
