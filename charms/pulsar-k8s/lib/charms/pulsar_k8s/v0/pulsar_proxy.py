"""The ``pulsar_proxy`` interface: pulsar-k8s tells Pulsar proxies how to reach its brokers.

Owned by pulsar-k8s (endpoint ``pulsar-proxy``, provides); pulsar-proxy-k8s copies this file
and requires it (endpoint ``pulsar-proxy``, limit 1). The contract is documented in
``interfaces/pulsar_proxy/README.md`` and its JSON schemas in ``interfaces/pulsar_proxy/v0/``.

Provider application databag (the broker leader writes it once the brokers serve):

- ``cluster-name``: the Pulsar cluster name;
- ``broker-service-url``: ``pulsar://<brokers' Service>:6650`` (the proxy's
  ``brokerServiceURL``: lookups and the binary protocol);
- ``web-service-url``: ``http://<brokers' Service>:8080`` (``brokerWebServiceURL``: admin
  and HTTP lookups);
- ``metadata-store``: ``zk:h1:2181,h2:2181/<chroot>``, the brokers' configuration metadata
  store: the proxy reads tenant and namespace policies there to authorize clients itself
  (binary protocol and WebSocket) before the brokers authorize them again;
- ``secret-proxy``: the URI of a Juju secret granted to the relation, whose content is
  ``token`` (a JWT for the proxy role :data:`PROXY_ROLE`, in the brokers' ``proxyRoles``),
  ``token-key`` (the base64 HS256 key client tokens are verified with), and
  ``zookeeper-username``/``zookeeper-password`` (the ZooKeeper identity the brokers use, for
  the read-only policy lookups).

With ZooKeeper TLS on (LIBPATCH 3), ``metadata-store`` names the secure port and
``zookeeper-tls-ca`` holds the CA chain (PEM, public) the proxy's ZooKeeper client trusts;
absent or empty: plain text.

With the brokers' TLS on (LIBPATCH 4), the provider also publishes ``broker-service-url-tls``
(``pulsar+ssl://<brokers' Service>:6651``), ``web-service-url-tls``
(``https://<brokers' Service>:8443``) and ``tls-ca``, the PEM CA chain the brokers'
certificates are checked against (public): the proxy then talks TLS to the brokers
(``tlsEnabledWithBroker``), which works with the brokers' plain-text port closed. All three or
none; absent or empty: the brokers serve plain text only.

Client relations served through the proxy (LIBPATCH 2). The proxy serves the ``pulsar``
client endpoint (interface ``pulsar_client``) but only the brokers create namespaces and mint
tokens, so the proxy leader forwards every client relation's request and relays the answers:

- requirer (proxy) application databag, ``client-requests``: a JSON object
  ``{"<client relation id>": {"namespace", "extra-user-roles", "requested-secrets"}}``, the
  ``pulsar_client`` request fields the proxy validated (functions are not forwarded);
- provider (brokers) application databag, ``client-answers``: a JSON object
  ``{"<client relation id>": {"namespace", "secret-user", "status"}}``: the namespace served,
  the URI of a Juju secret granted to the relation holding ``username`` (the role
  ``proxy-<relation id>-relation-<client relation id>``) and ``token``, and the
  ``pulsar_client`` status list when the request is refused or not served yet.

The brokers serve a forwarded request with the same code as a direct client relation's. The
requirer used to write nothing. Everything read is validated (:class:`InvalidField` names the
relation, or the secret, and the field); secret values never reach a log line.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import asdict, dataclass, field, fields

import ops
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.pulsar_client import (
    EXTRA_USER_ROLES_KEY,
    NAMESPACE_KEY,
    REQUESTED_SECRETS_KEY,
    USERNAME_FIELD,
    ClientRequest,
    RelationStatus,
    read_request,
    validate_namespace,
)
from charms.pulsar_k8s.v0.pulsar_client import TOKEN_FIELD as CLIENT_TOKEN_FIELD
from charms.pulsar_k8s.v0.validation import (
    InvalidField,
    parse_credential,
    parse_host_port,
    parse_host_ports,
    parse_username,
    parse_znode_path,
)

LIBID = "5b1f0e3c9a7d4c2e8f6a1b3d5c7e9f02"
LIBAPI = 0
LIBPATCH = 4

logger = logging.getLogger(__name__)

RELATION = "pulsar-proxy"
PROXY_ROLE = "pulsar-proxy"
CLUSTER_NAME_KEY = "cluster-name"
BROKER_SERVICE_URL_KEY = "broker-service-url"
WEB_SERVICE_URL_KEY = "web-service-url"
METADATA_STORE_KEY = "metadata-store"
SECRET_KEY = "secret-proxy"
PROVIDER_KEYS = (
    CLUSTER_NAME_KEY,
    BROKER_SERVICE_URL_KEY,
    WEB_SERVICE_URL_KEY,
    METADATA_STORE_KEY,
    SECRET_KEY,
)
TOKEN_FIELD = "token"
TOKEN_KEY_FIELD = "token-key"
ZOOKEEPER_USERNAME_FIELD = "zookeeper-username"
ZOOKEEPER_PASSWORD_FIELD = "zookeeper-password"
SECRET_FIELDS = (TOKEN_FIELD, TOKEN_KEY_FIELD, ZOOKEEPER_USERNAME_FIELD, ZOOKEEPER_PASSWORD_FIELD)
# LIBPATCH 3: the CA of a TLS ZooKeeper (optional: absent means plain text).
ZOOKEEPER_TLS_CA_KEY = "zookeeper-tls-ca"
# LIBPATCH 4: the brokers' TLS URLs and CA (optional: all three, or none for plain text).
BROKER_SERVICE_URL_TLS_KEY = "broker-service-url-tls"
WEB_SERVICE_URL_TLS_KEY = "web-service-url-tls"
TLS_CA_KEY = "tls-ca"
OPTIONAL_KEYS = (
    ZOOKEEPER_TLS_CA_KEY,
    BROKER_SERVICE_URL_TLS_KEY,
    WEB_SERVICE_URL_TLS_KEY,
    TLS_CA_KEY,
)
_PEM_CERTIFICATES = re.compile(
    r"(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?)+"
)
# LIBPATCH 2: client relations served through the proxy.
CLIENT_REQUESTS_KEY = "client-requests"
CLIENT_ANSWERS_KEY = "client-answers"
ANSWER_NAMESPACE = "namespace"
ANSWER_SECRET = "secret-user"
ANSWER_STATUS = "status"
FORWARDED_KEYS = (NAMESPACE_KEY, EXTRA_USER_ROLES_KEY, REQUESTED_SECRETS_KEY)
_PROXIED_ROLE = re.compile(r"proxy-(\d{1,9})-relation-(\d{1,9})")
_RELATION_ID = re.compile(r"\d{1,9}")
_SECRET_URI = re.compile(r"secret:[A-Za-z0-9/:._-]{1,200}")

_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY_BYTES = 32


@dataclass(frozen=True)
class ProxyOffer:
    """What a proxy needs from the brokers; ``repr`` hides the credentials."""

    cluster_name: str
    broker_service_url: str
    web_service_url: str
    metadata_store_url: str
    token: str = field(repr=False)
    token_key: str = field(repr=False)
    zookeeper_username: str = field(repr=False)
    zookeeper_password: str = field(repr=False)
    # PEM CA chain of a TLS ZooKeeper; "" for plain text.
    zookeeper_tls_ca: str = ""
    # The brokers' TLS URLs and the CA their certificates chain to; all "" for plain text.
    broker_service_url_tls: str = ""
    web_service_url_tls: str = ""
    tls_ca: str = ""

    @property
    def broker_tls(self) -> bool:
        """The brokers serve TLS: the proxy connects to them over TLS only."""
        return bool(self.tls_ca)

    def secret_content(self) -> dict[str, str]:
        return {
            TOKEN_FIELD: self.token,
            TOKEN_KEY_FIELD: self.token_key,
            ZOOKEEPER_USERNAME_FIELD: self.zookeeper_username,
            ZOOKEEPER_PASSWORD_FIELD: self.zookeeper_password,
        }


def proxied_role(proxy_relation_id: int, client_relation_id: int) -> str:
    """Return the Pulsar role of a client relation served through a proxy relation."""
    return f"proxy-{proxy_relation_id}-relation-{client_relation_id}"


def parse_proxied_role(role: str) -> tuple[int, int] | None:
    """``(proxy relation id, client relation id)`` of a proxied role; None for another role."""
    match = _PROXIED_ROLE.fullmatch(role)
    return (int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class ProxiedRequest(ClientRequest):
    """A client request relayed by a proxy: its role is ``role_name``, not ``relation-<id>``."""

    role_name: str = ""

    @property
    def role(self) -> str:
        return self.role_name or f"relation-{self.relation_id}"


def as_proxied(request: ClientRequest, role: str) -> ProxiedRequest:
    """Return ``request`` with the role ``role`` (the same request otherwise)."""
    values = {f.name: getattr(request, f.name) for f in fields(request) if f.name != "role_name"}
    return ProxiedRequest(**values, role_name=role)


def forwarded_fields(request: ClientRequest) -> dict[str, str]:
    """Return the ``pulsar_client`` request fields a proxy forwards for a valid request."""
    return {
        NAMESPACE_KEY: request.namespace,
        EXTRA_USER_ROLES_KEY: ",".join(request.permissions),
        REQUESTED_SECRETS_KEY: json.dumps(list(request.secret_fields)),
    }


@dataclass(frozen=True)
class ClientAnswer:
    """The brokers' answer to one forwarded client request."""

    namespace: str = ""
    secret_user: str = ""
    statuses: tuple[RelationStatus, ...] = ()


