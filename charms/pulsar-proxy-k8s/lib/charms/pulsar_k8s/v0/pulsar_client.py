"""The ``pulsar_client`` interface: an application asks pulsar-k8s for a namespace and a token.

The databags follow the data-platform conventions of Charmhub's ``kafka_client`` and
``dpcharmlibs-interfaces`` (the resource named in the requirer's bag and echoed back,
``extra-user-roles``, ``requested-secrets``, ``secret-user``/``secret-tls`` secret URIs,
``endpoints``, ``<resource>_created``/``*_changed`` events, ``status`` propagation), with the
resource being a Pulsar ``namespace``. The JSON schemas are ``interfaces/pulsar_client/v0/``.

Owned by pulsar-k8s (endpoint ``pulsar``, provides). A client charm copies this file and uses
:class:`PulsarClientRequirer` on each of its ``pulsar_client`` endpoints; an endpoint may hold
several relations (one per Pulsar cluster), and an application may declare several endpoints
to get several namespaces from one cluster::

    from charms.pulsar_k8s.v0.pulsar_client import PulsarClientRequirer

    class MyCharm(ops.CharmBase):
        def __init__(self, framework):
            super().__init__(framework)
            self.orders = PulsarClientRequirer(self, "orders", namespace="shop/orders")
            framework.observe(self.orders.on.namespace_created, self._on_pulsar)
            framework.observe(self.orders.on.endpoints_changed, self._on_pulsar)
            framework.observe(self.orders.on.token_changed, self._on_pulsar)
            framework.observe(self.orders.on.status_raised, self._on_pulsar)

        def _on_pulsar(self, event):
            connection = self.orders.connection(event.relation)  # None until served
            ...

Requirer application databag: ``namespace`` ("tenant/namespace"), ``extra-user-roles``
(comma-separated subset of ``produce``, ``consume``, ``functions``, ``admin``; default
``produce,consume``), ``requested-secrets`` (JSON list of the fields to deliver in Juju secrets;
it must name ``token``), and optionally ``functions``: a JSON list of Pulsar Function config
dicts (``tenant``, ``namespace``, ``name``, ``className``, ``inputs``, ``output``, ``logTopic``,
``parallelism``, ``userConfig``, ``processingGuarantees``, ``py`` inline code or ``py``/``jar``
a path inside the broker container, or ``code-secret``: the URI of a Juju secret the requirer
granted on the relation, whose ``code`` key holds the Python source), all in the relation's
namespace; the provider deploys them with the relation's role, updates them when they change
(a new revision of the code secret included) and removes them when they go. Any other field is
not understood and refused. ``PulsarClientRequirer(..., function_code={name: source})`` puts a
function's code in such a secret (one per relation, granted to it) and declares its URI.

Provider application databag: ``namespace``, ``endpoints`` (comma-separated ``host:port`` of the
broker service), ``broker-service-url``, ``web-service-url``, ``websocket-url``, ``tls``
(``disabled``) and ``secret-user``: the URI of a Juju secret granted to the relation whose
content is ``{"username": "relation-<id>", "token": "<JWT>"}``. When the request cannot be
served, ``status``: a JSON list of ``{"code", "message", "resolution"}`` (codes ``5xxx``: the
request must change; ``4xxx``: transient, the provider retries) and no credentials.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import ops

# The unique Charmhub library identifier, never change it.
LIBID = "006328e74cc343f89608d2e0243e920c"
# Increment this major API version when introducing breaking changes.
LIBAPI = 0
# Increment this PATCH version before using `charmcraft publish-lib` or reset to 0 if you are
# raising the major API version.
LIBPATCH = 6

logger = logging.getLogger(__name__)

INTERFACE = "pulsar_client"
DEFAULT_RELATION = "pulsar"
# Namespace actions a relation can ask for, plus ``admin`` (tenant admin role).
NAMESPACE_ACTIONS = ("produce", "consume", "functions")
PERMISSIONS = (*NAMESPACE_ACTIONS, "admin")
DEFAULT_PERMISSIONS = ("produce", "consume")

# Letters, digits, '_', '.', '-'; never only dots ("." and ".." are path segments in the URLs).
NAME_PATTERN = re.compile(r"^(?!\.+$)[A-Za-z0-9_.-]+$")

# Requirer keys
NAMESPACE_KEY = "namespace"
EXTRA_USER_ROLES_KEY = "extra-user-roles"
REQUESTED_SECRETS_KEY = "requested-secrets"
FUNCTIONS_KEY = "functions"
# A declared function's code in a Juju secret: the declaration field and the content key.
FUNCTION_CODE_SECRET_FIELD = "code-secret"
FUNCTION_CODE_KEY = "code"
REQUIRER_KEYS = (NAMESPACE_KEY, EXTRA_USER_ROLES_KEY, REQUESTED_SECRETS_KEY, FUNCTIONS_KEY)
# Provider keys
ENDPOINTS_KEY = "endpoints"
BROKER_SERVICE_URL_KEY = "broker-service-url"
WEB_SERVICE_URL_KEY = "web-service-url"
WEBSOCKET_URL_KEY = "websocket-url"
TLS_KEY = "tls"
STATUS_KEY = "status"
# Secret groups, as in the data-platform libraries: the databag holds ``secret-<group>``.
USER_GROUP = "user"
TLS_GROUP = "tls"
SECRET_GROUP_FIELDS = {USER_GROUP: ("username", "token"), TLS_GROUP: ("tls", "tls-ca")}
USERNAME_FIELD = "username"
TOKEN_FIELD = "token"
TLS_FIELD = "tls"
TLS_CA_FIELD = "tls-ca"
# LIBPATCH 6: the requirer asks for the TLS secret too (the CA once the brokers serve TLS).
REQUESTED_SECRETS = ("username", "token", TLS_FIELD, TLS_CA_FIELD)
PROVIDER_KEYS = (
    NAMESPACE_KEY,
    ENDPOINTS_KEY,
    BROKER_SERVICE_URL_KEY,
    WEB_SERVICE_URL_KEY,
    WEBSOCKET_URL_KEY,
    TLS_KEY,
    *(f"secret-{group}" for group in SECRET_GROUP_FIELDS),
    STATUS_KEY,
)
# Written by LIBPATCH 1 (before the data-platform conventions): cleared on every answer.
LEGACY_PROVIDER_KEYS = ("role", "secret-token", "error")
LEGACY_SECRET_LABEL_PREFIX = "pulsar-client-"


def secret_key(group: str) -> str:
    """Return the databag field holding the URI of a secret group: ``secret-<group>``."""
    return f"secret-{group}"


def validate_namespace(namespace: object) -> str | None:
    """Return why ``namespace`` is not ``tenant/namespace`` with safe names; None when valid."""
    if not isinstance(namespace, str):
        return "namespace must be a string 'tenant/namespace'"
    parts = namespace.split("/")
    if len(parts) != 2 or not all(NAME_PATTERN.fullmatch(part) for part in parts):
        return (
            f"namespace {namespace!r}: expected 'tenant/namespace', each part letters, digits, "
            "'_', '.', '-' (not only dots)"
        )
    return None


def validate_permissions(permissions: object) -> str | None:
    """Return why ``permissions`` is not a list of known permissions; None when valid."""
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        return "permissions must be a list of strings"
    unknown = sorted(set(permissions) - set(PERMISSIONS))
    if unknown:
        return f"unknown permissions {unknown}; allowed: {', '.join(PERMISSIONS)}"
    if not permissions:
        return f"permissions must not be empty; allowed: {', '.join(PERMISSIONS)}"
    return None


def parse_roles(text: str) -> list[str]:
    """Split an ``extra-user-roles`` value: comma-separated, blanks dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


