"""Pure renderers: typed inputs -> bookkeeper.conf, JAAS file, environment, Pebble layer.

Nothing here touches Pebble, Juju or the network, so every function can be property-tested.
The binding keys were checked against BookKeeper 4.17.2 as shipped in the pinned Pulsar (see
NOTES-real-workload.md): the bookie port binds to ``advertisedAddress`` only when
``listeningInterface`` is set (any value), the HTTP server binds to ``httpServerHost`` (default
0.0.0.0), and the Prometheus provider starts its own server on ``prometheusStatsHttpAddress``
only while ``httpServerEnabled`` is false.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bookkeeper_config import BookKeeperConfig
from bookkeeper_tls import bookie_tls_properties
from charms.pulsar_k8s.v0.rendering import client_jaas, render_properties
from charms.pulsar_k8s.v0.workload import WORKLOAD_UID, pebble_check, workload_service
from charms.pulsar_zookeeper_k8s.v0.zookeeper import client_tls_jvm_options

PULSAR_HOME = "/pulsar"
CONF_PATH = f"{PULSAR_HOME}/conf/bookkeeper.conf"
JAAS_PATH = f"{PULSAR_HOME}/conf/bookkeeper-jaas.conf"
JOURNAL_DIR = f"{PULSAR_HOME}/data/bookkeeper/journal"
LEDGERS_DIR = f"{PULSAR_HOME}/data/bookkeeper/ledgers"
STORAGE_DIRS = (JOURNAL_DIR, LEDGERS_DIR)
BOOKKEEPER_SCRIPT = f"{PULSAR_HOME}/bin/bookkeeper"

CONF_HEADER = "Managed by the bookkeeper-k8s charm: edits are overwritten."
BOOKIE_PORT = 3181
HTTP_PORT = 8000
SERVICE = "bookie"
# Kubernetes' default grace period: a bookie stopped by Pebble flushes, closes its journal and
# deletes its registration. Killed sooner (Pebble's default is 5 s), its registration outlives it
# until the ZooKeeper session expires, and the next start can fail to register.
KILL_DELAY = "30s"
# Small heap for the one-off shell tools, so they fit next to a running bookie; C1 only, as they
# run for seconds on the cold-start critical path (1.4 s -> 1.0 s measured for a shell run).
TOOL_MEM = "-Xmx128m -XX:TieredStopAtLevel=1"
# and the serial collector: no concurrent GC threads competing with the JVMs starting beside
# them (bkenv.sh/pulsar_env.sh default to ZGC with a pre-touched heap, meant for services).
TOOL_GC = "-XX:+UseSerialGC"
# The bkenv.sh defaults that a non-empty BOOKIE_EXTRA_OPTS would otherwise drop.
_DEFAULT_EXTRA_OPTS = (
    "-Dio.netty.leakDetection.level=disabled",
    "-Dio.netty.recycler.maxCapacityPerThread=4096",
)
# Keys whose value is a socket bind address: never the wildcard.
LISTENER_KEYS = ("advertisedAddress", "httpServerHost", "prometheusStatsHttpAddress")


def bookie_id(address: str) -> str:
    """Return the id a bookie registers under (useHostNameAsBookieID + advertisedAddress)."""
    return f"{address}:{BOOKIE_PORT}"


def metadata_service_uri(zookeeper_endpoints: Iterable[str], chroot: str) -> str:
    """``zk+hierarchical://h1:2181;h2:2181/<chroot>/ledgers``.

    Semicolons, not commas, separate the hosts: BookKeeper's configuration splits values on commas.
    """
    hosts = ";".join(zookeeper_endpoints)
    return f"zk+hierarchical://{hosts}{chroot.rstrip('/')}/ledgers"


@dataclass(frozen=True)
class BookieInputs:
    """Everything the bookie's files depend on."""

    address: str
    metadata_service_uri: str
    config: BookKeeperConfig
    # the unit has a certificate: the bookie serves TLS (START_TLS) on its port
    tls: bool = False