def _unreadable_request() -> RelationStatus:
    return RelationStatus(
        5000,
        "the proxy forwarded a request the brokers cannot read",
        "none: the proxy forwards the client's request again",
    )


def parse_client_requests(
    relation_name: str, proxy_relation_id: int, app_name: str, raw: str | None
) -> list[ProxiedRequest]:
    """Parse a proxy's ``client-requests`` (InvalidField when the field is unreadable).

    One unreadable entry is a refused request (its ``error`` says why), not a refused field.
    """
    value = _json_object(relation_name, CLIENT_REQUESTS_KEY, raw)
    requests: list[ProxiedRequest] = []
    for key, entry in value.items():
        if not _RELATION_ID.fullmatch(key):
            raise InvalidField(relation_name, CLIENT_REQUESTS_KEY, "has a key that is not an id")
        client_id = int(key)
        name = f"{app_name} (client relation {client_id})"
        request: ClientRequest | None
        values = _string_fields(entry)
        if values is None or set(values) - set(FORWARDED_KEYS):
            request = ClientRequest(client_id, name, error=_unreadable_request())
        else:
            request = read_request(client_id, name, values)
        if request is not None:
            requests.append(as_proxied(request, proxied_role(proxy_relation_id, client_id)))
    return sorted(requests, key=lambda r: r.relation_id)


