"""Pure renderers: typed inputs -> broker files, environment, exec argv and Pebble layer.

Nothing here touches Juju or Pebble, so every function can be tested (and fuzzed) on its own.
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml
from charms.pulsar_k8s.v0.rendering import client_jaas, render_properties
from charms.pulsar_k8s.v0.workload import pebble_check, workload_service
from charms.pulsar_zookeeper_k8s.v0.zookeeper import client_tls_jvm_options
from pulsar_bookkeeper_tls import bookkeeper_client_tls_properties
from pulsar_config import PulsarConfig
from pulsar_probes import (
    PLAIN_WEB,
    WEB_SERVICE_PORT,
    WebAccess,
    alive_probe,
    plain_web_open,
    ready_check_command_tls,
)
from pulsar_tls import (
    NO_TLS,
    TLS_PRIVATE_PATHS,
    WEB_SERVICE_PORT_TLS,
    BrokerTls,
    broker_tls_properties,
    client_conf_tls_properties,
    functions_worker_tls_settings,
    internal_broker_url,
)

PULSAR_HOME = "/pulsar"
BROKER_CONF_PATH = "/pulsar/conf/broker.conf"
FUNCTIONS_WORKER_CONF_PATH = "/pulsar/conf/functions_worker.yml"
JAAS_CONF_PATH = "/pulsar/conf/zookeeper-jaas.conf"
CLIENT_CONF_PATH = "/pulsar/conf/client.conf"
# Token authentication material: private to the workload user (0600, uid 10000).
AUTH_DIR = "/pulsar/conf/auth"
SECRET_KEY_PATH = f"{AUTH_DIR}/secret.key"
ADMIN_TOKEN_PATH = f"{AUTH_DIR}/admin.token"
BROKER_TOKEN_PATH = f"{AUTH_DIR}/broker.token"
PRIVATE_PATHS = frozenset(
    {JAAS_CONF_PATH, SECRET_KEY_PATH, ADMIN_TOKEN_PATH, BROKER_TOKEN_PATH, *TLS_PRIVATE_PATHS}
)
TOKEN_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
TOKEN_CLIENT_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
FUNCTION_AUTH_PROVIDER = "org.apache.pulsar.functions.auth.ClearTextFunctionTokenAuthProvider"
# The proxies' role is a super-user and a proxy role (Pulsar authorizes both the proxy role
# and the client role it forwards; a proxy role connecting without a client role is refused).
PROXY_ROLE = "pulsar-proxy"
SUPER_USER_ROLES = ("admin", "pulsar-broker", PROXY_ROLE)
# Outside the storage mount on purpose: it must not survive a pod restart, where the charm
# recreates it just before the broker starts.
STATUS_FILE_PATH = "/pulsar/status"
DATA_DIR = "/pulsar/data"
FUNCTIONS_DOWNLOAD_DIR = "/pulsar/download/pulsar_functions"

ZOOKEEPER_CHROOT = "/pulsar"
BROKER_SERVICE_PORT = 6650
SERVICE_NAME = "broker"
LAYER_NAME = "pulsar-broker"
ALIVE_CHECK = "broker-alive"
READY_PATH = "/admin/v2/brokers/ready"
READY_CHECK = "broker-ready"

# Pebble's default kill-delay (5 s) would SIGKILL a broker in the middle of unloading its
# bundles; the broker's own shutdown timeout is kept below the kill-delay so it finishes first.
KILL_DELAY_SECONDS = 30
BROKER_SHUTDOWN_TIMEOUT_MS = 25_000

# bin/pulsar sources conf/pulsar_env.sh, which sets these only when PULSAR_EXTRA_OPTS is unset:
# setting PULSAR_EXTRA_OPTS for the JAAS file must carry them over.
_PULSAR_ENV_EXTRA_OPTS = (
    "-Dpulsar.allocator.exit_on_oom=true",
    "-Dio.netty.recycler.maxCapacityPerThread=4096",
)
# One-off tools run for seconds: C1 only starts them ~30% faster (measured 1.4 s -> 1.0 s for
# `bookkeeper shell help` on 2 shared CPUs); they sit on the cold-start critical path.
TOOL_HEAP = "-Xmx128m -XX:TieredStopAtLevel=1"
# and the serial collector: no concurrent GC threads competing with the JVMs starting beside
# them (pulsar_env.sh defaults to ZGC with a pre-touched heap, meant for services; measured
# 0.74 s -> 0.64 s for a tool's start on 2 shared CPUs).
TOOL_GC = "-XX:+UseSerialGC"

# WorkerConfig's Java defaults are not the image's functions_worker.yml values: left out, the
# namespace and topic names are null and the periods 0, and the broker dies at start
# (NullPointerException, IllegalArgumentException from scheduleAtFixedRate). These are the
# distribution's values for everything the in-broker worker needs.
_FUNCTIONS_WORKER_BASELINE: dict[str, Any] = {
    "metadataStoreSessionTimeoutMillis": 30000,
    "metadataStoreOperationTimeoutSeconds": 30,
    "metadataStoreCacheExpirySeconds": 300,
    "pulsarFunctionsNamespace": "public/functions",
    "functionMetadataTopicName": "metadata",
    "clusterCoordinationTopicName": "coordinate",
    "functionAssignmentTopicName": "assignments",
    "useCompactedMetadataTopic": False,
    "numHttpServerThreads": 8,
    "schedulerClassName": "org.apache.pulsar.functions.worker.scheduler.RoundRobinScheduler",
    "failureCheckFreqMs": 30000,
    "rescheduleTimeoutMs": 60000,
    "rebalanceCheckFreqSec": -1,
    "initialBrokerReconnectMaxRetries": 60,
    "assignmentWriteMaxRetries": 60,
    "instanceLivenessCheckFreqMs": 30000,
    "topicCompactionFrequencySec": 1800,
    "enableReferencingConnectorDirectoryFiles": True,
    "enableReferencingFunctionsDirectoryFiles": True,
}


@dataclass(frozen=True)
class AuthMaterial:
    """The token-authentication secrets every unit reads from the ``pulsar-internal`` secret.

    ``signing_key`` is the base64-encoded HS256 key; the tokens are JWTs for the ``admin`` and
    ``pulsar-broker`` roles. ``repr`` hides them so they never reach a log line.

    While a signing-key rotation rolls through the brokers, ``previous_signing_key`` and
    ``previous_admin_token`` hold the key being replaced and its admin token (brokers not yet
    restarted still verify with it); they are None otherwise.
    """

    signing_key: str = field(repr=False)
    admin_token: str = field(repr=False)
    broker_token: str = field(repr=False)
    previous_signing_key: str | None = field(default=None, repr=False)
    previous_admin_token: str | None = field(default=None, repr=False)
    # Set by the leader once no serving broker runs the previous key any more.
    clients_on_new_key: bool = False

    @property
    def rotating(self) -> bool:
        """Whether a signing-key rotation is rolling through the brokers."""
        return self.previous_signing_key is not None

    @property
    def client_signing_key(self) -> str:
        """The key relation tokens are signed with: the old one while brokers serve with it."""
        if self.clients_on_new_key:
            return self.signing_key
        return self.previous_signing_key or self.signing_key

    @property
    def client_keys_kept(self) -> tuple[str, ...]:
        """Keys a relation's existing token may be signed with and still be kept.

        Before the clients switch, a token already on the new key is kept too: the switch
        never goes back to the old key.
        """
        if self.previous_signing_key and not self.clients_on_new_key:
            return (self.previous_signing_key, self.signing_key)
        return (self.signing_key,)


@dataclass(frozen=True)
class BrokerInputs:
    """Everything the broker's files depend on, gathered from config and relations."""

    config: PulsarConfig
    unit_address: str
    zookeeper_hosts: str
    bookkeeper_metadata_service_uri: str
    tls: BrokerTls = NO_TLS
    # the bookies serve TLS and this broker has its certificate: the BookKeeper client uses TLS
    bookkeeper_tls: bool = False


