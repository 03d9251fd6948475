"""Serving proxy relations (``pulsar_proxy``): the brokers' offer to pulsar-proxy-k8s.

The leader publishes, level-triggered, on every ``pulsar-proxy`` relation: the cluster name,
the brokers' Service URLs, the metadata store the brokers use, and in a Juju secret granted to
the relation the proxy role's token, the key client tokens are verified with and the brokers'
ZooKeeper identity (the proxies read policies to authorize clients). The token is minted with
the key the clients' tokens are signed with; HS256 over a fixed payload is deterministic, so an
unchanged reconcile writes nothing. The offer is kept while the brokers are down (proxies keep
their configuration); a gone relation's secret is removed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import ops
import pulsar_tokens
from charms.pulsar_k8s.v0.pulsar_proxy import ProxyOffer, PulsarProxyProvider
from charms.pulsar_zookeeper_k8s.v0.zookeeper import ZooKeeperConnection
from pulsar_config import PulsarConfig
from pulsar_render import (
    BROKER_SERVICE_PORT,
    WEB_SERVICE_PORT,
    AuthMaterial,
    metadata_store_url,
    service_fqdn,
)

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
        return ProxyOffer(
            cluster_name=config.cluster_name,
            broker_service_url=f"pulsar://{service}:{BROKER_SERVICE_PORT}",
            web_service_url=f"http://{service}:{WEB_SERVICE_PORT}",
            metadata_store_url=metadata_store_url(zookeeper.hosts),
            token=pulsar_tokens.mint_token(key, pulsar_tokens.PROXY_ROLE),
            token_key=key,
            zookeeper_username=zookeeper.username,
            zookeeper_password=zookeeper.password,
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
