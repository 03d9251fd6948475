"""Pure renderers: typed inputs -> proxy.conf, key and token files, JAAS, Pebble layer.

Nothing here touches Pebble, Juju or the network, so every function can be property-tested.
The keys were checked against the proxy of the pinned Pulsar (its ``conf/proxy.conf``):

- ``brokerServiceURL``/``brokerWebServiceURL`` name the brokers' Service: lookups, the binary
  protocol and HTTP requests go there (the proxy then connects to the owning broker's own
  advertised name); with them set, the metadata store is not used for discovery.
- ``metadataStoreUrl``/``configurationMetadataStoreUrl`` are the brokers' store: the proxy's
  authorization service (and the WebSocket service's) reads tenant and namespace policies
  there. Authorization at the proxy is what keeps WebSocket authorized: the WebSocket service
  talks to the brokers as the proxy role (a super-user) for every client.
- ``forwardAuthorizationCredentials``: the client's role goes to the brokers, which authorize
  it as well (the proxy role is in their ``proxyRoles``).
- ``bindAddress``: every listener on the unit's stable name, never the wildcard.
- TLS, towards the brokers and towards the clients: ``proxy_tls``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from charms.pulsar_k8s.v0.rendering import client_jaas, render_properties
from charms.pulsar_k8s.v0.workload import pebble_check, workload_service
from charms.pulsar_zookeeper_k8s.v0.zookeeper import CLIENT_TLS_CA_PATH, client_tls_jvm_options
from proxy_config import ProxyConfig
from proxy_probes import PLAIN_WEB, WEB_SERVICE_PORT, ProxyWeb, status_probe
from proxy_tls import (
    BROKER_CA_PATH,
    NO_TLS,
    TLS_PRIVATE_PATHS,
    ProxyTls,
    broker_tls_properties,
    proxy_serving_tls_properties,
)

PULSAR_HOME = "/pulsar"
PROXY_CONF_PATH = f"{PULSAR_HOME}/conf/proxy.conf"
JAAS_CONF_PATH = f"{PULSAR_HOME}/conf/proxy-zookeeper-jaas.conf"
AUTH_DIR = f"{PULSAR_HOME}/conf/auth"
TOKEN_KEY_PATH = f"{AUTH_DIR}/token.key"
PROXY_TOKEN_PATH = f"{AUTH_DIR}/proxy.token"
# The CA a TLS ZooKeeper's certificate is checked against (public; pushed only with TLS on):
# the path the brokers and bookies use too.
ZOOKEEPER_CA_PATH = CLIENT_TLS_CA_PATH
PRIVATE_PATHS = frozenset({JAAS_CONF_PATH, TOKEN_KEY_PATH, PROXY_TOKEN_PATH, *TLS_PRIVATE_PATHS})
# Outside any storage: a new pod starts without it; the charm writes it before the start.
STATUS_FILE_PATH = f"{PULSAR_HOME}/status"

SERVICE_PORT = 6650
SERVICE = "proxy"
LAYER_LABEL = "pulsar-proxy"
ALIVE_CHECK = "proxy-alive"
READY_CHECK = "proxy-ready"
# The proxy closes its client connections on SIGTERM; give it time before SIGKILL.
KILL_DELAY_SECONDS = 10

TOKEN_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
TOKEN_CLIENT_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
# The brokers' super-users: the operator's admin token works through the proxy too.
SUPER_USER_ROLES = ("admin", "pulsar-broker")
CONF_HEADER = "Managed by the pulsar-proxy-k8s charm: edits are overwritten."
# Keys whose value is a socket bind address: never the wildcard.
LISTENER_KEYS = ("bindAddress", "advertisedAddress")
_PULSAR_ENV_EXTRA_OPTS = (
    "-Dpulsar.allocator.exit_on_oom=true",
    "-Dio.netty.recycler.maxCapacityPerThread=4096",
)


@dataclass(frozen=True)
class ProxyInputs:
    """Everything proxy.conf depends on: config, the unit's address and the brokers' offer."""

    config: ProxyConfig
    address: str
    cluster_name: str
    broker_service_url: str
    web_service_url: str
    metadata_store_url: str
    # PEM CA chain of a TLS ZooKeeper; "" for plain text.
    zookeeper_tls_ca: str = ""
    # The brokers' TLS URLs and CA (the proxy then talks TLS to them); "" for plain text.
    broker_service_url_tls: str = ""
    web_service_url_tls: str = ""
    broker_tls_ca: str = ""
    # TLS towards the clients (this unit's certificate) and the plain-text binary port.
    tls: ProxyTls = NO_TLS


@dataclass(frozen=True)
class ProxySecrets:
    """The private material from the relation's secret (``repr`` hides it)."""

    token: str = field(repr=False)
    token_key: str = field(repr=False)
    zookeeper_username: str = field(repr=False)
    zookeeper_password: str = field(repr=False)