def service_fqdn(app_name: str, model_name: str) -> str:
    """Return the Kubernetes service name in front of every broker unit."""
    return f"{app_name}.{model_name}.svc.cluster.local"


def metadata_store_url(zookeeper_hosts: str, chroot: str = ZOOKEEPER_CHROOT) -> str:
    """``zk:h1:2181,h2:2181/pulsar``: the metadata store URL form Pulsar 4 expects."""
    return f"zk:{zookeeper_hosts}{chroot}"


def broker_properties(inputs: BrokerInputs) -> dict[str, str]:
    """Return the broker.conf keys the charm owns (others keep Pulsar's built-in default)."""
    config = inputs.config
    store = metadata_store_url(inputs.zookeeper_hosts)
    backlog_bytes = (
        -1
        if config.backlog_quota_default_limit_mb < 0
        else config.backlog_quota_default_limit_mb * 1024 * 1024
    )
    return {
        "clusterName": config.cluster_name,
        "metadataStoreUrl": store,
        "configurationMetadataStoreUrl": store,
        "bookkeeperMetadataServiceUri": inputs.bookkeeper_metadata_service_uri,
        "advertisedAddress": inputs.unit_address,
        # bindAddress covers both the binary (6650) and the web (8080) listener; the WebSocket
        # service and the in-broker functions worker are served by that same web listener.
        "bindAddress": inputs.unit_address,
        "brokerServicePort": str(BROKER_SERVICE_PORT),
        "webServicePort": str(WEB_SERVICE_PORT),
        "managedLedgerDefaultEnsembleSize": str(config.managed_ledger_ensemble_size),
        "managedLedgerDefaultWriteQuorum": str(config.managed_ledger_write_quorum),
        "managedLedgerDefaultAckQuorum": str(config.managed_ledger_ack_quorum),
        "statusFilePath": STATUS_FILE_PATH,
        "functionsWorkerEnabled": _bool(config.functions_worker_enabled),
        "webSocketServiceEnabled": _bool(config.websocket_service_enabled),
        "defaultRetentionTimeInMinutes": str(config.default_retention_time_minutes),
        "defaultRetentionSizeInMB": str(config.default_retention_size_mb),
        "backlogQuotaDefaultLimitBytes": str(backlog_bytes),
        "brokerShutdownTimeoutMs": str(BROKER_SHUTDOWN_TIMEOUT_MS),
        **auth_properties(),
        **broker_tls_properties(inputs.tls),
        **bookkeeper_client_tls_properties(inputs.bookkeeper_tls),
    }


