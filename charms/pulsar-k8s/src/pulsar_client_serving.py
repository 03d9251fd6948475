"""Serving client relations (``pulsar_client``): tenants, namespaces, grants, tokens.

The leader serves every relation of the ``pulsar`` endpoint, level-triggered: each relation is
its own role ``relation-<id>`` with its own namespace, so one application may hold several
relations (several endpoints, or several clusters) and several namespaces. A request the
library does not understand is refused on the relation and its role holds no grant.

The requests the proxies forward on ``pulsar-proxy`` (role ``proxy-<id>-relation-<id>``) are
served by the same code; only where the answer goes differs (a :class:`ClientChannel`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import ops
import pulsar_admin
import pulsar_tokens
from charms.pulsar_k8s.v0 import statuses
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.pulsar_client import (
    ClientRequest,
    Endpoints,
    PulsarClientProvider,
    RelationStatus,
    not_served_yet,
)
from charms.pulsar_k8s.v0.pulsar_proxy import parse_proxied_role
from pulsar_config import PulsarConfig
from pulsar_peer_state import CLIENTS_KEY, encode_served_clients
from pulsar_render import BROKER_SERVICE_PORT, WEB_SERVICE_PORT, AuthMaterial, service_fqdn
from pulsar_tls import client_tls_endpoints

if TYPE_CHECKING:
    from pulsar_charm import PulsarBrokerCharm

logger = logging.getLogger(__name__)


class PulsarClientServing:
    """The broker's side of every client relation; the leader grants, every unit reports."""

    def __init__(self, charm: PulsarBrokerCharm):
        self._charm = charm
        # Set when a request could not be served for a reason that may pass (a namespace the
        # broker refused, a revoke that failed): the charm schedules its retry.
        self.retry_needed = False

    @property
    def clients(self):
        return self._charm.clients

    def admin_client(self, auth: AuthMaterial) -> pulsar_admin.PulsarAdmin:
        # The token this unit's own broker accepts (during a key rotation it may be the old one).
        # Over 8443 with the CA once the broker's plain text is closed (charm.web).
        web = self._charm.web
        return pulsar_admin.PulsarAdmin(
            web.url(self._charm.unit_address),
            self._charm.key_rotation.local_admin_token(auth),
            web=web,
        )

    def client_endpoints(self) -> Endpoints:
        material = self._charm.tls_state.material
        if material is not None:
            tls = client_tls_endpoints(self._charm.app.name, self._charm.model.name)
            return Endpoints(
                broker_service_url=tls.broker_service_url,
                web_service_url=tls.web_service_url,
                websocket_url=tls.websocket_url,
                tls_ca=material.ca,
            )
        service = service_fqdn(self._charm.app.name, self._charm.model.name)
        return Endpoints(
            broker_service_url=f"pulsar://{service}:{BROKER_SERVICE_PORT}",
            web_service_url=f"http://{service}:{WEB_SERVICE_PORT}",
            websocket_url=f"ws://{service}:{WEB_SERVICE_PORT}/ws/v2",
        )

    def served_clients(self) -> dict[str, str]:
        """Role -> namespace the leader has served (InvalidField when the record is refused)."""
        return dict(self._charm.peer_state().served_clients)

    def _record_served(self, served: dict[str, str]) -> None:
        data = self._charm._peer_app_data()
        if data is not None:
            write_if_different(data, {CLIENTS_KEY: encode_served_clients(served)})

    def with_clients(
        self, config: PulsarConfig, auth: AuthMaterial, status: ops.ActiveStatus
    ) -> ops.StatusBase:
        """Leader: serve every client relation; everyone: mention the clients served."""
        problems: list[str] = []
        if self._charm.unit.is_leader():
            problems = self._serve_clients(config, auth)
        served = len(self.served_clients())
        message = status.message
        if served:
            message += f", {served} client{'s' if served != 1 else ''}"
        return ops.ActiveStatus(statuses.with_problems(message, problems))

    def client_channels(
        self, served: dict[str, str], problems: list[str]
    ) -> tuple[list[tuple[ClientRequest, ClientChannel]], set[str]]:
        """Every request with where its answer goes, and the served roles kept as they are.

        Direct client relations, then the ones the proxies forward (pulsar_proxy_serving):
        both are served by the same code below. A proxy relation whose requests are
        unreadable keeps its roles (neither served anew nor revoked) until they are readable.
        """
        relations = {r.id: r for r in self.clients.relations}
        channels: list[tuple[ClientRequest, ClientChannel]] = [
            (request, DirectChannel(self.clients, relations[request.relation_id]))
            for request in self.clients.requests()
        ]
        proxied, unreadable = self._charm.proxy_serving.client_channels()
        problems.extend(unreadable.values())
        held = {
            role
            for role in served
            if (ids := parse_proxied_role(role)) is not None and ids[0] in unreadable
        }
        return channels + proxied, held

    def _serve_clients(self, config: PulsarConfig, auth: AuthMaterial) -> list[str]:
        """Level-triggered: grant what every relation asks, revoke what no relation holds."""
        admin = self.admin_client(auth)
        served = self.served_clients()
        problems: list[str] = []
        channels, held = self.client_channels(served, problems)
        for request, channel in channels:
            if request.error:
                # Refused on the relation (status propagation), never guessed at.
                channel.refuse(request.error)
                problems.append(f"{request.app_name}: {channel.describe(request.error)}")
                continue
            problem = self._serve_client(config, auth, admin, request, served)
            if problem:
                self.retry_needed = True
                logger.warning("client %s not served yet: %s", request.role, problem)
                channel.report(not_served_yet(problem))
                problems.append(f"{request.app_name}: {problem}")
                continue
            served[request.role] = request.namespace
            # Signed with the key every broker accepts: the old one while a rotation rolls.
            token = channel.stored_token()
            roles = (
                {pulsar_tokens.token_role(k, token) for k in auth.client_keys_kept}
                if token
                else set()
            )
            if token is None or request.role not in roles:
                token = pulsar_tokens.mint_token(auth.client_signing_key, request.role)
            channel.publish(self.client_endpoints(), request, token)
        # A refused request holds no grant: its role is revoked like a gone relation's.
        requests = [request for request, _ in channels]
        live_roles = {r.role for r in requests if r.error is None}
        refused = {r.role for r in requests if r.error is not None}
        for role, namespace in sorted(served.items()):
            if role in live_roles or role in held:
                continue
            result = admin.revoke(namespace, role)
            if not result.ok:
                self.retry_needed = True
                problems.append(f"revoking {role} failed: {result.describe()}")
                continue
            admin.remove_tenant_admin(namespace.split("/", 1)[0], role)
            # A relation that still exists but asks for nothing any more loses its answer too;
            # a refused one keeps the status that says why.
            self._withdraw(role, still_asking=role in refused)
            logger.info("revoked %s on %s (namespace kept)", role, namespace)
            del served[role]
        self._record_served(served)
        return problems

    def _withdraw(self, role: str, still_asking: bool) -> None:
        if self._charm.proxy_serving.withdraw(role, still_asking):
            return
        relation_id = _relation_id(role)
        if relation_id is not None:
            relations = {r.id: r for r in self.clients.relations}
            self.clients.withdraw(
                relation_id, None if still_asking else relations.get(relation_id)
            )

    def _serve_client(
        self,
        config: PulsarConfig,
        auth: AuthMaterial,
        admin: pulsar_admin.PulsarAdmin,
        request: ClientRequest,
        served: dict[str, str],
    ) -> str | None:
        admins = [request.role] if request.tenant_admin else []
        result = admin.ensure_tenant(request.tenant, [config.cluster_name], admins)
        if not result.ok:
            return f"tenant {request.tenant}: {result.describe()}"
        if not request.tenant_admin:
            admin.remove_tenant_admin(request.tenant, request.role)
        result = admin.create_namespace(request.namespace)
        if not result.ok:
            return f"namespace {request.namespace}: {result.describe()}"
        previous = served.get(request.role)
        if previous and previous != request.namespace:
            # The relation moved to another namespace: the old one keeps its data, not the role.
            result = admin.revoke(previous, request.role)
            if not result.ok:
                return f"revoking on {previous}: {result.describe()}"
        # A relation that declares functions needs the namespace's functions action.
        actions = (*request.actions, "functions") if request.functions else request.actions
        if actions:
            result = admin.grant(request.namespace, request.role, sorted(set(actions)))
        else:
            result = admin.revoke(request.namespace, request.role)
        if not result.ok:
            return f"permissions on {request.namespace}: {result.describe()}"
        return None