# -- status propagation ------------------------------------------------------------------------


@dataclass(frozen=True)
class RelationStatus:
    """One status on the relation: 1xxx info, 4xxx transient, 5xxx the request must change."""

    code: int
    message: str
    resolution: str

    @property
    def is_transitory(self) -> bool:
        return self.code // 1000 == 4

    @property
    def is_fatal(self) -> bool:
        return self.code // 1000 == 5


def not_understood(fields: Iterable[str]) -> RelationStatus:
    names = ", ".join(sorted(fields))
    return RelationStatus(
        5001,
        f"request fields not understood by pulsar_client: {names}",
        "write a pulsar_client request: namespace ('tenant/namespace'), extra-user-roles, "
        "requested-secrets, functions",
    )


def invalid_namespace(problem: str) -> RelationStatus:
    return RelationStatus(5002, problem, "ask for a namespace 'tenant/namespace'")


def invalid_roles(problem: str) -> RelationStatus:
    return RelationStatus(
        5003, f"extra-user-roles: {problem}", f"use a subset of {','.join(PERMISSIONS)}"
    )


def secrets_not_requested() -> RelationStatus:
    return RelationStatus(
        5004,
        "the token is only delivered in a Juju secret and requested-secrets does not name it",
        'set requested-secrets to ["username", "token"]',
    )