def auth_properties() -> dict[str, str]:
    """Token authentication and authorization, always on; secrets only by file reference.

    The in-broker WebSocket service is configured from these same broker keys (it authenticates
    clients and talks to the broker with the brokerClient* credentials).
    """
    return {
        "authenticationEnabled": "true",
        "authorizationEnabled": "true",
        "authenticationProviders": TOKEN_PROVIDER,
        "tokenSecretKey": f"file://{SECRET_KEY_PATH}",
        "superUserRoles": ",".join(SUPER_USER_ROLES),
        "proxyRoles": PROXY_ROLE,
        "brokerClientAuthenticationPlugin": TOKEN_CLIENT_PLUGIN,
        "brokerClientAuthenticationParameters": f"file://{BROKER_TOKEN_PATH}",
    }


def functions_worker_auth_settings() -> dict[str, Any]:
    """functions_worker.yml keys so the in-broker worker authenticates and authorizes too."""
    return {
        "authenticationEnabled": True,
        "authorizationEnabled": True,
        "authenticationProviders": [TOKEN_PROVIDER],
        "superUserRoles": list(SUPER_USER_ROLES),
        "brokerClientAuthenticationEnabled": True,
        "brokerClientAuthenticationPlugin": TOKEN_CLIENT_PLUGIN,
        "brokerClientAuthenticationParameters": f"file://{BROKER_TOKEN_PATH}",
        # What function instances authenticate with to the broker.
        "clientAuthenticationPlugin": TOKEN_CLIENT_PLUGIN,
        "clientAuthenticationParameters": f"file://{BROKER_TOKEN_PATH}",
        "properties": {"tokenSecretKey": f"file://{SECRET_KEY_PATH}"},
        # A function instance authenticates with the token it was submitted with (the role of
        # the namespace it was deployed into), not with the broker's super-user token.
        "functionAuthProviderClassName": FUNCTION_AUTH_PROVIDER,
    }


