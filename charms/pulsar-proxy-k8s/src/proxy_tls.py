"""The proxy's TLS: pure renderers, both directions, checked against the pinned proxy.

Towards the brokers: once the brokers offer their TLS URLs and CA on ``pulsar-proxy``
(LIBPATCH 4), ``tlsEnabledWithBroker=true`` makes the proxy use ``brokerServiceURLTLS`` for
lookups and the binary protocol (and the owning broker's ``pulsar+ssl`` address), the admin
proxy use ``brokerWebServiceURLTLS``, and the proxy's WebSocket service connect with TLS (the
proxy turns ``tlsEnabledWithBroker`` into the WebSocket service's ``brokerClientTlsEnabled``).
All of them trust ``brokerClientTrustCertsFilePath`` and check the brokers' host names (the
brokers' certificates name their pods and Service). Nothing reaches the brokers' 6650 then.

Towards the clients: with this unit's certificate from the ``certificates`` relation the proxy
serves ``pulsar+ssl`` on 6651 and HTTPS/WSS on 8443 and re-reads the PEM files every
``tlsCertRefreshCheckDurationSec`` (a renewal needs no restart). The plain-text ports, binary
6650 and HTTP 8080, close unless ``tls-plaintext-enabled`` keeps them open, as on the brokers;
the charm's probes and the Prometheus scrape job then use 8443 with the CA (proxy_probes).

A new CA for the proxy's own certificate goes through trust bundles, as on the brokers (core
tls ``ReloadingTrust`` on the ``cluster`` peer relation): the client relations publish the old
and the new CA, the proxy keeps presenting its old certificate until that bundle was out for
``SETTLE_S`` (the time the brokers give their clients), then presents the new one; the old CA
leaves the bundle ``SETTLE_S`` later. A renewal under the same CA is presented at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from charms.pulsar_k8s.v0.tls import (
    PULSAR_TLS_DIR,
    PULSAR_TLS_PATHS,
    PULSAR_TLS_PRIVATE_PATHS,
    PeerTrust,
    ServingTls,
    TlsState,
    serving_tls_properties,
    trust_bundle,
)

TLS_PATHS = PULSAR_TLS_PATHS
# The brokers' CA (from pulsar-proxy): may differ from the CA of the proxy's own certificate.
BROKER_CA_PATH = f"{PULSAR_TLS_DIR}/brokers-ca.pem"
TLS_PRIVATE_PATHS = PULSAR_TLS_PRIVATE_PATHS
SERVICE_PORT_TLS = 6651
WEB_SERVICE_PORT_TLS = 8443
# What proxy.conf depends on for the client side: TLS on or off, the plain binary port.
ProxyTls = ServingTls
NO_TLS = ProxyTls()


def proxy_serving_tls_properties(tls: ProxyTls) -> dict[str, str]:
    """proxy.conf keys for TLS towards clients (empty when TLS is off: no TLS port)."""
    properties = serving_tls_properties(
        tls,
        tls_port_key="servicePortTls",
        tls_port=SERVICE_PORT_TLS,
        plain_port_key="servicePort",
        web_tls_port=WEB_SERVICE_PORT_TLS,
    )
    if tls.enabled and not tls.plaintext:
        properties["webServicePort"] = ""  # no HTTP connector either
    return properties


def broker_tls_properties(broker_service_url_tls: str, web_service_url_tls: str) -> dict[str, str]:
    """proxy.conf keys for TLS towards the brokers (empty when they serve plain text only)."""
    if not broker_service_url_tls:
        return {}
    return {
        "tlsEnabledWithBroker": "true",
        "brokerServiceURLTLS": broker_service_url_tls,
        "brokerWebServiceURLTLS": web_service_url_tls,
        "functionWorkerWebServiceURLTLS": web_service_url_tls,
        "brokerClientTrustCertsFilePath": BROKER_CA_PATH,
        "tlsHostnameVerificationEnabled": "true",
    }


def open_ports(tls: ProxyTls, plain_port: int, web_port: int) -> tuple[int, ...]:
    """Return the ports the unit opens on the application's Service."""
    ports = [plain_port, web_port] if tls.plaintext else []
    if tls.enabled:
        ports += [SERVICE_PORT_TLS, WEB_SERVICE_PORT_TLS]
    return tuple(ports)


def published_tls_state(state: TlsState, published: Iterable[PeerTrust]) -> TlsState:
    """``state`` with the CA the client relations publish before the files are converged.

    The provider's CA plus every CA the units published on the peer relation (what they
    present or are about to): a superset of what the converged bundle holds, so a client
    relayed while the unit cannot converge (no brokers' offer, Pebble away) keeps trusting
    every certificate a proxy presents. Without TLS: ``state`` as it is.
    """
    if state.material is None:
        return state
    cas = [state.material.ca, *(ca for trust in published for ca in trust.cas)]
    return replace(state, material=replace(state.material, ca=trust_bundle(cas)))
