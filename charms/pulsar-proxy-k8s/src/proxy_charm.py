"""pulsar-proxy-k8s: one stateless Pulsar proxy per unit, converged by a single reconcile.

Every observed event runs ``_reconcile``. The proxy needs only the brokers' offer on the
``pulsar-proxy`` relation (service URLs, cluster name, metadata store, the proxy role's token
and the token verification key, in a Juju secret); a changed offer or config restarts the
running proxies one at a time (the rolling-restart lock on the peer relation), so clients
always have a proxy to reconnect through.

The leader also serves the ``pulsar`` client relation by relaying each request to the brokers
and their answer back with the proxy's URLs (``proxy_clients``).

TLS (``proxy_tls``): the proxy talks TLS to the brokers whenever their offer carries TLS URLs
and a CA; with a certificate on the optional ``certificates`` relation it serves ``pulsar+ssl``
and HTTPS too, and its client relations publish the TLS URLs and the CA. Related but without a
certificate yet, nothing changes on the unit (no half TLS). The PEM files are no restart input:
the proxy re-reads them, so a renewal restarts nothing. A new CA goes through trust bundles as on
the brokers (core tls ``ReloadingTrust``): the client relations publish the old and the new CA
first, the proxy keeps presenting its old certificate and switches once that bundle was out for
``SETTLE_S``, woken by the ``tls-reload`` Pebble check (docs/how-to/enable-tls.md).

Peer relation ``cluster``: the rolling-restart lock (library), the workload version
(observability library) and each unit's CAs during a rotation (``tls-cas``, ``trusted-cas``).
"""

from __future__ import annotations

import logging

import ops
from charms.pulsar_k8s.v0 import statuses
from charms.pulsar_k8s.v0.log_hygiene import quiet_credential_loggers
from charms.pulsar_k8s.v0.observability import RELATIONS as COS_RELATIONS
from charms.pulsar_k8s.v0.observability import MetricsEndpoint, Observability
from charms.pulsar_k8s.v0.pulsar_proxy import RELATION as PROXY_RELATION
from charms.pulsar_k8s.v0.pulsar_proxy import ProxyOffer, PulsarProxyRequirer
from charms.pulsar_k8s.v0.tls import RELATION as CERTIFICATES_RELATION
from charms.pulsar_k8s.v0.tls import (
    RELOAD_CHECK,
    PeerTrust,
    ReloadingTrust,
    TlsRequirer,
    TlsState,
    parse_extra_sans,
    parse_peer_trust,
    tls_sans,
    with_previous_ca,
)
from charms.pulsar_k8s.v0.view_check import record_view
from charms.pulsar_k8s.v0.workload import (
    WorkloadError,
    reconcile_events,
    restart_token,
    unit_fqdn,
)
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import RollingRestart
from proxy_clients import CLIENT_RELATION, ProxyClientServing
from proxy_config import ProxyConfig
from proxy_probes import (
    PLAIN_WEB,
    PROBE_CA_PATH,
    ProxyWeb,
    proxy_web,
)
from proxy_render import (
    LAYER_LABEL,
    SERVICE_PORT,
    WEB_SERVICE_PORT,
    ProxyInputs,
    ProxySecrets,
    pebble_layer,
    proxy_environment,
    proxy_files,
)
from proxy_tls import ProxyTls, open_ports, published_tls_state
from proxy_view import (
    DOWN,
    READY,
    VIEW_CHECK,
    VIEW_LAYER_LABEL,
    VIEW_PATH,
    proxy_state,
    view_layer,
)
from proxy_workload import ProxyWorkload

logger = logging.getLogger(__name__)

CONTAINER = "pulsar"
PEER = "cluster"