def render_client_conf(unit_address: str, tls: BrokerTls = NO_TLS) -> str:
    """conf/client.conf for bin/pulsar-admin and bin/pulsar-client inside the container.

    It names the admin token by file, so the file itself holds no secret.
    """
    return render_properties(
        {
            "webServiceUrl": f"{internal_web_url(unit_address, tls)}/",
            "brokerServiceUrl": f"{internal_broker_url(unit_address, tls, BROKER_SERVICE_PORT)}/",
            "authPlugin": TOKEN_CLIENT_PLUGIN,
            "authParams": f"file://{ADMIN_TOKEN_PATH}",
            **client_conf_tls_properties(tls),
        },
        "Managed by the pulsar-k8s charm: bin/pulsar-admin and bin/pulsar-client as role admin.",
    )


def internal_web_url(unit_address: str, tls: BrokerTls) -> str:
    """Return the web service URL tools and the functions worker use inside the pod."""
    if plain_web_open(tls):
        return f"http://{unit_address}:{WEB_SERVICE_PORT}"
    return f"https://{unit_address}:{WEB_SERVICE_PORT_TLS}"


def worker_ports(tls: BrokerTls) -> dict[str, int]:
    """functions_worker.yml's web port: 8080, or 8443 when plain text is closed."""
    if plain_web_open(tls):
        return {"workerPort": WEB_SERVICE_PORT}
    return {"workerPortTls": WEB_SERVICE_PORT_TLS}


def auth_files(auth: AuthMaterial) -> dict[str, str | bytes]:
    """Return the private key and token files (the broker reads them by file:// reference).

    The key file holds the RAW key bytes: a file:// tokenSecretKey is read as bytes, and a file
    holding the base64 text made every token fail with 401 on the real broker.
    """
    return {
        SECRET_KEY_PATH: base64.b64decode(auth.signing_key),
        ADMIN_TOKEN_PATH: auth.admin_token,
        BROKER_TOKEN_PATH: auth.broker_token,
    }


def render_broker_conf(inputs: BrokerInputs) -> str:
    return render_properties(
        broker_properties(inputs),
        "Managed by the pulsar-k8s charm: manual edits are overwritten.\n"
        "Keys not listed here keep Pulsar's built-in defaults.",
    )


def functions_worker_settings(inputs: BrokerInputs) -> dict[str, Any]:
    """functions_worker.yml for the worker running inside the broker (process runtime)."""
    config = inputs.config
    return {
        **_FUNCTIONS_WORKER_BASELINE,
        "workerHostname": inputs.unit_address,
        # (the broker sets both from webServicePort/webServicePortTls when it starts the worker)
        **worker_ports(inputs.tls),
        "configurationMetadataStoreUrl": metadata_store_url(inputs.zookeeper_hosts),
        "pulsarFunctionsCluster": config.cluster_name,
        "pulsarServiceUrl": internal_broker_url(
            inputs.unit_address, inputs.tls, BROKER_SERVICE_PORT
        ),
        "pulsarWebServiceUrl": internal_web_url(inputs.unit_address, inputs.tls),
        # Function packages are ledgers too: as many copies as an ordinary entry gets.
        "numFunctionPackageReplicas": config.managed_ledger_write_quorum,
        "downloadDirectory": FUNCTIONS_DOWNLOAD_DIR,
        "functionRuntimeFactoryClassName": (
            "org.apache.pulsar.functions.runtime.process.ProcessRuntimeFactory"
        ),
        # Must be present (even with only one key) or the process runtime factory is null;
        # the instance jar and Python runner come from bin/pulsar's -Dpulsar.functions.* flags.
        "functionRuntimeFactoryConfigs": {"logDirectory": f"{PULSAR_HOME}/logs"},
        "functionsDirectory": f"{PULSAR_HOME}/functions",
        "connectorsDirectory": f"{PULSAR_HOME}/connectors",
        **functions_worker_auth_settings(),
        **functions_worker_tls_settings(inputs.tls),
    }