def invalid_functions(problem: str) -> RelationStatus:
    return RelationStatus(
        5005,
        f"functions: {problem}",
        "declare a JSON list of function config dicts in this relation's namespace",
    )


def not_served_yet(problem: str) -> RelationStatus:
    return RelationStatus(4001, f"not served yet: {problem}", "none: the provider retries")


def _parse_statuses(raw: str | None) -> list[RelationStatus]:
    try:
        items = json.loads(raw or "[]")
        return [
            RelationStatus(int(i["code"]), str(i["message"]), str(i["resolution"])) for i in items
        ]
    except (ValueError, TypeError, KeyError):
        return [RelationStatus(5000, f"unreadable status field: {raw!r}", "none")]


# -- provider side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientRequest:
    """One relation's request as the provider reads it; ``error`` set when it is refused."""

    relation_id: int
    app_name: str
    namespace: str = ""
    permissions: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ()
    error: RelationStatus | None = None
    # The declared functions' config dicts, shape-checked only (the provider validates fields).
    functions: tuple[dict, ...] = field(default=(), hash=False, compare=False)

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

    def wants_secret(self, group: str) -> bool:
        """Whether the requirer asked for any field of ``group`` as a secret."""
        return any(name in self.secret_fields for name in SECRET_GROUP_FIELDS[group])


@dataclass(frozen=True)
class Endpoints:
    """The URLs the provider publishes to every client."""

    broker_service_url: str
    web_service_url: str
    websocket_url: str
    # LIBPATCH 6: the CA chain (PEM) when the URLs are TLS ones (pulsar+ssl, https, wss).
    tls_ca: str = ""

    @property
    def hosts(self) -> str:
        """``host:port`` of the broker service URL (the data-platform ``endpoints`` field)."""
        return self.broker_service_url.split("://", 1)[-1]


def read_request(relation_id: int, app_name: str, data: dict[str, str]) -> ClientRequest | None:
    """Parse a requirer databag; None while nothing is asked yet. Pure, never raises."""
    unknown = set(data) - set(REQUIRER_KEYS)
    if unknown:
        return ClientRequest(relation_id, app_name, error=not_understood(unknown))
    namespace = data.get(NAMESPACE_KEY)
    if not namespace:
        return None
    problem = validate_namespace(namespace)
    if problem:
        return ClientRequest(relation_id, app_name, namespace, error=invalid_namespace(problem))
    raw_roles = data.get(EXTRA_USER_ROLES_KEY)
    roles = parse_roles(raw_roles) if raw_roles is not None else list(DEFAULT_PERMISSIONS)
    problem = validate_permissions(roles)
    if problem:
        return ClientRequest(relation_id, app_name, namespace, error=invalid_roles(problem))
    try:
        requested = json.loads(data.get(REQUESTED_SECRETS_KEY) or "[]")
    except ValueError:
        requested = None
    if not isinstance(requested, list) or TOKEN_FIELD not in requested:
        return ClientRequest(relation_id, app_name, namespace, error=secrets_not_requested())
    ordered = tuple(p for p in PERMISSIONS if p in roles)
    fields = tuple(str(name) for name in requested)
    functions = _parse_functions(data.get(FUNCTIONS_KEY))
    if isinstance(functions, RelationStatus):
        return ClientRequest(relation_id, app_name, namespace, error=functions)
    return ClientRequest(relation_id, app_name, namespace, ordered, fields, None, functions)