def proxy_properties(inputs: ProxyInputs) -> dict[str, str]:
    """Return the proxy.conf keys the charm owns (the file holds only these)."""
    config = inputs.config
    return {
        "clusterName": inputs.cluster_name,
        "brokerServiceURL": inputs.broker_service_url,
        "brokerWebServiceURL": inputs.web_service_url,
        # Functions admin calls go to the brokers' web service (in-broker worker).
        "functionWorkerWebServiceURL": inputs.web_service_url,
        "metadataStoreUrl": inputs.metadata_store_url,
        "configurationMetadataStoreUrl": inputs.metadata_store_url,
        "bindAddress": inputs.address,
        "advertisedAddress": inputs.address,
        "servicePort": str(SERVICE_PORT),
        "webServicePort": str(WEB_SERVICE_PORT),
        "statusFilePath": STATUS_FILE_PATH,
        "maxConcurrentInboundConnections": str(config.max_concurrent_inbound_connections),
        # Clients: the brokers' tokens, verified with the same key.
        "authenticationEnabled": "true",
        "authenticationProviders": TOKEN_PROVIDER,
        "tokenSecretKey": f"file://{TOKEN_KEY_PATH}",
        "authorizationEnabled": "true",
        "superUserRoles": ",".join(SUPER_USER_ROLES),
        "forwardAuthorizationCredentials": "true",
        # To the brokers: the proxy role's token.
        "brokerClientAuthenticationPlugin": TOKEN_CLIENT_PLUGIN,
        "brokerClientAuthenticationParameters": f"file://{PROXY_TOKEN_PATH}",
        "webSocketServiceEnabled": "true" if config.websocket_service_enabled else "false",
        # Prometheus scrapes /metrics/ without a token, as on the brokers.
        "authenticateMetricsEndpoint": "false",
        **broker_tls_properties(inputs.broker_service_url_tls, inputs.web_service_url_tls),
        **proxy_serving_tls_properties(inputs.tls),
    }


def render_proxy_conf(inputs: ProxyInputs) -> str:
    return render_properties(proxy_properties(inputs), CONF_HEADER)


def proxy_files(inputs: ProxyInputs, secrets: ProxySecrets) -> dict[str, str | bytes]:
    """Every file the proxy reads, by container path.

    The key file holds the RAW key bytes (a ``file://`` tokenSecretKey is read as bytes).
    """
    files: dict[str, str | bytes] = {
        PROXY_CONF_PATH: render_proxy_conf(inputs),
        JAAS_CONF_PATH: client_jaas(secrets.zookeeper_username, secrets.zookeeper_password),
        TOKEN_KEY_PATH: base64.b64decode(secrets.token_key),
        PROXY_TOKEN_PATH: secrets.token,
    }
    if inputs.zookeeper_tls_ca:
        files[ZOOKEEPER_CA_PATH] = inputs.zookeeper_tls_ca
    if inputs.broker_service_url_tls:
        # A restart input: the proxy's broker clients read the trust file at start.
        files[BROKER_CA_PATH] = inputs.broker_tls_ca
    return files


def proxy_environment(config: ProxyConfig, zookeeper_tls: bool = False) -> dict[str, str]:
    """Environment of the proxy service: memory, JAAS login, logging to stdout (Pebble)."""
    extra_opts = " ".join(
        (
            f"-Djava.security.auth.login.config={JAAS_CONF_PATH}",
            # ZooKeeper 3.9 clients default to FIPS mode, which refuses DIGEST-MD5 SASL.
            "-Dzookeeper.fips-mode=false",
            *(client_tls_jvm_options(ZOOKEEPER_CA_PATH) if zookeeper_tls else ()),
            *_PULSAR_ENV_EXTRA_OPTS,
        )
    )
    return {
        "PULSAR_MEM": (
            f"-Xms{config.heap_mb}m -Xmx{config.heap_mb}m "
            f"-XX:MaxDirectMemorySize={config.direct_memory_mb}m"
        ),
        "PULSAR_EXTRA_OPTS": extra_opts,
        "PULSAR_PROXY_CONF": PROXY_CONF_PATH,
        "PULSAR_LOG_APPENDER": "Console",
        "PULSAR_LOG_LEVEL": config.log_level,
        "PULSAR_LOG_ROOT_LEVEL": config.log_level,
    }


def pebble_layer(
    address: str, env: Mapping[str, str], web: ProxyWeb = PLAIN_WEB
) -> dict[str, Any]:
    """Return the proxy's layer, every field spelled out (unchanged reconciles see no change).

    ``/status.html`` answers 200 while the status file exists: alive restarts a dead proxy,
    ready (what Kubernetes' readiness probe asks) takes it out of the Service. With plain
    text closed both probe 8443 with curl trusting the CA (proxy_probes).
    """
    return {
        "summary": "pulsar-proxy-k8s proxy",
        "services": {
            SERVICE: workload_service(
                "Apache Pulsar proxy",
                f"{PULSAR_HOME}/bin/pulsar proxy",
                env,
                ALIVE_CHECK,
                **{"working-dir": PULSAR_HOME, "kill-delay": f"{KILL_DELAY_SECONDS}s"},
            )
        },
        "checks": {
            ALIVE_CHECK: pebble_check("alive", 6, **status_probe(address, web)),
            READY_CHECK: pebble_check("ready", 3, **status_probe(address, web)),
        },
    }