def render_functions_worker_yml(inputs: BrokerInputs) -> str:
    header = "# Managed by the pulsar-k8s charm: manual edits are overwritten.\n"
    return header + yaml.safe_dump(functions_worker_settings(inputs), sort_keys=True)


def render_jaas(username: str, password: str) -> str:
    """Render the JAAS ``Client`` section the broker and its tools log in to ZooKeeper with."""
    return client_jaas(username, password)


def broker_files(
    inputs: BrokerInputs, username: str, password: str, auth: AuthMaterial
) -> dict[str, str | bytes]:
    """Every file the broker reads, by container path."""
    files: dict[str, str | bytes] = {
        BROKER_CONF_PATH: render_broker_conf(inputs),
        JAAS_CONF_PATH: render_jaas(username, password),
        CLIENT_CONF_PATH: render_client_conf(inputs.unit_address, inputs.tls),
        **auth_files(auth),
    }
    if inputs.config.functions_worker_enabled:
        files[FUNCTIONS_WORKER_CONF_PATH] = render_functions_worker_yml(inputs)
    return files


def jvm_extra_opts(zookeeper_tls: bool = False) -> str:
    return " ".join(
        (
            f"-Djava.security.auth.login.config={JAAS_CONF_PATH}",
            # ZooKeeper 3.9 clients default to FIPS mode, which refuses DIGEST-MD5 ("Client
            # will not use DIGEST-MD5 as SASL mechanism, because FIPS mode is enabled") and
            # then fail every call with AuthFailed: digest login needs FIPS mode off.
            "-Dzookeeper.fips-mode=false",
            # ZooKeeper serves TLS (the shared identity carries its CA): the metadata store's
            # and the BookKeeper client's ZooKeeper clients trust that CA, SASL inside
            *(client_tls_jvm_options() if zookeeper_tls else ()),
            *_PULSAR_ENV_EXTRA_OPTS,
        )
    )


def broker_environment(config: PulsarConfig, zookeeper_tls: bool = False) -> dict[str, str]:
    """Environment of the broker service: memory, JAAS login, logging to stdout (Pebble)."""
    return {
        "PULSAR_MEM": (
            f"-Xms{config.heap_mb}m -Xmx{config.heap_mb}m "
            f"-XX:MaxDirectMemorySize={config.direct_memory_mb}m"
        ),
        "PULSAR_EXTRA_OPTS": jvm_extra_opts(zookeeper_tls),
        "PULSAR_BROKER_CONF": BROKER_CONF_PATH,
        "PULSAR_LOG_APPENDER": "Console",
        "PULSAR_LOG_LEVEL": config.log_level,
        "PULSAR_LOG_ROOT_LEVEL": config.log_level,
    }


def tool_environment(zookeeper_tls: bool = False) -> dict[str, str]:
    """Environment of one-off tools: small heap (the image default is 2 GiB) and the JAAS file."""
    return {
        "PULSAR_MEM": TOOL_HEAP,
        "PULSAR_GC": TOOL_GC,
        "PULSAR_EXTRA_OPTS": jvm_extra_opts(zookeeper_tls),
        "PULSAR_LOG_APPENDER": "Console",
    }