class PulsarProxyCharm(ops.CharmBase):
    # This unit's TLS state, read by each reconcile (the client relations publish from it).
    tls_state = TlsState()
    # The ports this reconcile decided; None when it stopped before (ports left as they are).
    _ports: tuple[int, ...] | None = None

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        # Set by each reconcile: the proxy-view check failed, so record the view afresh;
        # the tls-reload check failed (PEM files pushed SETTLE_S ago), so record that afresh.
        self._view_stale = False
        self._reload_stale = False
        quiet_credential_loggers()
        # Before the reconcile's observers: the library stores and requests first.
        # An invalid tls-extra-sans blocks the reconcile; the request keeps the charm's names.
        extra = parse_extra_sans(self.config.get("tls-extra-sans", "")) or ()
        self.tls = TlsRequirer(
            self,
            sans=tls_sans(self.unit.name, self.app.name, self.model.name, extra),
            relation_name=CERTIFICATES_RELATION,
        )
        self.brokers = PulsarProxyRequirer(self, PROXY_RELATION)
        self.client_serving = ProxyClientServing(self, self.brokers)
        self.rolling_restart = RollingRestart(self, PEER)
        self.workload = ProxyWorkload(self.unit.get_container(CONTAINER), self.address)
        # A CA rotation of the proxy's own certificate: trust bundles on the peer relation.
        self.trust = ReloadingTrust(self, self.workload, PEER)
        self.observability = Observability(
            self,
            lambda: metrics_endpoint(self.web),
            PEER,
            lambda unit: unit_fqdn(unit, self.app.name, self.model.name),
        )
        relations = (PEER, PROXY_RELATION, CLIENT_RELATION, CERTIFICATES_RELATION, *COS_RELATIONS)
        for event in reconcile_events(self, CONTAINER, relations=relations):
            framework.observe(event, self._reconcile)
        framework.observe(self.tls.available, self._reconcile)

    @property
    def address(self) -> str:
        return unit_fqdn(self.unit.name, self.app.name, self.model.name)

    _web: ProxyWeb | None = None

    @property
    def web(self) -> ProxyWeb:
        """How the charm probes its proxy: 8080, or 8443 and the CA (set by the reconcile)."""
        if self._web is None:
            try:
                config = self.load_config(ProxyConfig)
                state = self.tls.state()
                probe_ca = self._probe_ca(state)
            # ConfigError and InvalidField are ValueErrors
            except (ValueError, TypeError, WorkloadError):
                return PLAIN_WEB
            self._web = proxy_web(ProxyTls.of(state, config.tls_plaintext_enabled), probe_ca)
        return self._web

    def _probe_ca(self, state: TlsState) -> str | None:
        """Return the CAs the charm's own probes trust (proxy_probes); None without TLS."""
        if state.material is None:
            return None
        return with_previous_ca(state.material.ca, self.workload.read_text(PROBE_CA_PATH))

    # --- the reconcile ---------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase | None = None) -> None:
        failed = event if isinstance(event, ops.PebbleCheckFailedEvent) else None
        self._view_stale = failed is not None and failed.info.name == VIEW_CHECK
        self._reload_stale = failed is not None and failed.info.name == RELOAD_CHECK
        status = self.observability.reconcile(self.workload, statuses.guarded(self._converge))
        # The binary protocol and the web port (HTTP, WebSocket, metrics) on the Service; with
        # TLS, 6651 and 8443 too (and 6650 only with tls-plaintext-enabled).
        if self._ports is not None:
            self.unit.set_ports(*self._ports)
        # The client relations need only the brokers, not this unit's proxy: relayed always.
        status = self.client_serving.with_clients(status)
        if self.unit.is_leader():
            self.rolling_restart.arbitrate()
        self.unit.status = status

    def _converge(self) -> ops.StatusBase:
        try:
            config = self.load_config(ProxyConfig)
        except (ValueError, TypeError) as exc:
            return statuses.bad_config(exc)
        tls_state = self.tls.state()
        if tls_state.waiting:
            # Nothing changes on this unit until the certificate is there (no half TLS).
            return statuses.awaiting(f"a certificate on the {CERTIFICATES_RELATION} relation")
        # Until the files are converged below: every CA this unit and its peers published (a
        # client relation relayed meanwhile never loses the CA a proxy still presents).
        self.tls_state = published_tls_state(tls_state, self._peer_trust())
        tls = ProxyTls.of(tls_state, config.tls_plaintext_enabled)
        self._ports = open_ports(tls, SERVICE_PORT, WEB_SERVICE_PORT)
        if self.brokers.relation is None:
            self._stop_without_brokers()
            return statuses.no_relation(PROXY_RELATION)
        offer = self.brokers.offer()
        if offer is None:
            return statuses.awaiting("the brokers to publish their service URLs and credentials")
        if not self.workload.can_connect():
            return statuses.pebble_unreachable()
        files = proxy_files(_inputs(config, self.address, offer, tls), _secrets(offer))
        probe_ca = self._probe_ca(tls_state)
        self._web = proxy_web(tls, probe_ca)
        # Pushed before any (re)start that reads them; a renewal alone restarts nothing, a new
        # CA is presented only once the client relations published it SETTLE_S before.
        tls_state = self.trust.converge(tls_state, self._reload_stale)
        self.tls_state = tls_state
        pem_files: dict[str, str | bytes] = {}
        if probe_ca:
            pem_files[PROBE_CA_PATH] = probe_ca
        if self.workload.changed_files(pem_files):
            self.workload.push(pem_files)
        layer = pebble_layer(
            self.address,
            proxy_environment(config, zookeeper_tls=bool(offer.zookeeper_tls_ca)),
            self.web,
        )
        if not self.workload.proxy_running():
            # Nothing reads the files until the proxy starts, so they change freely.
            self.workload.push(files)
            self.workload.add_layer(LAYER_LABEL, layer)
            self.workload.start_proxy()
            self.rolling_restart.release()
        else:
            waiting = self._apply_by_rolling_restart(files, layer)
            if waiting:
                return waiting
        self._ensure_view_layer()
        if self._observe() != READY:
            return ops.WaitingStatus("proxy started; waiting for /status.html")
        tls_note = ", TLS" if tls.enabled else ""
        return ops.ActiveStatus(f"proxy ready (cluster {offer.cluster_name}{tls_note})")

    # --- steps -----------------------------------------------------------------------------

    def _peer_trust(self) -> list[PeerTrust]:
        """Return what every unit, this one first, published on the peer relation about its CAs."""
        relation = self.model.get_relation(PEER)
        if relation is None:
            return []
        return [parse_peer_trust(relation.data[u]) for u in (self.unit, *relation.units)]

    def _stop_without_brokers(self) -> None:
        """Stop serving once the relation is gone (its credentials may be revoked)."""
        if self.workload.can_connect() and self.workload.proxy_running():
            logger.info("no pulsar-proxy relation: stopping the proxy")
            self.workload.stop_proxy()

    def _apply_by_rolling_restart(
        self, files: dict[str, str | bytes], layer: dict
    ) -> ops.StatusBase | None:
        """Restart a running proxy on changed inputs, one unit at a time; None when done."""
        if self.workload.changed_files(files) or self.workload.layer_differs(layer):
            if not self.rolling_restart.acquire(restart_token(files, layer)):
                return ops.WaitingStatus("waiting for the rolling-restart lock to apply changes")
            self.workload.push(files)
            self.workload.add_layer(LAYER_LABEL, layer)
            logger.info("restarting the proxy to apply changed configuration")
            self.workload.restart_proxy()
            # The view check probes the proxy as it now serves (8080 or 8443): it wakes this
            # unit once the proxy answers, and the lock is kept until then.
            self._ensure_view_layer()
            return ops.WaitingStatus("proxy restarted; waiting for /status.html")
        if self.rolling_restart.pending() and self._observe() != DOWN:
            self.rolling_restart.release()
        return None

    def _ensure_view_layer(self) -> None:
        """Its own layer, outside the restart inputs: adding it restarts nothing."""
        view = view_layer(self.address, self.web)
        if self.workload.layer_differs(view):
            self.workload.add_layer(VIEW_LAYER_LABEL, view)

    def _observe(self) -> str:
        """Read the proxy's live state and record it where the view check compares it."""
        state = proxy_state(self.workload.answers(self.web))
        record_view(self.workload, VIEW_PATH, state, self._view_stale)
        self._view_stale = False
        return state


def metrics_endpoint(web: ProxyWeb) -> MetricsEndpoint:
    """Where Prometheus scrapes: 8080, or 8443 over HTTPS with the CA (plain text closed)."""
    if not web.tls:
        return MetricsEndpoint(WEB_SERVICE_PORT, "/metrics/")
    return MetricsEndpoint(web.port, "/metrics/", scheme="https", ca=web.ca)


def _inputs(config: ProxyConfig, address: str, offer: ProxyOffer, tls: ProxyTls) -> ProxyInputs:
    return ProxyInputs(
        config,
        address,
        offer.cluster_name,
        offer.broker_service_url,
        offer.web_service_url,
        offer.metadata_store_url,
        offer.zookeeper_tls_ca,
        broker_service_url_tls=offer.broker_service_url_tls,
        web_service_url_tls=offer.web_service_url_tls,
        broker_tls_ca=offer.tls_ca,
        tls=tls,
    )


def _secrets(offer: ProxyOffer) -> ProxySecrets:
    return ProxySecrets(
        offer.token, offer.token_key, offer.zookeeper_username, offer.zookeeper_password
    )
