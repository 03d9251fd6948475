"""Pure renderers: typed inputs in, file contents and Pebble layer dicts out.

Nothing here touches Juju, Pebble or the network, so every function can be property-tested.

Membership is deliberately kept out of the static config: ZooKeeper owns the dynamic config file
once it runs (a reconfig rewrites it and the static file's ``dynamicConfigFile`` line), so the
charm renders the dynamic file only for a server that is about to start, and the static file
holds only what the charm's config decides.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from charms.pulsar_k8s.v0.rendering import render_jaas as render_jaas_sections
from charms.pulsar_k8s.v0.tls import TlsState
from charms.pulsar_k8s.v0.workload import pebble_check, workload_service
from zookeeper_config import ZooKeeperConfig
from zookeeper_tls import OFF, tls_properties

# Paths inside the `pulsar` container.
CONF_PATH = "/pulsar/conf/zookeeper.conf"
DYNAMIC_CONF_PATH = "/pulsar/conf/zookeeper.conf.dynamic"
JAAS_PATH = "/pulsar/conf/zookeeper-jaas.conf"
# What the charm last applied to the running server (hash + users); lives on the container's
# own filesystem on purpose: a new pod loses it, which makes the charm render everything again.
STATE_PATH = "/pulsar/conf/zookeeper-charm-state.json"
STORAGE_PATH = "/pulsar/data"
DATA_DIR = "/pulsar/data/zookeeper"
MYID_PATH = f"{DATA_DIR}/myid"

SERVICE = "zookeeper"
ALIVE_CHECK = "zookeeper-alive"
CLIENT_PORT = 2181
# With the plain client port closed, each server's plain listener moves to the pod's own
# loopback on this base plus its server id (distinct, so pods sharing a network namespace do not
# collide): ZooKeeper's reconfig refuses a server line without a client address.
LOCAL_CLIENT_PORT_BASE = 21810
QUORUM_PORT = 2888
ELECTION_PORT = 3888
ADMIN_PORT = 9990
METRICS_PORT = 8000

SUPER_USER = "super"
QUORUM_USER = "quorum"


def server_id(unit_number: int) -> int:
    """ZooKeeper server ids start at 1; unit numbers at 0."""
    return unit_number + 1


def client_address(address: str, sid: int, plain_open: bool = True) -> str:
    """Where a server's plain-text client listener binds.

    Open: the pod's address, port 2181. Closed: the pod's loopback (reached from inside the pod
    only), because every ``server.N`` line of a reconfig must carry a client address.
    """
    if plain_open:
        return f"{address}:{CLIENT_PORT}"
    return f"127.0.0.1:{LOCAL_CLIENT_PORT_BASE + sid}"


def server_spec(address: str, sid: int, plain_open: bool = True) -> str:
    """Right-hand side of a ``server.N=`` line, with the client address bound explicitly.

    Without ``;address:port`` ZooKeeper binds the client port on 0.0.0.0.
    """
    quorum = f"{address}:{QUORUM_PORT}:{ELECTION_PORT}:participant"
    return f"{quorum};{client_address(address, sid, plain_open)}"


def server_line(sid: int, address: str, plain_open: bool = True) -> str:
    """One ``server.N=...`` line, as in the dynamic file and in reconfig's joining list."""
    return f"server.{sid}={server_spec(address, sid, plain_open)}"


def server_lines(config_text: str) -> dict[int, str]:
    """Server id -> its ``server.N=...`` line in a dynamic config (file or /zookeeper/config)."""
    lines: dict[int, str] = {}
    for line in config_text.splitlines():
        key, _, value = line.strip().partition("=")
        if not key.startswith("server.") or not value:
            continue
        try:
            sid = int(key.removeprefix("server."))
        except ValueError:
            continue
        lines[sid] = line.strip()
    return lines


def parse_members(config_text: str) -> dict[int, str]:
    """Server id -> address from a dynamic config (the file or the /zookeeper/config znode)."""
    return {
        sid: line.partition("=")[2].split(":", 1)[0]
        for sid, line in server_lines(config_text).items()
    }


def render_dynamic_config(members: Mapping[int, str], plain_open: bool = True) -> str:
    """Render the dynamic config file of a server about to start: one line per member."""
    return "".join(f"{server_line(sid, members[sid], plain_open)}\n" for sid in sorted(members))


def render_myid(sid: int) -> str:
    return f"{sid}\n"