def bookkeeper_properties(inputs: BookieInputs) -> dict[str, str]:
    """Return the keys of bookkeeper.conf the charm owns (the file holds only these)."""
    c = inputs.config
    return {
        # Identity and metadata: a stable hostname id survives pod IP changes (no cookie mismatch).
        "metadataServiceUri": inputs.metadata_service_uri,
        "zkServers": "",  # the file default localhost:2181 would win over nothing; keep it blank
        # BookKeeper's own default (Pulsar's file says 30 s). A bookie replaced after a crash or a
        # pod loss re-registers only once its old session expires: 30 s kept every bookie of a
        # full-cluster restart unwritable ~30 s after quorum (measured in the rig), 10 s does not.
        "zkTimeout": "10000",
        # Ledgers znodes inherit the chroot's world-readable defaults so brokers (another ZooKeeper
        # user) can read bookie registrations; CREATOR_ALL ACLs would lock them out.
        "zkEnableSecurity": "false",
        "useHostNameAsBookieID": "true",
        "advertisedAddress": inputs.address,
        # Any non-null value makes BookieNettyServer bind to advertisedAddress instead of 0.0.0.0;
        # the interface name itself is not used while advertisedAddress is set.
        "listeningInterface": "eth0",
        "bookiePort": str(BOOKIE_PORT),
        "allowLoopback": "true",
        # HTTP admin API, health and /metrics on one port bound to the unit address.
        "httpServerEnabled": "true",
        "httpServerHost": inputs.address,
        "httpServerPort": str(HTTP_PORT),
        "httpServerClass": "org.apache.bookkeeper.http.vertx.VertxHttpServer",
        "statsProviderClass": "org.apache.bookkeeper.stats.prometheus.PrometheusMetricsProvider",
        # Unused while httpServerEnabled=true (metrics are served by the HTTP server), but bound
        # to the unit address should that ever change.
        "prometheusStatsHttpAddress": inputs.address,
        "prometheusStatsHttpPort": str(HTTP_PORT),
        "journalDirectories": JOURNAL_DIR,
        "ledgerDirectories": LEDGERS_DIR,
        "ledgerStorageClass": "org.apache.bookkeeper.bookie.storage.ldb.DbLedgerStorage",
        "autoRecoveryDaemonEnabled": "true",
        "lostBookieRecoveryDelay": "0",
        "readOnlyModeEnabled": "true",
        "useV2WireProtocol": "true",
        "reppDnsResolverClass": "org.apache.pulsar.zookeeper.ZkBookieRackAffinityMapping",
        "journalSyncData": _bool(c.journal_sync_data),
        "journalMaxGroupWaitMSec": str(c.journal_max_group_wait_ms),
        "journalMaxSizeMB": str(c.journal_max_size_mb),
        "dbStorage_writeCacheMaxSizeMb": str(c.write_cache_mb),
        "dbStorage_readAheadCacheMaxSizeMb": str(c.read_ahead_cache_mb),
        "minorCompactionThreshold": repr(float(c.minor_compaction_threshold)),
        "minorCompactionInterval": str(c.minor_compaction_interval_s),
        "majorCompactionThreshold": repr(float(c.major_compaction_threshold)),
        "majorCompactionInterval": str(c.major_compaction_interval_s),
        "gcWaitTime": str(c.gc_wait_time_ms),
        **bookie_tls_properties(inputs.tls),
    }


def render_bookkeeper_conf(inputs: BookieInputs) -> str:
    return render_properties(bookkeeper_properties(inputs), CONF_HEADER)


def render_jaas(username: str, password: str) -> str:
    """JAAS ``Client`` section: how ZooKeeper clients in the bookie and tools authenticate."""
    return client_jaas(username, password)


def _common_env(log_level: str, zookeeper_tls: bool) -> dict[str, str]:
    extra_opts = " ".join(
        (
            f"-Djava.security.auth.login.config={JAAS_PATH}",
            # ZooKeeper 3.9 clients default to FIPS mode, which refuses DIGEST-MD5 SASL
            # ("Client will not use DIGEST-MD5 ... because FIPS mode is enabled" -> AuthFailed).
            "-Dzookeeper.fips-mode=false",
            # the zookeeper relation says TLS: the ZooKeeper client trusts its CA (SASL inside)
            *(client_tls_jvm_options() if zookeeper_tls else ()),
            *_DEFAULT_EXTRA_OPTS,
        )
    )
    return {
        # bin/pulsar reads PULSAR_BOOKKEEPER_CONF, bin/bookkeeper reads BOOKIE_CONF.
        "PULSAR_BOOKKEEPER_CONF": CONF_PATH,
        "BOOKIE_CONF": CONF_PATH,
        # bkenv.sh: BOOKIE_EXTRA_OPTS, when set, replaces PULSAR_EXTRA_OPTS entirely; set both.
        "BOOKIE_EXTRA_OPTS": extra_opts,
        "PULSAR_EXTRA_OPTS": extra_opts,
        "PULSAR_LOG_APPENDER": "Console",
        "BOOKIE_LOG_APPENDER": "Console",
        "PULSAR_LOG_LEVEL": log_level,
        "PULSAR_LOG_ROOT_LEVEL": log_level,
    }


