"""The broker's TLS: pure renderers from the unit's ``TlsState`` to broker settings and files.

With a certificate from the ``certificates`` relation the broker serves ``pulsar+ssl`` on 6651
and HTTPS (admin REST, WebSocket) on 8443, talks TLS to other brokers (lookups, redirects,
system topics) and trusts the provider's CA. The plain-text ports, binary 6650 and HTTP 8080,
close unless ``tls-plaintext-enabled`` keeps them open; the charm's own checks, admin calls and
the Prometheus scrape job then use 8443 with the CA (pulsar_probes): see
docs/how-to/enable-tls.md.

Pulsar re-reads the certificate files every ``tlsCertRefreshCheckDurationSec``; a renewed
certificate is pushed and picked up without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from charms.pulsar_k8s.v0.tls import (
    PULSAR_TLS_PATHS,
    PULSAR_TLS_PRIVATE_PATHS,
    ServingTls,
    pulsar_tls_files,
    service_fqdn,
    serving_tls_properties,
)

TLS_PATHS = PULSAR_TLS_PATHS
TLS_PRIVATE_PATHS = PULSAR_TLS_PRIVATE_PATHS
BROKER_SERVICE_PORT_TLS = 6651
WEB_SERVICE_PORT_TLS = 8443
# What the broker's files depend on: TLS on or off, and the plain-text binary port.
BrokerTls = ServingTls
NO_TLS = BrokerTls()


def broker_tls_properties(tls: BrokerTls) -> dict[str, str]:
    """broker.conf keys for TLS (empty when TLS is off: Pulsar's defaults, no TLS port)."""
    if not tls.enabled:
        return {}
    return {
        **serving_tls_properties(
            tls,
            tls_port_key="brokerServicePortTls",
            tls_port=BROKER_SERVICE_PORT_TLS,
            plain_port_key="brokerServicePort",
            web_tls_port=WEB_SERVICE_PORT_TLS,
        ),
        # Broker to broker (and the in-broker WebSocket service to its broker): TLS, CA-checked.
        "brokerClientTlsEnabled": "true",
        "brokerClientTrustCertsFilePath": TLS_PATHS.ca,
        # Plain text closed: no HTTP connector either (an empty port is Optional.empty()).
        **({} if tls.plaintext else {"webServicePort": ""}),
    }


def internal_broker_url(unit_address: str, tls: BrokerTls, plain_port: int) -> str:
    """Return the binary URL tools and the functions worker use inside the pod."""
    if tls.enabled and not tls.plaintext:
        return f"pulsar+ssl://{unit_address}:{BROKER_SERVICE_PORT_TLS}"
    return f"pulsar://{unit_address}:{plain_port}"


def client_conf_tls_properties(tls: BrokerTls) -> dict[str, str]:
    """conf/client.conf keys so bin/pulsar-client trusts the CA (and checks the name)."""
    if not tls.enabled:
        return {}
    return {
        "tlsTrustCertsFilePath": TLS_PATHS.ca,
        "tlsAllowInsecureConnection": "false",
        "tlsEnableHostnameVerification": "true",
    }


def functions_worker_tls_settings(tls: BrokerTls) -> dict[str, Any]:
    """functions_worker.yml keys so the worker and its instances reach the broker over TLS."""
    if not tls.enabled or tls.plaintext:
        return {}
    return {
        "useTls": True,
        "tlsAllowInsecureConnection": False,
        "tlsEnableHostnameVerification": False,
        "tlsTrustCertsFilePath": TLS_PATHS.ca,
        "brokerClientTrustCertsFilePath": TLS_PATHS.ca,
    }


tls_files = pulsar_tls_files


@dataclass(frozen=True)
class ClientTlsEndpoints:
    """The TLS URLs published to clients (the application's Service name)."""

    broker_service_url: str
    web_service_url: str
    websocket_url: str


def client_tls_endpoints(app_name: str, model_name: str) -> ClientTlsEndpoints:
    service = service_fqdn(app_name, model_name)
    return ClientTlsEndpoints(
        broker_service_url=f"pulsar+ssl://{service}:{BROKER_SERVICE_PORT_TLS}",
        web_service_url=f"https://{service}:{WEB_SERVICE_PORT_TLS}",
        websocket_url=f"wss://{service}:{WEB_SERVICE_PORT_TLS}/ws/v2",
    )
