"""Serving proxy relations (``pulsar_proxy``): the brokers' offer to pulsar-proxy-k8s.

The leader publishes, level-triggered, on every ``pulsar-proxy`` relation: the cluster name,
the brokers' Service URLs, the metadata store the brokers use, and in a Juju secret granted to
the relation the proxy role's token, the key client tokens are verified with and the brokers'
ZooKeeper identity (the proxies read policies to authorize clients). The token is minted with
the key the clients' tokens are signed with; HS256 over a fixed payload is deterministic, so an
unchanged reconcile writes nothing. The offer is kept while the brokers are down (proxies keep
their configuration); a gone relation's secret is removed. With this unit's certificate (the
brokers serve TLS) the offer adds the TLS URLs of the brokers' Service and the CA chain: the
proxies then talk TLS to the brokers, which works with the plain-text port closed.

Client relations of the proxies: each proxy leader forwards its clients' requests
(``client-requests``); this module turns them into requests with the role
``proxy-<relation id>-relation-<client relation id>`` and a :class:`ProxiedChannel` that
answers on the proxy relation, and ``pulsar_client_serving`` serves them exactly like direct
client relations (namespaces, grants, tokens, revocation).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import ops
import pulsar_tokens
from charms.pulsar_k8s.v0.pulsar_client import ClientRequest, Endpoints, RelationStatus
from charms.pulsar_k8s.v0.pulsar_proxy import (
    ProxyOffer,
    PulsarProxyProvider,
    parse_proxied_role,
)
from charms.pulsar_k8s.v0.validation import InvalidField
from charms.pulsar_zookeeper_k8s.v0.zookeeper import ZooKeeperConnection, usable_tls_ca
from pulsar_config import PulsarConfig
from pulsar_render import (
    BROKER_SERVICE_PORT,
    WEB_SERVICE_PORT,
    AuthMaterial,
    metadata_store_url,
    service_fqdn,
)
from pulsar_tls import client_tls_endpoints

if TYPE_CHECKING:
    from pulsar_charm import PulsarBrokerCharm

logger = logging.getLogger(__name__)

PROXY_RELATION = "pulsar-proxy"


class PulsarProxyServing(ops.Object):
    """The brokers' side of every proxy relation; only the leader writes."""

    def __init__(self, charm: PulsarBrokerCharm):
        super().__init__(charm, PROXY_RELATION)
        self._charm = charm
        self.provider = PulsarProxyProvider(charm, PROXY_RELATION)
        charm.framework.observe(charm.on[PROXY_RELATION].relation_broken, self._on_broken)

    def offer(
        self, config: PulsarConfig, auth: AuthMaterial, zookeeper: ZooKeeperConnection
    ) -> ProxyOffer:
        service = service_fqdn(self._charm.app.name, self._charm.model.name)
        key = auth.client_signing_key
        material = self._charm.tls_state.material
        tls = client_tls_endpoints(self._charm.app.name, self._charm.model.name)
        return ProxyOffer(
            cluster_name=config.cluster_name,
            broker_service_url=f"pulsar://{service}:{BROKER_SERVICE_PORT}",
            web_service_url=f"http://{service}:{WEB_SERVICE_PORT}",
            metadata_store_url=metadata_store_url(zookeeper.hosts),
            token=pulsar_tokens.mint_token(key, pulsar_tokens.PROXY_ROLE),
            token_key=key,
            zookeeper_username=zookeeper.username,
            zookeeper_password=zookeeper.password,
            # "" for plain text; a TLS connection without a usable CA never reaches here (the
            # brokers wait for it first).
            zookeeper_tls_ca=usable_tls_ca(zookeeper) or "",
            broker_service_url_tls=tls.broker_service_url if material else "",
            web_service_url_tls=tls.web_service_url if material else "",
            tls_ca=material.ca if material else "",
        )

    def publish(
        self, config: PulsarConfig, auth: AuthMaterial, zookeeper: ZooKeeperConnection
    ) -> None:
        """Leader, brokers serving: (re)publish the offer on every proxy relation."""
        if not self._charm.unit.is_leader() or not self.provider.relations:
            return
        try:
            self.provider.publish(self.offer(config, auth, zookeeper))
        except ops.ModelError as exc:  # e.g. a relation going away
            logger.info("cannot publish on pulsar-proxy relations: %s", exc)

    def _on_broken(self, event: ops.RelationBrokenEvent) -> None:
        if self._charm.unit.is_leader():
            self.provider.remove_secret(event.relation.id)

    # -- client relations forwarded by the proxies --------------------------------------

    def client_channels(self) -> tuple[list[tuple[ClientRequest, ProxiedChannel]], dict[int, str]]:
        """Every forwarded request with its channel; relation id -> why its data is refused."""
        channels: list[tuple[ClientRequest, ProxiedChannel]] = []
        unreadable: dict[int, str] = {}
        for relation in self.provider.relations:
            if not relation.active:
                continue  # being broken: its requests are gone, its roles get revoked
            try:
                requests = self.provider.client_requests(relation)
            except InvalidField as exc:
                unreadable[relation.id] = str(exc)
                continue
            channels += [
                (request, ProxiedChannel(self.provider, relation, request.relation_id))
                for request in requests
            ]
        return channels, unreadable

    def withdraw(self, role: str, still_asking: bool) -> bool:
        """Leader: withdraw a proxied role's answer and secret; False for another role."""
        ids = self.parse(role)
        if ids is None:
            return False
        relation_id, client_id = ids
        relation = next(
            (r for r in self.provider.relations if r.id == relation_id and r.active), None
        )
        self.provider.withdraw_client(relation_id, client_id, None if still_asking else relation)
        return True

    @staticmethod
    def parse(role: str) -> tuple[int, int] | None:
        return parse_proxied_role(role)


class ProxiedChannel:
    """A client relation of a proxy: the answer goes to the proxy relation it came by."""

    def __init__(self, provider: PulsarProxyProvider, relation: ops.Relation, client_id: int):
        self._provider = provider
        self._relation = relation
        self._client_id = client_id

    def refuse(self, status: RelationStatus) -> None:
        self._provider.refuse_client(self._relation, self._client_id, status)

    def describe(self, status: RelationStatus) -> str:
        # The code only: the message may quote what the proxy forwarded (the client's data).
        return f"request refused ({status.code})"

    def report(self, status: RelationStatus | None) -> None:
        self._provider.report_client(self._relation, self._client_id, status)

    def stored_token(self) -> str | None:
        return self._provider.stored_client_token(self._relation.id, self._client_id)

    def publish(self, endpoints: Endpoints, request: ClientRequest, token: str) -> None:
        # The proxy publishes its own URLs to the client: only the token travels.
        del endpoints
        self._provider.publish_client(self._relation, request, token)