class ClientChannel(Protocol):
    """Where one request's answer goes: its own relation, or the proxy relation it came by."""

    def refuse(self, status: RelationStatus) -> None: ...
    def describe(self, status: RelationStatus) -> str: ...
    def report(self, status: RelationStatus | None) -> None: ...
    def stored_token(self) -> str | None: ...
    def publish(self, endpoints: Endpoints, request: ClientRequest, token: str) -> None: ...


class DirectChannel:
    """A client relation on the ``pulsar`` endpoint: the library answers on it."""

    def __init__(self, clients: PulsarClientProvider, relation: ops.Relation):
        self._clients = clients
        self._relation = relation

    def refuse(self, status: RelationStatus) -> None:
        self._clients.publish_error(self._relation, status)

    def describe(self, status: RelationStatus) -> str:
        return status.message

    def report(self, status: RelationStatus | None) -> None:
        self._clients.report(self._relation, status)

    def stored_token(self) -> str | None:
        return self._clients.stored_token(self._relation.id)

    def publish(self, endpoints: Endpoints, request: ClientRequest, token: str) -> None:
        self._clients.publish(self._relation, endpoints, request, token)


def _relation_id(role: str) -> int | None:
    prefix, _, number = role.partition("-")
    return int(number) if prefix == "relation" and number.isdigit() else None
