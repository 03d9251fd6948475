"""ZooKeeper's TLS: pure renderers from the unit's ``TlsState`` and the quorum TLS stage.

With a certificate from the ``certificates`` relation a server listens for TLS clients on the
secure client port 2182 (Netty server connection factory, PEM key and trust stores); clients
authenticate with SASL as before, so the server asks no client certificate.

Quorum TLS (leader election and the atomic broadcast between members) cannot be switched on
in one restart: a member that speaks TLS cannot talk to one that does not. As ZooKeeper's admin
guide describes ("Upgrading existing non-TLS cluster with no downtime"), the ensemble goes
through stages, each one a rolling restart, the leader taking the next step only once every
member runs the current one:

``off`` -> ``unify`` (``portUnification``: accept TLS and plain quorum connections)
-> ``tls-unified`` (``sslQuorum``: open TLS quorum connections, still accept plain ones)
-> ``tls`` (TLS only). Removing the certificates walks the same stages back.

CA rotation: a member's trust store (quorum and client port alike) and the ``tls-ca`` the
``zookeeper`` relation publishes are one bundle, the CAs every unit currently needs trusted
(:func:`trust_bundle`): the CA of the certificate it has from the provider and the CA of the
certificate its running server presents. A member given a certificate from a new CA keeps
presenting its old one until every other member's running server trusts the new CA
(:func:`present_new_certificate`); once every member presents the new one, the old CA leaves
the bundle. ZooKeeper's PEM trust-store loader (3.9 ``PemReader.loadTrustStore``) reads every
certificate of the file, keyed by its subject name: two CAs with the same subject cannot be
trusted together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from charms.pulsar_k8s.v0.tls import TlsMaterial, TlsPaths, TlsState
from charms.pulsar_k8s.v0.tls import bundle_fingerprints as bundle_fingerprints
from charms.pulsar_k8s.v0.tls import ca_fingerprint as ca_fingerprint
from charms.pulsar_k8s.v0.tls import needed_cas as needed_cas
from charms.pulsar_k8s.v0.tls import present_new_certificate as present_new_certificate
from charms.pulsar_k8s.v0.tls import split_certificates as split_certificates
from charms.pulsar_k8s.v0.tls import trust_bundle as trust_bundle

TLS_DIR = "/pulsar/conf/tls"
TLS_PATHS = TlsPaths(
    certificate=f"{TLS_DIR}/certificate.pem",
    private_key=f"{TLS_DIR}/private-key.pem",
    ca=f"{TLS_DIR}/ca.pem",
)
# ZooKeeper's PEM key store is ONE file: the private key, then the certificate chain.
KEYSTORE_PATH = f"{TLS_DIR}/keystore.pem"
TLS_PRIVATE_PATHS = frozenset({TLS_PATHS.private_key, KEYSTORE_PATH})
SECURE_CLIENT_PORT = 2182

OFF = "off"
UNIFY = "unify"
TLS_UNIFIED = "tls-unified"
TLS = "tls"
STAGES = (OFF, UNIFY, TLS_UNIFIED, TLS)


@dataclass(frozen=True)
class QuorumTls:
    """The quorum settings of one stage."""

    port_unification: bool
    ssl_quorum: bool


QUORUM_SETTINGS = {
    OFF: QuorumTls(port_unification=False, ssl_quorum=False),
    UNIFY: QuorumTls(port_unification=True, ssl_quorum=False),
    TLS_UNIFIED: QuorumTls(port_unification=True, ssl_quorum=True),
    TLS: QuorumTls(port_unification=False, ssl_quorum=True),
}


def next_stage(current: str, target_tls: bool) -> str:
    """Return the stage after ``current`` on the way to TLS (``target_tls``) or to plain text."""
    index = STAGES.index(current)
    if target_tls:
        return STAGES[min(index + 1, len(STAGES) - 1)]
    return STAGES[max(index - 1, 0)]


def plan_stage(
    current: str,
    target_tls: bool,
    applied: list[str | None],
    any_started: bool,
    any_certificate: bool = True,
) -> str:
    """Leader: the quorum stage the members should run now.

    ``applied``: the stage each member's running server was started with (None: unknown).
    Before any member started, the target is taken at once (nothing runs to keep talking);
    so is plain text once no member has a certificate (none can open TLS any more, and each
    restarts anyway); otherwise one step, once every member runs the current stage.
    """
    target = TLS if target_tls else OFF
    if current == target:
        return current
    if not any_started or (not target_tls and not any_certificate):
        return target
    if all(stage == current for stage in applied):
        return next_stage(current, target_tls)
    return current


def effective_stage(stage: str, state: TlsState) -> str:
    """Return the stage this unit renders: without a certificate it cannot open TLS."""
    if state.enabled or not QUORUM_SETTINGS[stage].ssl_quorum:
        return stage
    return UNIFY


def tls_properties(state: TlsState, address: str, stage: str) -> list[tuple[str, str | int]]:
    """zookeeper.conf settings for TLS: the secure client port and the quorum stage.

    ZooKeeper passes unknown zoo.cfg keys on as ``zookeeper.<key>`` system properties, which is
    where its X509 utilities read ``ssl.*`` and ``ssl.quorum.*``.
    """
    quorum = QUORUM_SETTINGS[effective_stage(stage, state)]
    settings: list[tuple[str, str | int]] = []
    if state.enabled:
        settings += [
            ("serverCnxnFactory", "org.apache.zookeeper.server.NettyServerCnxnFactory"),
            ("secureClientPort", SECURE_CLIENT_PORT),
            ("secureClientPortAddress", address),
            ("ssl.keyStore.location", KEYSTORE_PATH),
            ("ssl.keyStore.type", "PEM"),
            ("ssl.trustStore.location", TLS_PATHS.ca),
            ("ssl.trustStore.type", "PEM"),
            # clients log in with SASL; no client certificate is asked for
            ("ssl.clientAuth", "none"),
            ("ssl.quorum.keyStore.location", KEYSTORE_PATH),
            ("ssl.quorum.keyStore.type", "PEM"),
            ("ssl.quorum.trustStore.location", TLS_PATHS.ca),
            ("ssl.quorum.trustStore.type", "PEM"),
            # A member checks the certificate of the member it connects to against that
            # member's name (server.N line). The reverse-DNS check of the connecting member's
            # address is off: pod IPs have no reverse record naming the pod.
            ("ssl.quorum.hostnameVerification", "true"),
            ("ssl.quorum.clientHostnameVerification", "false"),
        ]
    settings += [
        ("sslQuorum", "true" if quorum.ssl_quorum else "false"),
        ("portUnification", "true" if quorum.port_unification else "false"),
    ]
    return settings


def tls_files(material: TlsMaterial | None, trust: str = "") -> dict[str, str]:
    """PEM files (none when TLS is off); the key and the key store are pushed 0600.

    ``material``: the certificate the server presents; ``trust``: the trust bundle (default:
    the material's CA alone).
    """
    if material is None:
        return {}
    return {
        **material.files(TLS_PATHS),
        TLS_PATHS.ca: trust or material.ca,
        KEYSTORE_PATH: material.private_key.rstrip("\n") + "\n" + material.certificate,
    }


# ---- CA rotation: the trust bundle and when to present the new certificate -----------------

# The PEM helpers are the shared core's (one parser for every charm), re-exported here.


@dataclass(frozen=True)
class MemberTls:
    """What one member's server should run with: which certificate, which trust bundle."""

    present_new: bool
    trust: str


def plan_member_tls(
    newest_ca: str,
    presented_ca: str,
    others_trusted: Iterable[frozenset[str] | None],
    others_cas: Iterable[str],
) -> MemberTls:
    """One member's certificate and trust bundle during (or outside) a CA rotation.

    ``others_cas``: every CA the other units need trusted (their ``tls-cas``). The trust
    bundle is those plus this member's newest CA and the CA of the certificate it presents:
    the old CA stays until no unit presents it any more; a member that switches to its new
    certificate stops asking for its old CA in the same restart.
    """
    present_new = present_new_certificate(newest_ca, presented_ca, others_trusted)
    presented = newest_ca if present_new else presented_ca
    return MemberTls(present_new, trust_bundle([newest_ca, presented, *others_cas]))


@dataclass(frozen=True)
class SessionPeer:
    """One member as the super-user session sees it.

    Its host, whether its running server serves the secure client port, the CAs it needs trusted.
    """

    host: str
    secure_port: bool
    cas: tuple[str, ...] = ()


def super_session(
    hosts: Iterable[str], peers: Iterable[SessionPeer], own_ca: str | None
) -> tuple[list[str], str]:
    """Return the hosts of the charm's super-user session and its CA bundle ("": plain text).

    The session adds the super user's digest credential, which ZooKeeper receives in the clear:
    while this unit has a certificate (``own_ca``), it goes over TLS to those of ``hosts``
    whose running server serves 2182 (a member restarting for a new client's credentials, or
    one not yet moved, is left out rather than spoken to in plain text). Plain text to every
    host only while none of them serves 2182 (TLS not yet on, or being removed).
    """
    hosts = list(hosts)
    if not own_ca:
        return hosts, ""
    peers = list(peers)
    secure = {peer.host for peer in peers if peer.secure_port}
    tls_hosts = [host for host in hosts if host in secure]
    if not tls_hosts:
        return hosts, ""
    return tls_hosts, trust_bundle([own_ca, *(ca for peer in peers for ca in peer.cas)])