def initialize_cluster_metadata_argv(
    *,
    cluster_name: str,
    zookeeper_hosts: str,
    bookkeeper_metadata_service_uri: str,
    app_name: str,
    model_name: str,
) -> list[str]:
    """``bin/pulsar initialize-cluster-metadata`` against an already initialised BookKeeper.

    ``--existing-bk-metadata-service-uri`` stops the tool from formatting BookKeeper metadata
    under the Pulsar chroot (bookkeeper-k8s owns it), and zero stream-storage containers stops it
    from writing the (unused) table-service metadata into the BookKeeper chroot, where the
    Pulsar ZooKeeper user has no rights.
    """
    store = metadata_store_url(zookeeper_hosts)
    service = service_fqdn(app_name, model_name)
    return [
        f"{PULSAR_HOME}/bin/pulsar",
        "initialize-cluster-metadata",
        "--cluster",
        cluster_name,
        "--metadata-store",
        store,
        "--configuration-metadata-store",
        store,
        "--web-service-url",
        f"http://{service}:{WEB_SERVICE_PORT}",
        "--broker-service-url",
        f"pulsar://{service}:{BROKER_SERVICE_PORT}",
        "--existing-bk-metadata-service-uri",
        bookkeeper_metadata_service_uri,
        "--initial-num-stream-storage-containers",
        "0",
    ]


def broker_command(config: PulsarConfig) -> str:
    command = f"{PULSAR_HOME}/bin/pulsar broker"
    if config.functions_worker_enabled:
        # Explicit, so the worker never depends on the broker's working directory.
        command += f" --functions-worker-conf {FUNCTIONS_WORKER_CONF_PATH}"
    return command


def pebble_layer(
    config: PulsarConfig,
    unit_address: str,
    zookeeper_tls: bool = False,
    web: WebAccess = PLAIN_WEB,
) -> dict[str, Any]:
    """Return the broker's layer; with ``web`` over HTTPS (plain text closed) its checks too."""
    return {
        "summary": "Apache Pulsar broker",
        "services": {
            SERVICE_NAME: workload_service(
                "Pulsar broker",
                broker_command(config),
                broker_environment(config, zookeeper_tls),
                ALIVE_CHECK,
                **{"working-dir": PULSAR_HOME, "kill-delay": f"{KILL_DELAY_SECONDS}s"},
            )
        },
        "checks": {
            # status.html answers 200 only while the status file exists; threshold x period
            # leaves room for a cold start before Pebble restarts the broker.
            ALIVE_CHECK: pebble_check("alive", 6, **alive_probe(unit_address, web)),
            # With authentication on, /admin/v2/brokers/ready answers 401 without a token. The
            # check reads the broker's token file when it runs, so no token is in the plan.
            READY_CHECK: pebble_check(
                "ready",
                3,
                exec={
                    "command": ready_check_command(unit_address, web),
                    "user-id": 10000,
                    "group": "root",
                },
            ),
        },
    }


def ready_check_command(unit_address: str, web: WebAccess = PLAIN_WEB) -> str:
    """Return a bash-only GET of /admin/v2/brokers/ready sending the broker token file.

    bash's /dev/tcp avoids depending on curl being in the image; exit 0 only on HTTP 200.
    Over HTTPS (plain text closed) curl does the TLS, trusting the CA file.
    """
    if web.tls:
        return ready_check_command_tls(unit_address, web, READY_PATH, BROKER_TOKEN_PATH)
    script = (
        f"exec 3<>/dev/tcp/{unit_address}/{WEB_SERVICE_PORT} && "
        'printf "GET /admin/v2/brokers/ready HTTP/1.0\\r\\nHost: %s\\r\\n'
        'Authorization: Bearer %s\\r\\n\\r\\n" '
        f'"{unit_address}" "$(cat {BROKER_TOKEN_PATH})" >&3 && '
        'head -n1 <&3 | grep -q " 200 "'
    )
    return shlex.join(["/bin/bash", "-c", script])


def _bool(value: bool) -> str:
    return "true" if value else "false"