def parse_client_answers(relation_name: str, raw: str | None) -> dict[int, ClientAnswer]:
    """Parse the brokers' ``client-answers`` (InvalidField when anything is unreadable)."""
    value = _json_object(relation_name, CLIENT_ANSWERS_KEY, raw)
    answers: dict[int, ClientAnswer] = {}
    for key, entry in value.items():
        if not _RELATION_ID.fullmatch(key) or not isinstance(entry, dict):
            raise InvalidField(relation_name, CLIENT_ANSWERS_KEY, "holds an unreadable answer")
        namespace = entry.get(ANSWER_NAMESPACE, "")
        if namespace and validate_namespace(namespace) is not None:
            raise InvalidField(relation_name, CLIENT_ANSWERS_KEY, "holds a bad namespace")
        uri = entry.get(ANSWER_SECRET, "")
        if uri and not (isinstance(uri, str) and _SECRET_URI.fullmatch(uri)):
            raise InvalidField(relation_name, CLIENT_ANSWERS_KEY, "holds a bad secret URI")
        answers[int(key)] = ClientAnswer(
            str(namespace), str(uri), _statuses(relation_name, entry.get(ANSWER_STATUS, []))
        )
    return answers


def _string_fields(entry: object) -> dict[str, str] | None:
    if not isinstance(entry, dict):
        return None
    values = {str(k): v for k, v in entry.items()}
    if not all(isinstance(v, str) for v in values.values()):
        return None
    return {k: str(v) for k, v in values.items()}


