"""The proxy serves the ``pulsar`` client relation (interface ``pulsar_client``).

Only the brokers create namespaces and mint tokens, so the proxy leader relays: it validates
every client relation's request with the client library, forwards the valid ones to the
brokers on ``pulsar-proxy`` (``client-requests``), and republishes each answer to its client
through a Juju secret this application owns, with the proxy application's own URLs (the TLS
ones and the CA once this unit has its certificate, exactly as the brokers do). A refusal
or a transient status from the brokers reaches the client unchanged; without a ``pulsar-proxy``
relation (or before the brokers answer) the client is told what the proxy waits for. A client
relation removed here disappears from ``client-requests``: the brokers revoke its role.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import ops
from charms.pulsar_k8s.v0 import statuses
from charms.pulsar_k8s.v0.pulsar_client import (
    ClientRequest,
    Endpoints,
    PulsarClientProvider,
    RelationStatus,
    invalid_functions,
    not_served_yet,
)
from charms.pulsar_k8s.v0.pulsar_proxy import (
    ClientAnswer,
    PulsarProxyRequirer,
    as_proxied,
    forwarded_fields,
)
from charms.pulsar_k8s.v0.tls import service_fqdn
from charms.pulsar_k8s.v0.validation import InvalidField
from proxy_render import SERVICE_PORT, WEB_SERVICE_PORT
from proxy_tls import SERVICE_PORT_TLS, WEB_SERVICE_PORT_TLS

if TYPE_CHECKING:
    from proxy_charm import PulsarProxyCharm

logger = logging.getLogger(__name__)

CLIENT_RELATION = "pulsar"


def proxy_endpoints(app_name: str, model_name: str, tls_ca: str = "") -> Endpoints:
    """Return the URLs of the proxy application's Service (what ``juju expose`` exposes).

    With ``tls_ca`` (this unit has its certificate): the TLS URLs, and the CA clients trust.
    """
    service = service_fqdn(app_name, model_name)
    if tls_ca:
        return Endpoints(
            broker_service_url=f"pulsar+ssl://{service}:{SERVICE_PORT_TLS}",
            web_service_url=f"https://{service}:{WEB_SERVICE_PORT_TLS}",
            websocket_url=f"wss://{service}:{WEB_SERVICE_PORT_TLS}/ws/v2",
            tls_ca=tls_ca,
        )
    return Endpoints(
        broker_service_url=f"pulsar://{service}:{SERVICE_PORT}",
        web_service_url=f"http://{service}:{WEB_SERVICE_PORT}",
        websocket_url=f"ws://{service}:{WEB_SERVICE_PORT}/ws/v2",
    )


def functions_not_proxied() -> RelationStatus:
    return invalid_functions(
        "are not deployed through the proxy; relate to pulsar-k8s's pulsar endpoint to "
        "declare functions"
    )


class ProxyClientServing(ops.Object):
    """The proxy leader's relay between client relations and the brokers."""

    def __init__(self, charm: PulsarProxyCharm, brokers: PulsarProxyRequirer):
        super().__init__(charm, CLIENT_RELATION)
        self._charm = charm
        self._brokers = brokers
        self.clients = PulsarClientProvider(charm, CLIENT_RELATION)
        charm.framework.observe(charm.on[CLIENT_RELATION].relation_broken, self._on_broken)

    def _on_broken(self, event: ops.RelationBrokenEvent) -> None:
        if self._charm.unit.is_leader():
            self.clients.withdraw(event.relation.id)

    def with_clients(self, status: ops.StatusBase) -> ops.StatusBase:
        """Leader: relay every client relation; an Active status mentions the clients."""
        if not self._charm.unit.is_leader():
            return status
        try:
            served, problems = self._relay()
        except ops.ModelError as exc:  # e.g. a relation or secret going away mid-hook
            logger.info("cannot relay the client relations yet: %s", exc)
            return status
        if not isinstance(status, ops.ActiveStatus):
            return status
        message = status.message
        if served:
            message += f", {served} client{'s' if served != 1 else ''}"
        return ops.ActiveStatus(statuses.with_problems(message, problems))

    def _relay(self) -> tuple[int, list[str]]:
        # A relation being broken is still listed (inactive): its request is gone.
        relations = {r.id: r for r in self.clients.relations if r.active}
        requests = [r for r in self.clients.requests() if r.relation_id in relations]
        if self._brokers.relation is None:
            for request in requests:
                relation = relations[request.relation_id]
                if request.error:
                    self.clients.publish_error(relation, request.error)
                    continue
                # No credentials stay published; the status says what the proxy waits for.
                self.clients.publish_error(
                    relation, not_served_yet("the proxy has no pulsar-proxy relation to brokers")
                )
            return 0, []
        problems: list[str] = []
        try:
            answers: dict[int, ClientAnswer] | None = self._brokers.client_answers()
        except InvalidField as exc:
            answers = None
            problems.append(str(exc))
        forwarded: dict[int, dict[str, str]] = {}
        served = 0
        material = self._charm.tls_state.material
        endpoints = proxy_endpoints(
            self._charm.app.name, self._charm.model.name, material.ca if material else ""
        )
        for request in requests:
            relation = relations[request.relation_id]
            if request.error is None and request.functions:
                request = ClientRequest(
                    request.relation_id,
                    request.app_name,
                    request.namespace,
                    error=functions_not_proxied(),
                )
            if request.error:
                self.clients.publish_error(relation, request.error)
                # The code only: the message may quote the client's data.
                problems.append(f"{request.app_name}: request refused ({request.error.code})")
                continue
            forwarded[request.relation_id] = forwarded_fields(request)
            answer = answers.get(request.relation_id) if answers is not None else None
            problem = self._answer(relation, request, answer, endpoints)
            if problem:
                problems.append(f"{request.app_name}: {problem}")
            else:
                served += 1
        self._brokers.forward(forwarded)
        return served, problems

    def _answer(
        self,
        relation: ops.Relation,
        request: ClientRequest,
        answer: ClientAnswer | None,
        endpoints: Endpoints,
    ) -> str | None:
        """Republish the brokers' answer to one client; why it is not served, if it is not."""
        fatal = [s for s in answer.statuses if s.is_fatal] if answer else []
        if fatal:
            self.clients.publish_error(relation, fatal[0])
            return f"refused by the brokers ({fatal[0].code})"
        if answer is None or not answer.secret_user or answer.namespace != request.namespace:
            status = answer.statuses[0] if answer and answer.statuses else None
            self.clients.report(
                relation, status or not_served_yet("waiting for the brokers to serve it")
            )
            return "waiting for the brokers"
        try:
            credentials = self._brokers.client_credentials(answer.secret_user)
        except InvalidField as exc:
            self.clients.report(relation, not_served_yet(str(exc)))
            return str(exc)
        if credentials is None:
            self.clients.report(relation, not_served_yet("the brokers' secret is not readable"))
            return "waiting for the brokers' secret"
        role, token = credentials
        self.clients.publish(relation, endpoints, as_proxied(request, role), token)
        if answer.statuses:
            self.clients.report(relation, answer.statuses[0])
            return f"the brokers report a problem ({answer.statuses[0].code})"
        return None
