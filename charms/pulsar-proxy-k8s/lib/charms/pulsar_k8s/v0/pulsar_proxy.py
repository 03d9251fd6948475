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

The requirer writes nothing. Everything read is validated (:class:`InvalidField` names the
relation, or the secret, and the field); secret values never reach a log line.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass, field

import ops
from charms.pulsar_k8s.v0.databags import write_if_different
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
LIBPATCH = 1

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

    def secret_content(self) -> dict[str, str]:
        return {
            TOKEN_FIELD: self.token,
            TOKEN_KEY_FIELD: self.token_key,
            ZOOKEEPER_USERNAME_FIELD: self.zookeeper_username,
            ZOOKEEPER_PASSWORD_FIELD: self.zookeeper_password,
        }


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
    )


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
                self._update(relation, {key: "" for key in PROVIDER_KEYS})
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
