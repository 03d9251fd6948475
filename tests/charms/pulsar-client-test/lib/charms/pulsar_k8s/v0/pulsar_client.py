"""The ``pulsar_client`` interface: an application asks pulsar-k8s for a namespace and a token.

Owned by pulsar-k8s (endpoint ``pulsar``, provides). A client charm copies this file and uses
:class:`PulsarClientRequirer`::

    from charms.pulsar_k8s.v0.pulsar_client import PulsarClientRequirer

    class MyCharm(ops.CharmBase):
        def __init__(self, framework):
            super().__init__(framework)
            self.pulsar = PulsarClientRequirer(
                self, "pulsar", namespace="my-tenant/orders", permissions=("produce", "consume")
            )
            framework.observe(self.pulsar.on.namespace_ready, self._on_pulsar)
            framework.observe(self.pulsar.on.endpoints_changed, self._on_pulsar)
            framework.observe(self.pulsar.on.token_rotated, self._on_pulsar)

        def _on_pulsar(self, _):
            connection = self.pulsar.connection()  # None until the broker has answered
            ...

Databags (application level only; nothing secret in plain relation data):

requirer app: ``namespace`` ("tenant/namespace", optional: default ``<app>/default``),
``permissions`` (JSON list, a subset of ``produce``, ``consume``, ``functions``, ``admin``;
``admin`` makes the relation's role an admin of the tenant).

provider app: ``broker-service-url`` (pulsar://...:6650), ``web-service-url`` (http://...:8080),
``websocket-url`` (ws://...:8080/ws/v2), ``namespace``, ``role``, ``secret-token`` (the id of a
Juju secret, granted to the relation, whose content is ``{"token": "<JWT>"}``); or ``error``
(why the request cannot be served) instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import ops

# The unique Charmhub library identifier, never change it.
LIBID = "006328e74cc343f89608d2e0243e920c"
# Increment this major API version when introducing breaking changes.
LIBAPI = 0
# Increment this PATCH version before using `charmcraft publish-lib` or reset to 0 if you are
# raising the major API version.
LIBPATCH = 1

logger = logging.getLogger(__name__)

INTERFACE = "pulsar_client"
DEFAULT_RELATION = "pulsar"
# Namespace actions a relation can ask for, plus ``admin`` (tenant admin role).
NAMESPACE_ACTIONS = ("produce", "consume", "functions")
PERMISSIONS = (*NAMESPACE_ACTIONS, "admin")
DEFAULT_PERMISSIONS = ("produce", "consume")
SECRET_LABEL_PREFIX = "pulsar-client-"

# Letters, digits, '_', '.', '-'; never only dots ("." and ".." are path segments in the URLs).
NAME_PATTERN = re.compile(r"^(?!\.+$)[A-Za-z0-9_.-]+$")

# Requirer keys
NAMESPACE_KEY = "namespace"
PERMISSIONS_KEY = "permissions"
# Provider keys
BROKER_SERVICE_URL_KEY = "broker-service-url"
WEB_SERVICE_URL_KEY = "web-service-url"
WEBSOCKET_URL_KEY = "websocket-url"
ROLE_KEY = "role"
SECRET_TOKEN_KEY = "secret-token"
ERROR_KEY = "error"
PROVIDER_KEYS = (
    BROKER_SERVICE_URL_KEY,
    WEB_SERVICE_URL_KEY,
    WEBSOCKET_URL_KEY,
    NAMESPACE_KEY,
    ROLE_KEY,
    SECRET_TOKEN_KEY,
    ERROR_KEY,
)


def default_namespace(app_name: str) -> str:
    """Return the namespace asked for when the requirer names none: ``<app>/default``."""
    return f"{app_name}/default"


def validate_namespace(namespace: object) -> str | None:
    """Return why ``namespace`` is not ``tenant/namespace`` with safe names; None when valid."""
    if not isinstance(namespace, str):
        return "namespace must be a string 'tenant/namespace'"
    parts = namespace.split("/")
    if len(parts) != 2 or not all(NAME_PATTERN.match(part) for part in parts):
        return (
            f"namespace {namespace!r}: expected 'tenant/namespace', each part letters, digits, "
            "'_', '.', '-' (not only dots)"
        )
    return None


def validate_permissions(permissions: object) -> str | None:
    """Return why ``permissions`` is not a list of known permissions; None when valid."""
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        return "permissions must be a JSON list of strings"
    unknown = sorted(set(permissions) - set(PERMISSIONS))
    if unknown:
        return f"unknown permissions {unknown}; allowed: {', '.join(PERMISSIONS)}"
    if not permissions:
        return f"permissions must not be empty; allowed: {', '.join(PERMISSIONS)}"
    return None


# -- provider side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientRequest:
    """One relation's request as the provider reads it; ``error`` set when it is invalid."""

    relation_id: int
    app_name: str
    namespace: str = ""
    permissions: tuple[str, ...] = ()
    error: str | None = None

    @property
    def role(self) -> str:
        """The Pulsar role of this relation: ``relation-<id>``."""
        return f"relation-{self.relation_id}"

    @property
    def tenant(self) -> str:
        return self.namespace.split("/", 1)[0]

    @property
    def actions(self) -> tuple[str, ...]:
        """The namespace actions to grant (``admin`` is a tenant role, not an action)."""
        return tuple(p for p in self.permissions if p in NAMESPACE_ACTIONS)

    @property
    def tenant_admin(self) -> bool:
        return "admin" in self.permissions