def render_static_config(
    config: ZooKeeperConfig,
    address: str,
    tls_settings: Sequence[tuple[str, str | int]] | None = None,
) -> str:
    """zookeeper.conf: everything but membership. ``address`` is this server's own name.

    ``tls_settings``: from ``zookeeper_tls.tls_properties`` (default: no TLS at all).
    """
    if tls_settings is None:
        tls_settings = tls_properties(TlsState(), address, OFF)
    settings: list[tuple[str, str | int]] = [
        ("tickTime", config.tick_time),
        ("initLimit", config.init_limit),
        ("syncLimit", config.sync_limit),
        ("dataDir", DATA_DIR),
        ("maxClientCnxns", config.max_client_connections),
        ("autopurge.snapRetainCount", config.autopurge_snap_retain_count),
        ("autopurge.purgeInterval", config.autopurge_purge_interval),
        ("forceSync", "yes"),
        # membership lives in the dynamic file and changes only through reconfig
        ("standaloneEnabled", "false"),
        ("reconfigEnabled", "true"),
        ("dynamicConfigFile", DYNAMIC_CONF_PATH),
        # quorum and election sockets bind to the address of the server.N line, not 0.0.0.0
        ("quorumListenOnAllIPs", "false"),
        ("admin.enableServer", "true"),
        ("admin.serverAddress", address),
        ("admin.serverPort", ADMIN_PORT),
        (
            "metricsProvider.className",
            "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
        ),
        ("metricsProvider.httpHost", address),
        ("metricsProvider.httpPort", METRICS_PORT),
        ("metricsProvider.exportJvmInfo", "true"),
        ("4lw.commands.whitelist", "*"),
        # clients authenticate with SASL DIGEST-MD5 against the JAAS Server section
        ("authProvider.sasl", "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"),
        # Every client session must authenticate with SASL (bookies, brokers, and the charm's
        # own kazoo session as the SASL user "super") before any other request; otherwise the
        # server closes it (the client sees AUTH_FAILED / SessionClosedRequireSasl). Pulsar's
        # ZKMetadataStore creates its znodes with OPEN_ACL_UNSAFE, so this is what keeps
        # anonymous clients away from them. NOT "digest": digest auth never fails (any
        # "user:password" is accepted and just becomes an id), so listing it would let anyone
        # in. 4lw (ruok, srvr) and the admin server are not sessions and stay open.
        ("enforce.auth.enabled", "true"),
        ("enforce.auth.schemes", "sasl"),
        # servers authenticate each other with the quorum password
        ("quorum.auth.enableSasl", "true"),
        ("quorum.auth.learnerRequireSasl", "true"),
        ("quorum.auth.serverRequireSasl", "true"),
        ("quorum.auth.learner.saslLoginContext", "QuorumLearner"),
        ("quorum.auth.server.saslLoginContext", "QuorumServer"),
        ("quorum.cnxn.threads.size", 20),
        *tls_settings,
    ]
    header = "# Rendered by the pulsar-zookeeper-k8s charm; ZooKeeper rewrites it on reconfig.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings)


def render_jaas(super_password: str, quorum_password: str, users: Mapping[str, str]) -> str:
    """JAAS file: Server (super + every client user), QuorumServer and QuorumLearner."""
    server_users = {SUPER_USER: super_password, **{u: users[u] for u in sorted(users)}}
    return render_jaas_sections(
        {
            "Server": {f"user_{name}": password for name, password in server_users.items()},
            "QuorumServer": {f"user_{QUORUM_USER}": quorum_password},
            "QuorumLearner": {"username": QUORUM_USER, "password": quorum_password},
        }
    )


def digest(username: str, password: str) -> str:
    """ZooKeeper's digest id ``user:base64(sha1(user:password))`` (ACLs and superDigest)."""
    raw = hashlib.sha1(f"{username}:{password}".encode()).digest()
    return f"{username}:{base64.b64encode(raw).decode()}"


def render_env(config: ZooKeeperConfig, super_password: str) -> dict[str, str]:
    """Environment of the ZooKeeper service (read by bin/pulsar)."""
    heap = config.heap_mb
    return {
        "PULSAR_ZK_CONF": CONF_PATH,
        "PULSAR_MEM": f"-Xms{heap}m -Xmx{heap}m -XX:MaxDirectMemorySize={heap}m",
        "PULSAR_EXTRA_OPTS": " ".join(
            [
                f"-Djava.security.auth.login.config={JAAS_PATH}",
                "-Dzookeeper.DigestAuthenticationProvider.superDigest="
                + digest(SUPER_USER, super_password),
                # ZooKeeper 3.9 defaults to FIPS mode, which refuses DIGEST-MD5 for quorum SASL
                # (learners fail with "will not use DIGEST-MD5 ... FIPS mode is enabled").
                "-Dzookeeper.fips-mode=false",
                # the SASL user "super" (JAAS Server section) is ZooKeeper's super user: the
                # charm's kazoo session logs in with it (enforced auth accepts only SASL)
                f"-Dzookeeper.superUser={SUPER_USER}",
                # bin/pulsar's default PULSAR_EXTRA_OPTS, which setting ours replaces
                "-Dpulsar.allocator.exit_on_oom=true",
            ]
        ),
        "PULSAR_LOG_APPENDER": "Console",
        "PULSAR_LOG_LEVEL": config.log_level,
        "PULSAR_LOG_ROOT_LEVEL": config.log_level,
    }


def render_layer(env: Mapping[str, str], address: str) -> dict[str, Any]:
    """Render the Pebble layer: the service plus an alive check on the admin server's ruok."""
    return {
        "summary": "ZooKeeper server",
        "services": {
            SERVICE: workload_service(
                "ZooKeeper server (bin/pulsar zookeeper)",
                "/pulsar/bin/pulsar zookeeper",
                env,
                ALIVE_CHECK,
            )
        },
        "checks": {
            ALIVE_CHECK: pebble_check(
                "alive", 6, http={"url": f"http://{address}:{ADMIN_PORT}/commands/ruok"}
            )
        },
    }