def _parse_functions(raw: str | None) -> tuple[dict, ...] | RelationStatus:
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        return invalid_functions("is not JSON")
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return invalid_functions("must be a JSON list of objects")
    return tuple(value)


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
        requests = [self.request(relation) for relation in self.relations if relation.app]
        return [request for request in requests if request is not None]

    def request(self, relation: ops.Relation) -> ClientRequest | None:
        app = relation.app
        data = dict(relation.data[app]) if app else {}
        return read_request(relation.id, app.name if app else "", data)

    def secret_label(self, relation_id: int, group: str = USER_GROUP) -> str:
        """Return the label of a relation's secret: ``<endpoint>.<id>.<group>.secret``."""
        return f"{self._relation_name}.{relation_id}.{group}.secret"

    def stored_token(self, relation_id: int) -> str | None:
        """Return the token already published for a relation (its app-owned secret), if any."""
        content = self._content(relation_id, USER_GROUP)
        return content.get(TOKEN_FIELD) if content else None

    def publish(
        self, relation: ops.Relation, endpoints: Endpoints, request: ClientRequest, token: str
    ) -> None:
        """Leader: write the answer, the token in a per-relation secret granted to the app."""
        user = self._publish_secret(
            relation, USER_GROUP, {USERNAME_FIELD: request.role, TOKEN_FIELD: token}
        )
        tls_values = {TLS_KEY: "disabled"}
        tls_secret = ""
        if endpoints.tls_ca:
            tls_values = {TLS_KEY: "enabled", TLS_CA_FIELD: endpoints.tls_ca}
        if request.wants_secret(TLS_GROUP):
            tls_secret, tls_values = self._publish_secret(relation, TLS_GROUP, tls_values), {}
        else:
            self._remove_secret(relation.id, TLS_GROUP)
        self._remove_legacy_secret(relation.id)
        self._update(
            relation,
            {
                NAMESPACE_KEY: request.namespace,
                ENDPOINTS_KEY: endpoints.hosts,
                BROKER_SERVICE_URL_KEY: endpoints.broker_service_url,
                WEB_SERVICE_URL_KEY: endpoints.web_service_url,
                WEBSOCKET_URL_KEY: endpoints.websocket_url,
                TLS_KEY: tls_values.get(TLS_KEY, ""),
                secret_key(USER_GROUP): user,
                secret_key(TLS_GROUP): tls_secret,
                STATUS_KEY: "",
            },
        )

    def publish_error(self, relation: ops.Relation, status: RelationStatus) -> None:
        """Leader: refuse the request on the relation (no credentials stay published)."""
        for group in SECRET_GROUP_FIELDS:
            self._remove_secret(relation.id, group)
        self._remove_legacy_secret(relation.id)
        cleared = {key: "" for key in PROVIDER_KEYS}
        self._update(relation, cleared | {STATUS_KEY: json.dumps([asdict(status)])})

    def report(self, relation: ops.Relation, status: RelationStatus | None) -> None:
        """Leader: raise a transient status next to the answer (None clears it)."""
        self._update(relation, {STATUS_KEY: json.dumps([asdict(status)]) if status else ""})

    def withdraw(self, relation_id: int, relation: ops.Relation | None = None) -> None:
        """Leader: remove a relation's secrets (and its answer, while the relation exists)."""
        for group in SECRET_GROUP_FIELDS:
            self._remove_secret(relation_id, group)
        self._remove_legacy_secret(relation_id)
        if relation is not None:
            self._update(relation, {key: "" for key in PROVIDER_KEYS})

    def _publish_secret(self, relation: ops.Relation, group: str, content: dict[str, str]) -> str:
        secret = self._secret(relation.id, group)
        if secret is None:
            secret = self._charm.app.add_secret(
                content,
                label=self.secret_label(relation.id, group),
                description=f"pulsar_client {group} secret of relation {relation.id}",
            )
        elif self._content(relation.id, group) != content:
            secret.set_content(content)
        secret.grant(relation)
        return secret.id or secret.get_info().id or ""

    def _remove_legacy_secret(self, relation_id: int) -> None:
        try:
            secret = self._charm.model.get_secret(
                label=f"{LEGACY_SECRET_LABEL_PREFIX}{relation_id}"
            )
        except (ops.SecretNotFoundError, ops.ModelError):
            return
        self._remove(secret, relation_id)

    def _remove_secret(self, relation_id: int, group: str) -> None:
        secret = self._secret(relation_id, group)
        if secret is None:
            return
        self._remove(secret, relation_id)

    @staticmethod
    def _remove(secret: ops.Secret, relation_id: int) -> None:
        try:
            secret.remove_all_revisions()
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.warning("could not remove secret of relation %s: %s", relation_id, exc)

    def _content(self, relation_id: int, group: str) -> dict[str, str] | None:
        secret = self._secret(relation_id, group)
        if secret is None:
            return None
        try:
            return secret.get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def _secret(self, relation_id: int, group: str) -> ops.Secret | None:
        try:
            return self._charm.model.get_secret(label=self.secret_label(relation_id, group))
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def _update(self, relation: ops.Relation, values: dict[str, str]) -> None:
        data = relation.data[self._charm.app]
        values = {key: "" for key in LEGACY_PROVIDER_KEYS} | values
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

    relation_id: int
    broker_service_url: str
    web_service_url: str
    websocket_url: str
    endpoints: str
    namespace: str
    role: str
    token: str = field(repr=False)
    # LIBPATCH 6: whether the URLs are TLS ones, and the CA (PEM) to trust for them.
    tls: bool = False
    tls_ca: str = ""

    @property
    def tenant(self) -> str:
        return self.namespace.split("/", 1)[0]