@dataclass(frozen=True)
class Endpoints:
    """The URLs the provider publishes to every client."""

    broker_service_url: str
    web_service_url: str
    websocket_url: str


class PulsarClientProvider:
    """Reads client requests and publishes answers (leader only); never raises on bad data."""

    def __init__(self, charm: ops.CharmBase, relation_name: str = DEFAULT_RELATION):
        self._charm = charm
        self._relation_name = relation_name

    @property
    def relations(self) -> list[ops.Relation]:
        return list(self._charm.model.relations.get(self._relation_name, []))

    def requests(self) -> list[ClientRequest]:
        """Every related application's request, valid or not (``error`` explains)."""
        return [self.request(relation) for relation in self.relations if relation.app]

    def request(self, relation: ops.Relation) -> ClientRequest:
        app = relation.app
        app_name = app.name if app else ""
        data = relation.data[app] if app else {}
        namespace = data.get(NAMESPACE_KEY) or default_namespace(app_name)
        raw = data.get(PERMISSIONS_KEY)
        if raw is None:
            permissions: object = list(DEFAULT_PERMISSIONS)
        else:
            try:
                permissions = json.loads(raw)
            except ValueError:
                permissions = None
        error = validate_namespace(namespace) or validate_permissions(permissions)
        if error:
            return ClientRequest(relation.id, app_name, str(namespace), (), error)
        assert isinstance(permissions, list)
        ordered = tuple(p for p in PERMISSIONS if p in permissions)
        return ClientRequest(relation.id, app_name, namespace, ordered)

    @staticmethod
    def secret_label(relation_id: int) -> str:
        return f"{SECRET_LABEL_PREFIX}{relation_id}"

    def stored_token(self, relation_id: int) -> str | None:
        """Return the token already published for a relation (its app-owned secret), if any."""
        secret = self._secret(relation_id)
        if secret is None:
            return None
        try:
            return secret.get_content(refresh=True).get("token")
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def publish(
        self, relation: ops.Relation, endpoints: Endpoints, request: ClientRequest, token: str
    ) -> None:
        """Leader: write the answer, the token in a per-relation secret granted to the app."""
        content = {"token": token}
        secret = self._secret(relation.id)
        if secret is None:
            secret = self._charm.app.add_secret(
                content,
                label=self.secret_label(relation.id),
                description=f"Pulsar token of role {request.role} for {request.app_name}",
            )
        elif self.stored_token(relation.id) != token:
            secret.set_content(content)
        secret.grant(relation)
        secret_id = secret.id or secret.get_info().id
        self._update(
            relation,
            {
                BROKER_SERVICE_URL_KEY: endpoints.broker_service_url,
                WEB_SERVICE_URL_KEY: endpoints.web_service_url,
                WEBSOCKET_URL_KEY: endpoints.websocket_url,
                NAMESPACE_KEY: request.namespace,
                ROLE_KEY: request.role,
                SECRET_TOKEN_KEY: secret_id,
                ERROR_KEY: "",
            },
        )

    def publish_error(self, relation: ops.Relation, error: str) -> None:
        """Leader: tell the requirer why its request is not served (no credentials)."""
        self._update(relation, {key: "" for key in PROVIDER_KEYS} | {ERROR_KEY: error})

    def withdraw(self, relation_id: int, relation: ops.Relation | None = None) -> None:
        """Leader: remove a relation's secret (and its answer, while the relation exists)."""
        secret = self._secret(relation_id)
        if secret is not None:
            try:
                secret.remove_all_revisions()
            except (ops.SecretNotFoundError, ops.ModelError) as exc:
                logger.warning("could not remove secret of relation %s: %s", relation_id, exc)
        if relation is not None:
            self._update(relation, {key: "" for key in PROVIDER_KEYS})

    def _secret(self, relation_id: int) -> ops.Secret | None:
        try:
            return self._charm.model.get_secret(label=self.secret_label(relation_id))
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def _update(self, relation: ops.Relation, values: dict[str, str]) -> None:
        data = relation.data[self._charm.app]
        for key, value in values.items():
            if value:
                if data.get(key) != value:
                    data[key] = value
            elif key in data:
                del data[key]