def _statuses(relation_name: str, raw: object) -> tuple[RelationStatus, ...]:
    if not isinstance(raw, list):
        raise InvalidField(relation_name, CLIENT_ANSWERS_KEY, "holds a status that is not a list")
    found = []
    for item in raw:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("code"), int)
            and not isinstance(item.get("code"), bool)
            and 1000 <= item["code"] <= 5999
            and isinstance(item.get("message"), str)
            and isinstance(item.get("resolution"), str)
        ):
            raise InvalidField(relation_name, CLIENT_ANSWERS_KEY, "holds an unreadable status")
        found.append(RelationStatus(item["code"], item["message"], item["resolution"]))
    return tuple(found)


def _json_object(relation_name: str, key: str, raw: str | None) -> dict[str, object]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        raise InvalidField(relation_name, key, "is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidField(relation_name, key, "is not a JSON object")
    return value


# -- validation ---------------------------------------------------------------------------


def parse_service_url(source: str, field_name: str, value: object, scheme: str) -> str:
    """``<scheme>://host:port`` and nothing else (no path, user or query)."""
    prefix = f"{scheme}://"
    if not isinstance(value, str) or not value.startswith(prefix):
        raise InvalidField(source, field_name, f"is not a {prefix}host:port URL")
    parse_host_port(source, field_name, value[len(prefix) :])
    return value


def parse_metadata_store(source: str, field_name: str, value: object) -> str:
    """``zk:h1:p1,h2:p2/chroot`` (Pulsar 4's metadata store URL form)."""
    if not isinstance(value, str) or not value.startswith("zk:"):
        raise InvalidField(source, field_name, "is not a zk:hosts/chroot URL")
    hosts, slash, chroot = value[3:].partition("/")
    if not slash:
        raise InvalidField(source, field_name, "has no chroot")
    parse_host_ports(source, field_name, hosts.split(","))
    parse_znode_path(source, field_name, "/" + chroot)
    return value


def parse_cluster_name(source: str, field_name: str, value: object) -> str:
    if not isinstance(value, str) or not _CLUSTER_NAME.fullmatch(value):
        raise InvalidField(source, field_name, "is not a cluster name")
    return value


def parse_token_key(source: str, field_name: str, value: object) -> str:
    """Parse a base64 HS256 key of at least 256 bits."""
    parse_credential(source, field_name, value)
    try:
        raw = base64.b64decode(str(value), validate=True)
    except ValueError:
        raise InvalidField(source, field_name, "is not base64") from None
    if len(raw) < _KEY_BYTES:
        raise InvalidField(source, field_name, "is shorter than 256 bits")
    return str(value)


def parse_tls_ca(source: str, field_name: str, value: object) -> str:
    """PEM certificates, newline-terminated; "" (plain text) for an absent or empty value."""
    if value is None or value == "":
        return ""
    text = str(value).strip().replace("\r\n", "\n") + "\n"
    if len(text) > 65536 or not _PEM_CERTIFICATES.fullmatch(text):
        raise InvalidField(source, field_name, "is not PEM certificates")
    return text


def parse_offer(
    relation_name: str, data: dict[str, str], content: dict[str, str] | None
) -> ProxyOffer | None:
    """Parse the provider's databag and secret content; None while incomplete."""
    if not all(data.get(key) for key in PROVIDER_KEYS) or content is None:
        return None
    secret = f"{relation_name} secret"
    return ProxyOffer(
        cluster_name=parse_cluster_name(relation_name, CLUSTER_NAME_KEY, data[CLUSTER_NAME_KEY]),
        broker_service_url=parse_service_url(
            relation_name, BROKER_SERVICE_URL_KEY, data[BROKER_SERVICE_URL_KEY], "pulsar"
        ),
        web_service_url=parse_service_url(
            relation_name, WEB_SERVICE_URL_KEY, data[WEB_SERVICE_URL_KEY], "http"
        ),
        metadata_store_url=parse_metadata_store(
            relation_name, METADATA_STORE_KEY, data[METADATA_STORE_KEY]
        ),
        token=parse_credential(secret, TOKEN_FIELD, content.get(TOKEN_FIELD)),
        token_key=parse_token_key(secret, TOKEN_KEY_FIELD, content.get(TOKEN_KEY_FIELD)),
        zookeeper_username=parse_username(
            secret, ZOOKEEPER_USERNAME_FIELD, content.get(ZOOKEEPER_USERNAME_FIELD)
        ),
        zookeeper_password=parse_credential(
            secret, ZOOKEEPER_PASSWORD_FIELD, content.get(ZOOKEEPER_PASSWORD_FIELD)
        ),
        zookeeper_tls_ca=parse_tls_ca(
            relation_name, ZOOKEEPER_TLS_CA_KEY, data.get(ZOOKEEPER_TLS_CA_KEY)
        ),
        **parse_broker_tls(relation_name, data),
    )


def parse_broker_tls(relation_name: str, data: dict[str, str]) -> dict[str, str]:
    """Parse the brokers' TLS URLs and CA (LIBPATCH 4): all three, or none (plain text)."""
    ca = parse_tls_ca(relation_name, TLS_CA_KEY, data.get(TLS_CA_KEY))
    service = data.get(BROKER_SERVICE_URL_TLS_KEY) or ""
    web = data.get(WEB_SERVICE_URL_TLS_KEY) or ""
    if not (ca or service or web):
        return {}
    if not ca:
        raise InvalidField(relation_name, TLS_CA_KEY, "is missing next to the TLS URLs")
    return {
        "broker_service_url_tls": parse_service_url(
            relation_name, BROKER_SERVICE_URL_TLS_KEY, service, "pulsar+ssl"
        ),
        "web_service_url_tls": parse_service_url(
            relation_name, WEB_SERVICE_URL_TLS_KEY, web, "https"
        ),
        "tls_ca": ca,
    }


# -- provider (pulsar-k8s) ----------------------------------------------------------------


class PulsarProxyProvider:
    """The brokers' side: the leader publishes one offer on every proxy relation."""

    def __init__(self, charm: ops.CharmBase, relation_name: str = RELATION):
        self._charm = charm
        self._relation_name = relation_name

    @property
    def relations(self) -> list[ops.Relation]:
        return list(self._charm.model.relations[self._relation_name])

    def secret_label(self, relation_id: int) -> str:
        return f"{self._relation_name}.{relation_id}.secret"

    def publish(self, offer: ProxyOffer | None) -> None:
        """Leader: write ``offer`` on every relation (None: withdraw it). Idempotent."""
        for relation in self.relations:
            if offer is None:
                self._update(relation, {key: "" for key in (*PROVIDER_KEYS, *OPTIONAL_KEYS)})
                continue
            uri = self._publish_secret(relation, offer.secret_content())
            self._update(
                relation,
                {
                    CLUSTER_NAME_KEY: offer.cluster_name,
                    BROKER_SERVICE_URL_KEY: offer.broker_service_url,
                    WEB_SERVICE_URL_KEY: offer.web_service_url,
                    METADATA_STORE_KEY: offer.metadata_store_url,
                    SECRET_KEY: uri,
                    ZOOKEEPER_TLS_CA_KEY: offer.zookeeper_tls_ca,
                    BROKER_SERVICE_URL_TLS_KEY: offer.broker_service_url_tls,
                    WEB_SERVICE_URL_TLS_KEY: offer.web_service_url_tls,
                    TLS_CA_KEY: offer.tls_ca,
                },
            )

    def remove_secret(self, relation_id: int) -> None:
        """Leader: remove a gone relation's secret (relation-broken)."""
        secret = self._secret(relation_id)
        if secret is None:
            return
        try:
            secret.remove_all_revisions()
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.warning("could not remove the secret of relation %s: %s", relation_id, exc)

    def _publish_secret(self, relation: ops.Relation, content: dict[str, str]) -> str:
        secret = self._secret(relation.id)
        if secret is None:
            secret = self._charm.app.add_secret(
                content,
                label=self.secret_label(relation.id),
                description=f"pulsar_proxy credentials of relation {relation.id}",
            )
        else:
            try:
                current = secret.get_content(refresh=True)
            except (ops.SecretNotFoundError, ops.ModelError):
                current = None
            if current != content:
                secret.set_content(content)
        secret.grant(relation)
        return secret.id or secret.get_info().id or ""

    # -- client relations forwarded by the proxies (LIBPATCH 2) --------------------------

    def client_secret_label(self, relation_id: int, client_id: int) -> str:
        return f"{self._relation_name}.{relation_id}.client-{client_id}.secret"

    def client_requests(self, relation: ops.Relation) -> list[ProxiedRequest]:
        """Return the requests a proxy forwards on ``relation`` (InvalidField if unreadable)."""
        app = relation.app
        if app is None:
            return []
        raw = relation.data[app].get(CLIENT_REQUESTS_KEY)
        return parse_client_requests(self._relation_name, relation.id, app.name, raw)

    def stored_client_token(self, relation_id: int, client_id: int) -> str | None:
        secret = self._label_secret(self.client_secret_label(relation_id, client_id))
        if secret is None:
            return None
        try:
            return secret.get_content(refresh=True).get(CLIENT_TOKEN_FIELD)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def publish_client(self, relation: ops.Relation, request: ClientRequest, token: str) -> None:
        """Leader: answer a forwarded request; the token in a secret granted to the relation."""
        label = self.client_secret_label(relation.id, request.relation_id)
        content = {USERNAME_FIELD: request.role, CLIENT_TOKEN_FIELD: token}
        secret = self._label_secret(label)
        if secret is None:
            secret = self._charm.app.add_secret(
                content,
                label=label,
                description=f"token of client relation {request.relation_id} behind a proxy",
            )
        elif self.stored_client_token(relation.id, request.relation_id) != token:
            secret.set_content(content)
        secret.grant(relation)
        uri = secret.id or secret.get_info().id or ""
        self._set_answer(
            relation,
            request.relation_id,
            {ANSWER_NAMESPACE: request.namespace, ANSWER_SECRET: uri},
        )

    def refuse_client(
        self, relation: ops.Relation, client_id: int, status: RelationStatus
    ) -> None:
        """Leader: refuse a forwarded request (no credential stays published)."""
        self._remove_label_secret(self.client_secret_label(relation.id, client_id))
        self._set_answer(relation, client_id, {ANSWER_STATUS: [asdict(status)]})

    def report_client(
        self, relation: ops.Relation, client_id: int, status: RelationStatus | None
    ) -> None:
        """Leader: a transient status next to a forwarded request's answer (None clears it)."""
        entry = dict(self._answers(relation).get(str(client_id)) or {})
        entry.pop(ANSWER_STATUS, None)
        if status is not None:
            entry[ANSWER_STATUS] = [asdict(status)]
        self._set_answer(relation, client_id, entry)

    def withdraw_client(
        self, relation_id: int, client_id: int, relation: ops.Relation | None
    ) -> None:
        """Leader: remove a forwarded request's secret (and its answer, given the relation)."""
        self._remove_label_secret(self.client_secret_label(relation_id, client_id))
        if relation is not None:
            self._set_answer(relation, client_id, None)

    def _answers(self, relation: ops.Relation) -> dict[str, dict]:
        try:
            value = json.loads(relation.data[self._charm.app].get(CLIENT_ANSWERS_KEY) or "{}")
        except ValueError:
            return {}
        if not isinstance(value, dict):
            return {}
        return {k: v for k, v in value.items() if isinstance(v, dict)}

    def _set_answer(self, relation: ops.Relation, client_id: int, entry: dict | None) -> None:
        answers = self._answers(relation)
        if entry:
            answers[str(client_id)] = entry
        else:
            answers.pop(str(client_id), None)
        raw = json.dumps(answers, sort_keys=True) if answers else ""
        self._update(relation, {CLIENT_ANSWERS_KEY: raw})

    def _label_secret(self, label: str) -> ops.Secret | None:
        try:
            return self._charm.model.get_secret(label=label)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def _remove_label_secret(self, label: str) -> None:
        secret = self._label_secret(label)
        if secret is None:
            return
        try:
            secret.remove_all_revisions()
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.warning("could not remove the secret %s: %s", label, exc)

    def _secret(self, relation_id: int) -> ops.Secret | None:
        try:
            return self._charm.model.get_secret(label=self.secret_label(relation_id))
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def _update(self, relation: ops.Relation, values: dict[str, str]) -> None:
        try:
            write_if_different(relation.data[self._charm.app], dict(values))
        except ops.ModelError as exc:  # e.g. the relation is going away
            logger.info("cannot write pulsar-proxy relation %s: %s", relation.id, exc)


# -- requirer (pulsar-proxy-k8s) ----------------------------------------------------------


class PulsarProxyRequirer:
    """The proxy's side: read and validate the brokers' offer."""

    def __init__(self, charm: ops.CharmBase, relation_name: str = RELATION):
        self._charm = charm
        self._relation_name = relation_name

    @property
    def relation(self) -> ops.Relation | None:
        return self._charm.model.get_relation(self._relation_name)

    def offer(self) -> ProxyOffer | None:
        """Return the validated offer (None while incomplete); InvalidField if refused."""
        relation = self.relation
        if relation is None or relation.app is None:
            return None
        data = dict(relation.data[relation.app])
        uri = data.get(SECRET_KEY)
        content = self._content(uri) if uri else None
        return parse_offer(self._relation_name, data, content)

    def _content(self, uri: str) -> dict[str, str] | None:
        try:
            return self._charm.model.get_secret(id=uri).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.info("cannot read the %s secret: %s", self._relation_name, type(exc).__name__)
            return None

    # -- client relations served through this proxy (LIBPATCH 2) -------------------------

    def forward(self, requests: dict[int, dict[str, str]]) -> None:
        """Leader: forward the client requests (client relation id -> request fields)."""
        relation = self.relation
        if relation is None:
            return
        raw = json.dumps({str(k): v for k, v in requests.items()}, sort_keys=True)
        try:
            write_if_different(
                relation.data[self._charm.app], {CLIENT_REQUESTS_KEY: raw if requests else ""}
            )
        except ops.ModelError as exc:  # e.g. the relation is going away
            logger.info("cannot write the %s relation: %s", self._relation_name, exc)

    def client_answers(self) -> dict[int, ClientAnswer]:
        """Return the brokers' answers by client relation id (InvalidField if unreadable)."""
        relation = self.relation
        if relation is None or relation.app is None:
            return {}
        raw = relation.data[relation.app].get(CLIENT_ANSWERS_KEY)
        return parse_client_answers(self._relation_name, raw)

    def client_credentials(self, uri: str) -> tuple[str, str] | None:
        """``(role, token)`` of an answer's secret; None while unreadable, InvalidField if bad."""
        content = self._content(uri)
        if content is None:
            return None
        source = f"{self._relation_name} client secret"
        role = parse_username(source, USERNAME_FIELD, content.get(USERNAME_FIELD))
        token = parse_credential(source, CLIENT_TOKEN_FIELD, content.get(CLIENT_TOKEN_FIELD))
        return role, token