def bookie_env(config: BookKeeperConfig, zookeeper_tls: bool = False) -> dict[str, str]:
    """Environment of the long-running bookie service."""
    mem = (
        f"-Xms{config.heap_mb}m -Xmx{config.heap_mb}m "
        f"-XX:MaxDirectMemorySize={config.direct_memory_mb}m"
    )
    return {**_common_env(config.log_level, zookeeper_tls), "BOOKIE_MEM": mem, "PULSAR_MEM": mem}


def tool_env(config: BookKeeperConfig, zookeeper_tls: bool = False) -> dict[str, str]:
    """Environment of one-off ``bin/bookkeeper shell`` runs: same credentials, small heap."""
    return {
        **_common_env(config.log_level, zookeeper_tls),
        "BOOKIE_MEM": TOOL_MEM,
        "PULSAR_MEM": TOOL_MEM,
        "BOOKIE_GC": TOOL_GC,
        "PULSAR_GC": TOOL_GC,
    }


def pebble_layer(address: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Return the Pebble layer of the bookie, with every field Pebble would otherwise default.

    Spelling out period/timeout/threshold keeps the layer equal to what the plan reports, so an
    unchanged reconcile sees no difference.
    """
    base = f"http://{address}:{HTTP_PORT}/api/v1/bookie"
    alive = {
        "command": shlex.join(["/bin/bash", "-c", alive_script(address)]),
        "user-id": WORKLOAD_UID,
        "group": "root",
    }
    return {
        "summary": "bookkeeper-k8s bookie",
        "services": {
            SERVICE: workload_service(
                "Apache BookKeeper bookie",
                f"{PULSAR_HOME}/bin/pulsar bookie",
                env,
                "bookie-alive",
                **{"working-dir": PULSAR_HOME, "kill-delay": KILL_DELAY},
            )
        },
        "checks": {
            # A bookie replaying a large journal answers /state late: allow about a minute.
            "bookie-alive": pebble_check("alive", 6, exec=alive),
            "bookie-ready": pebble_check("ready", 3, http={"url": f"{base}/is_ready"}),
        },
    }


def alive_script(address: str, port: int = HTTP_PORT) -> str:
    """Bash that fails while the bookie's HTTP API is silent or says it is shutting down.

    A bookie whose start fails (say, its registration from a killed predecessor has not expired)
    begins its own shutdown and can hang in it for good: the JVM lives on and /state still
    answers, with ``"shuttingDown": true``. Only a restart brings it back, so that state counts
    as dead (a bookie Pebble stops is not checked, and its own clean shutdown ends in seconds).
    """
    return (
        f"{state_body_script(address, port, '2')}"
        '[[ $body == *\\"running\\"* ]] && '
        '! [[ $body =~ \\"shuttingDown\\"[[:space:]]*:[[:space:]]*true ]]'
    )


def state_body_script(address: str, port: int, read_timeout_s: str) -> str:
    """Bash that sets ``$body`` to GET /api/v1/bookie/state's answer ("" if none; no curl)."""
    return (
        f"body=$( (exec 3<>/dev/tcp/{address}/{port} && "
        f'printf "GET /api/v1/bookie/state HTTP/1.0\\r\\nHost: {address}\\r\\n\\r\\n" >&3 && '
        f"while IFS= read -r -t {read_timeout_s} -u 3 line || [[ -n $line ]]; "
        "do printf '%s' \"$line\"; done) 2>/dev/null); "
    )


def _bool(value: bool) -> str:
    return "true" if value else "false"