# -- requirer side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PulsarConnection:
    """What a client needs to connect; ``token`` is a secret: do not log it."""

    broker_service_url: str
    web_service_url: str
    websocket_url: str
    namespace: str
    role: str
    token: str = field(repr=False)

    @property
    def tenant(self) -> str:
        return self.namespace.split("/", 1)[0]


class PulsarClientEvent(ops.RelationEvent):
    """Base of the requirer's events; read the data with ``PulsarClientRequirer.connection()``."""


class NamespaceReadyEvent(PulsarClientEvent):
    """The namespace exists, the permissions are granted and a token is available."""


class EndpointsChangedEvent(PulsarClientEvent):
    """The broker service, web service or WebSocket URL changed."""


class TokenRotatedEvent(PulsarClientEvent):
    """The token changed (for example after the broker's signing key was rotated)."""


class PulsarClientRequirerEvents(ops.ObjectEvents):
    namespace_ready = ops.EventSource(NamespaceReadyEvent)
    endpoints_changed = ops.EventSource(EndpointsChangedEvent)
    token_rotated = ops.EventSource(TokenRotatedEvent)


class PulsarClientRequirer(ops.Object):
    """Asks for a namespace and permissions; emits events when the answer changes."""

    on = PulsarClientRequirerEvents()  # pyright: ignore[reportAssignmentType]
    _state = ops.StoredState()

    def __init__(
        self,
        charm: ops.CharmBase,
        relation_name: str = DEFAULT_RELATION,
        namespace: str | None = None,
        permissions: Iterable[str] = DEFAULT_PERMISSIONS,
    ):
        super().__init__(charm, relation_name)
        self._charm = charm
        self._relation_name = relation_name
        self._namespace = namespace
        self._permissions = list(permissions)
        problem = (
            validate_namespace(namespace) if namespace is not None else None
        ) or validate_permissions(self._permissions)
        if problem:
            raise ValueError(problem)  # a bug in the client charm, not a runtime condition
        self._state.set_default(namespace="", endpoints="", token="")
        for event in (
            charm.on[relation_name].relation_created,
            charm.on[relation_name].relation_joined,
            charm.on[relation_name].relation_changed,
            charm.on[relation_name].relation_broken,
            charm.on.leader_elected,
            charm.on.upgrade_charm,
            charm.on.secret_changed,
        ):
            self.framework.observe(event, self._on_change)

    @property
    def relation(self) -> ops.Relation | None:
        return self._charm.model.get_relation(self._relation_name)

    @property
    def namespace(self) -> str:
        return self._namespace or default_namespace(self._charm.app.name)

    def request(self) -> None:
        """Leader: write the request into the application databag (only when it differs)."""
        relation = self.relation
        if relation is None or not self._charm.unit.is_leader():
            return
        data = relation.data[self._charm.app]
        wanted = {
            NAMESPACE_KEY: self.namespace,
            PERMISSIONS_KEY: json.dumps(self._permissions),
        }
        for key, value in wanted.items():
            if data.get(key) != value:
                data[key] = value

    def error(self) -> str | None:
        """Why the provider refused the request, if it did."""
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        return relation.data[relation.app].get(ERROR_KEY) or None

    def connection(self) -> PulsarConnection | None:
        """Return the published connection; None while anything (token included) is missing."""
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        data = relation.data[relation.app]
        values = [
            data.get(key, "")
            for key in (
                BROKER_SERVICE_URL_KEY,
                WEB_SERVICE_URL_KEY,
                WEBSOCKET_URL_KEY,
                NAMESPACE_KEY,
                ROLE_KEY,
                SECRET_TOKEN_KEY,
            )
        ]
        if not all(values):
            return None
        broker, web, websocket, namespace, role, secret_id = values
        try:
            secret = self._charm.model.get_secret(id=secret_id)
            token = secret.get_content(refresh=True).get("token", "")
        except (ops.SecretNotFoundError, ops.ModelError):
            return None
        if not token:
            return None
        return PulsarConnection(broker, web, websocket, namespace, role, token)

    def _on_change(self, event: ops.EventBase) -> None:
        self.request()
        relation = self.relation
        if relation is None or isinstance(event, ops.RelationBrokenEvent):
            self._state.namespace = self._state.endpoints = self._state.token = ""
            return
        connection = self.connection()
        if connection is None:
            return
        endpoints = json.dumps(
            [
                connection.broker_service_url,
                connection.web_service_url,
                connection.websocket_url,
            ]
        )
        # Compare a digest, so the unit-local state never holds the token itself.
        token_digest = _digest(connection.token)
        first = self._state.token == ""
        if self._state.namespace != connection.namespace or first:
            self._state.namespace = connection.namespace
            self._state.endpoints = endpoints
            self._state.token = token_digest
            self.on.namespace_ready.emit(relation)
            return
        if self._state.endpoints != endpoints:
            self._state.endpoints = endpoints
            self.on.endpoints_changed.emit(relation)
        if self._state.token != token_digest:
            self._state.token = token_digest
            self.on.token_rotated.emit(relation)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