class PulsarClientEvent(ops.RelationEvent):
    """Base of the requirer's events; read the data with ``PulsarClientRequirer.connection()``."""


class NamespaceCreatedEvent(PulsarClientEvent):
    """The namespace exists, the permissions are granted and a token is available."""


class EndpointsChangedEvent(PulsarClientEvent):
    """The broker service, web service or WebSocket URL changed."""


class TokenChangedEvent(PulsarClientEvent):
    """The token changed (for example after the broker's signing key was rotated)."""


class StatusRaisedEvent(PulsarClientEvent):
    """The provider raised a status (``requirer.statuses(event.relation)`` lists them)."""


class StatusResolvedEvent(PulsarClientEvent):
    """A status the provider had raised is gone."""


class PulsarClientRequirerEvents(ops.ObjectEvents):
    namespace_created = ops.EventSource(NamespaceCreatedEvent)
    endpoints_changed = ops.EventSource(EndpointsChangedEvent)
    token_changed = ops.EventSource(TokenChangedEvent)
    status_raised = ops.EventSource(StatusRaisedEvent)
    status_resolved = ops.EventSource(StatusResolvedEvent)


class PulsarClientRequirer(ops.Object):
    """Asks every relation of one endpoint for a namespace; emits events as answers change."""

    on = PulsarClientRequirerEvents()  # pyright: ignore[reportAssignmentType]
    _state = ops.StoredState()

    def __init__(
        self,
        charm: ops.CharmBase,
        relation_name: str = DEFAULT_RELATION,
        *,
        namespace: str,
        extra_user_roles: Iterable[str] = DEFAULT_PERMISSIONS,
        functions: Iterable[dict] = (),
        function_code: Mapping[str, str] | None = None,
    ):
        """Ask for ``namespace``; declare ``functions`` (code named in ``function_code``).

        ``function_code`` maps a function name to its Python source, shared in a Juju secret
        granted to each relation (the declaration's ``code-secret``) instead of inline ``py``.
        """
        super().__init__(charm, relation_name)
        self._charm = charm
        self._relation_name = relation_name
        self.namespace = namespace
        self._roles = list(extra_user_roles)
        self._functions = [dict(f) for f in functions]
        self._function_code = dict(function_code or {})
        problem = validate_namespace(namespace) or validate_permissions(self._roles)
        if problem:
            raise ValueError(problem)  # a bug in the client charm, not a runtime condition
        # {relation id: JSON of what the last events were about}; digests, never the token.
        self._state.set_default(seen={})
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
    def relations(self) -> list[ops.Relation]:
        return list(self._charm.model.relations.get(self._relation_name, []))

    @property
    def relation(self) -> ops.Relation | None:
        """The first relation of the endpoint (most clients relate to one Pulsar cluster)."""
        relations = self.relations
        return relations[0] if relations else None

    def request(self) -> None:
        """Leader: write the request into every relation's app databag (only when it differs)."""
        if not self._charm.unit.is_leader():
            return
        wanted = {
            NAMESPACE_KEY: self.namespace,
            EXTRA_USER_ROLES_KEY: ",".join(self._roles),
            REQUESTED_SECRETS_KEY: json.dumps(list(REQUESTED_SECRETS)),
        }
        for relation in self.relations:
            functions = self._declared_functions(relation)
            wanted[FUNCTIONS_KEY] = json.dumps(functions, sort_keys=True) if functions else ""
            data = relation.data[self._charm.app]
            for key, value in wanted.items():
                if data.get(key, "") != value:
                    data[key] = value

    def code_secret_label(self, relation_id: int, name: str) -> str:
        """Return the label of the secret holding function ``name``'s code on a relation."""
        return f"{self._relation_name}.{relation_id}.function-{name}.code"

    def _declared_functions(self, relation: ops.Relation) -> list[dict]:
        """Return one relation's declarations, ``function_code`` moved into secrets."""
        declared: list[dict] = []
        for function in self._functions:
            name = str(function.get("name", ""))
            code = self._function_code.get(name)
            if code is None:
                declared.append(function)
                continue
            uri = self._share_code(relation, name, code)
            rest = {k: v for k, v in function.items() if k not in ("py", "jar")}
            declared.append({**rest, FUNCTION_CODE_SECRET_FIELD: uri})
        return declared

    def _share_code(self, relation: ops.Relation, name: str, code: str) -> str:
        """Leader: the URI of the app-owned secret holding ``code``, granted to ``relation``."""
        label = self.code_secret_label(relation.id, name)
        content = {FUNCTION_CODE_KEY: code}
        try:
            secret = self._charm.model.get_secret(label=label)
            if secret.peek_content() != content:
                secret.set_content(content)  # a new revision: the provider updates the function
        except ops.SecretNotFoundError:
            secret = self._charm.app.add_secret(
                content, label=label, description=f"code of Pulsar Function {name}"
            )
            secret.grant(relation)
        return secret.id or secret.get_info().id or ""

    def _remove_code_secrets(self, relation_id: int) -> None:
        """Leader: remove a gone relation's code secrets."""
        if not self._charm.unit.is_leader():
            return
        for name in self._function_code:
            try:
                secret = self._charm.model.get_secret(
                    label=self.code_secret_label(relation_id, name)
                )
                secret.remove_all_revisions()
            except ops.SecretNotFoundError:
                continue
            except ops.ModelError as exc:
                logger.warning("could not remove the code secret of %s: %s", name, exc)

    def statuses(self, relation: ops.Relation | None = None) -> list[RelationStatus]:
        """Return the statuses the provider raised on the relation (default: the first)."""
        relation = relation or self.relation
        if relation is None or relation.app is None:
            return []
        return _parse_statuses(relation.data[relation.app].get(STATUS_KEY))

    def error(self, relation: ops.Relation | None = None) -> str | None:
        """Why the provider refuses or does not serve the request yet, if it says so."""
        statuses = self.statuses(relation)
        if not statuses:
            return None
        return "; ".join(f"{s.message} ({s.resolution})" for s in statuses)

    def connection(self, relation: ops.Relation | None = None) -> PulsarConnection | None:
        """Return the published connection (default: first relation); None until complete."""
        relation = relation or self.relation
        if relation is None or relation.app is None:
            return None
        data = relation.data[relation.app]
        keys = (
            BROKER_SERVICE_URL_KEY,
            WEB_SERVICE_URL_KEY,
            WEBSOCKET_URL_KEY,
            ENDPOINTS_KEY,
            NAMESPACE_KEY,
            secret_key(USER_GROUP),
        )
        values = [data.get(key, "") for key in keys]
        if not all(values):
            return None
        broker, web, websocket, endpoints, namespace, secret_id = values
        try:
            content = self._charm.model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None
        role, token = content.get(USERNAME_FIELD, ""), content.get(TOKEN_FIELD, "")
        if not (role and token):
            return None
        tls = {TLS_FIELD: data.get(TLS_KEY, "")}
        tls_secret_id = data.get(secret_key(TLS_GROUP), "")
        if tls_secret_id:
            try:
                tls = self._charm.model.get_secret(id=tls_secret_id).get_content(refresh=True)
            except (ops.SecretNotFoundError, ops.ModelError):
                return None
        enabled = tls.get(TLS_FIELD, "") == "enabled"
        ca = tls.get(TLS_CA_FIELD, "") if enabled else ""
        if enabled and not ca:
            return None  # TLS URLs are useless without the CA to trust
        return PulsarConnection(
            relation.id, broker, web, websocket, endpoints, namespace, role, token, enabled, ca
        )

    def connections(self) -> dict[int, PulsarConnection]:
        """Every served relation's connection, by relation id."""
        found = {r.id: self.connection(r) for r in self.relations}
        return {rid: connection for rid, connection in found.items() if connection}

    def _on_change(self, event: ops.EventBase) -> None:
        self.request()
        broken = event.relation.id if isinstance(event, ops.RelationBrokenEvent) else None
        if broken is not None:
            self._remove_code_secrets(broken)
        seen = dict(self._state.seen)
        live = {r.id: r for r in self.relations if r.id != broken}
        for relation_id in [rid for rid in seen if int(rid) not in live]:
            del seen[relation_id]
        for relation in live.values():
            seen[str(relation.id)] = self._emit_changes(relation, seen.get(str(relation.id)))
        self._state.seen = seen

    def _emit_changes(self, relation: ops.Relation, before_json: str | None) -> str:
        before = json.loads(before_json) if before_json else {}
        codes = sorted(s.code for s in self.statuses(relation))
        if set(codes) - set(before.get("codes", [])):
            self.on.status_raised.emit(relation)
        if set(before.get("codes", [])) - set(codes):
            self.on.status_resolved.emit(relation)
        now: dict[str, object] = {"codes": codes}
        connection = self.connection(relation)
        if connection is not None:
            # Digests, so the unit-local state never holds the token itself.
            now["namespace"] = connection.namespace
            now["endpoints"] = _digest(
                connection.broker_service_url,
                connection.web_service_url,
                connection.websocket_url,
                connection.tls_ca,
            )
            now["token"] = _digest(connection.token)
            if before.get("namespace") != connection.namespace:
                self.on.namespace_created.emit(relation)
            else:
                if before.get("endpoints") != now["endpoints"]:
                    self.on.endpoints_changed.emit(relation)
                if before.get("token") != now["token"]:
                    self.on.token_changed.emit(relation)
        return json.dumps(now, sort_keys=True)


def _digest(*texts: str) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()
