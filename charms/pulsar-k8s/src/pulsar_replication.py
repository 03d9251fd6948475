"""Geo-replication between two pulsar-k8s clusters over the ``pulsar_replication`` interface.

Two endpoints carry one symmetric contract (``interfaces/pulsar_replication/v0``):
``replication-offer`` (provides) and ``replication`` (requires), so two applications, in one
model or across models (``juju offer``/``consume``), relate with
``juju integrate a:replication-offer b:replication``. Each leader publishes in its application
databag its ``cluster-name``, ``broker-service-url``, ``web-service-url`` and, once it knows the
peer's cluster name, ``token-secret-id``: a Juju secret granted to the relation holding a token
of the role ``replicator-<peer cluster>`` that the peer's brokers use against this cluster.

Each cluster has its own configuration store, so each leader does its half, level-triggered, on
its own broker: it registers the peer cluster (``/admin/v2/clusters/{peer}`` with the peer's
URLs and the peer's token), and for every namespace of ``replicated-namespaces`` it adds the
peer to the tenant's allowed clusters, creates the namespace, grants the peer's replicator role
``produce`` (what the replicator's producer needs, and its topic lookup), and sets the
namespace's replication clusters to this cluster plus every peer. What it set up is recorded in
the peer relation (``replication-peers``).

When a relation is gone, replication with that peer is *paused*, not undone: the peer stays in
the namespaces' replication clusters and stays registered, so each topic keeps its replicator
cursor (``pulsar.repl.<peer>``) and the messages produced meanwhile (the replication backlog).
The leader revokes the peer's replicator role on the namespaces: Pulsar 4.0 re-checks the
permission of every producer of a loaded topic when its namespace policies change
(``PersistentTopic.applyUpdatedTopicPolicies`` -> ``Producer.checkPermissionsAsync``), so the
peer's replicator producers connected here are closed, and their reconnection is refused. The
peer's leader does the same on its side, so nothing crosses either way. Relating again grants
the role again; the replicators, which retry with a backoff, reconnect and deliver the backlog
in order.
The registration is kept as it was (not blanked): Pulsar 4.0 builds a replication client once
per peer cluster and closes it only when the registration is deleted, never when it is updated.

TLS: when this cluster's brokers serve TLS, the leader also publishes ``broker-service-url-tls``
(``pulsar+ssl://<Service>:6651``), ``web-service-url-tls`` (``https://<Service>:8443``) and
``tls-ca``, the CA bundle its brokers' certificates chain to (the trust bundle the client
relation publishes; public data); the plain URLs are published only while the plain-text ports
are open (``tls-plaintext-enabled``). When the peer publishes TLS URLs, EVERY unit writes the
peer's CA to ``/pulsar/conf/tls/replication/<peer cluster>.pem`` in its reconcile (from the same
relation data, woken by the same relation-changed), before its broker starts; the leader
registers the peer with ``serviceUrlTls``, ``brokerServiceUrlTls``, ``brokerClientTlsEnabled``
and ``brokerClientTrustCertsFilePath`` naming that file once its own copy is written. The
replicator runs on whichever broker owns the topic, so every broker needs the file: a unit
added later writes it in its first reconcile, before its broker starts. Pulsar's brokers reach
every peer cluster over TLS once their own ``brokerClientTlsEnabled`` is on (this cluster serves
TLS), so a peer without TLS is named in the status. A registration changed by the peer switching
TLS on or off reaches a broker's cached replication client only when that broker restarts
(Pulsar 4.0 keeps one client per peer cluster; see docs/how-to/enable-tls.md).

Taking a namespace out of ``replicated-namespaces`` while paused stops it for good: the peer
leaves its replication clusters (Pulsar deletes the replicator and its backlog), and once no
namespace replicates with the peer, the tenant no longer allows it and its registration is
deleted; the status then says replication stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ops
import pulsar_admin
import pulsar_tokens
from charms.pulsar_k8s.v0 import statuses
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.pulsar_client import validate_namespace
from charms.pulsar_k8s.v0.tls import PULSAR_TLS_DIR, split_certificates, trust_bundle
from charms.pulsar_k8s.v0.validation import InvalidField, is_hostname, parse_credential
from cryptography import x509
from pulsar_config import PulsarConfig, is_cluster_name
from pulsar_peer_state import REPLICATION_PEERS_KEY
from pulsar_probes import plain_web_open
from pulsar_render import BROKER_SERVICE_PORT, WEB_SERVICE_PORT, AuthMaterial, service_fqdn
from pulsar_tls import BrokerTls, client_tls_endpoints

if TYPE_CHECKING:
    from pulsar_charm import PulsarBrokerCharm

logger = logging.getLogger(__name__)

OFFER_ENDPOINT = "replication-offer"
REPLICATION_ENDPOINT = "replication"
ENDPOINTS = (OFFER_ENDPOINT, REPLICATION_ENDPOINT)

CLUSTER_NAME_KEY = "cluster-name"
BROKER_SERVICE_URL_KEY = "broker-service-url"
WEB_SERVICE_URL_KEY = "web-service-url"
TOKEN_SECRET_KEY = "token-secret-id"
BROKER_SERVICE_URL_TLS_KEY = "broker-service-url-tls"
WEB_SERVICE_URL_TLS_KEY = "web-service-url-tls"
TLS_CA_KEY = "tls-ca"
# Where every unit writes a TLS peer's CA (the registration's brokerClientTrustCertsFilePath).
PEER_CA_DIR = f"{PULSAR_TLS_DIR}/replication"
TOKEN_FIELD = "token"
# The peer application databag key of what the leader set up (see ``Record``).
PEERS_KEY = REPLICATION_PEERS_KEY

TOKEN_AUTH_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
ROLE_PREFIX = "replicator-"
# The replicator's producer on the remote cluster: produce covers its lookup and its writes.
REPLICATOR_ACTIONS = ("produce",)

# PeerRecord.state: replicating, or paused (the relation is gone, the backlog kept).
LIVE, PAUSED = "", "paused"
STATES = (LIVE, PAUSED)

_URL = re.compile(r"^(?P<scheme>[a-z+]+)://(?P<host>[^:/]+):(?P<port>[0-9]{1,5})/?$")
_SCHEMES = {
    BROKER_SERVICE_URL_KEY: ("pulsar", "pulsar+ssl"),
    WEB_SERVICE_URL_KEY: ("http", "https"),
    BROKER_SERVICE_URL_TLS_KEY: ("pulsar+ssl",),
    WEB_SERVICE_URL_TLS_KEY: ("https",),
}
# The ClusterData fields the charm sets, compared to decide whether to update a registration
# (authenticationParameters, the token, is compared through the record's token id).
REGISTRATION_FIELDS = (
    "serviceUrl",
    "brokerServiceUrl",
    "serviceUrlTls",
    "brokerServiceUrlTls",
    "brokerClientTlsEnabled",
    "brokerClientTrustCertsFilePath",
    "authenticationPlugin",
)


def replicator_role(peer_cluster: str) -> str:
    """Return the role the peer cluster's brokers replicate into this cluster with."""
    return f"{ROLE_PREFIX}{peer_cluster}"


def token_secret_label(relation_id: int) -> str:
    return f"{REPLICATION_ENDPOINT}.{relation_id}.token.secret"


def peer_ca_path(peer_cluster: str) -> str:
    """Return the file every unit writes the TLS peer's CA to (a validated cluster name)."""
    return f"{PEER_CA_DIR}/{peer_cluster}.pem"


@dataclass(frozen=True)
class PeerTls:
    """The peer's TLS URLs and the CA bundle its brokers' certificates chain to."""

    broker_service_url: str
    web_service_url: str
    # normalised PEM bundle (core tls ``trust_bundle``): what the CA file holds
    ca: str


@dataclass(frozen=True)
class PeerCluster:
    """What the peer published about its cluster, validated ("" : a plain URL not published)."""

    cluster: str
    broker_service_url: str = ""
    web_service_url: str = ""
    tls: PeerTls | None = None


def parse_peer_ca(source: str, value: object) -> str:
    """Return the peer's CA as a normalised bundle; InvalidField unless X.509 PEM certificates."""
    blocks = split_certificates(value) if isinstance(value, str) else []
    try:
        for block in blocks:
            x509.load_pem_x509_certificate(block.encode())
    except ValueError:
        blocks = []
    if not blocks:
        raise InvalidField(source, TLS_CA_KEY, "is not PEM certificates")
    return trust_bundle(blocks)


def parse_peer_tls(source: str, data: Mapping[str, str]) -> PeerTls | None:
    """Read the peer's TLS keys: None when it publishes none, InvalidField when one is refused."""
    keys = (BROKER_SERVICE_URL_TLS_KEY, WEB_SERVICE_URL_TLS_KEY, TLS_CA_KEY)
    values = [data.get(key) for key in keys]
    if not any(values):
        return None
    for key, value in zip(keys, values, strict=True):
        if not value:
            raise InvalidField(source, key, "is missing while the other TLS keys are set")
    broker = parse_service_url(source, BROKER_SERVICE_URL_TLS_KEY, values[0])
    web = parse_service_url(source, WEB_SERVICE_URL_TLS_KEY, values[1])
    return PeerTls(broker, web, parse_peer_ca(source, values[2]))


def parse_peer_cluster(source: str, data: Mapping[str, str]) -> PeerCluster | None:
    """Read the peer's cluster: None while its name or every URL is missing (pure).

    Plain URLs come as a pair, TLS URLs with their CA; either set (or both) is enough.
    InvalidField when a value is refused.
    """
    cluster = data.get(CLUSTER_NAME_KEY)
    if not cluster:
        return None
    if not is_cluster_name(cluster):
        raise InvalidField(source, CLUSTER_NAME_KEY, "is not a cluster name")
    tls = parse_peer_tls(source, data)
    broker, web = data.get(BROKER_SERVICE_URL_KEY), data.get(WEB_SERVICE_URL_KEY)
    if not (broker or web):
        return PeerCluster(cluster, tls=tls) if tls is not None else None
    if not (broker and web):
        missing = WEB_SERVICE_URL_KEY if broker else BROKER_SERVICE_URL_KEY
        raise InvalidField(source, missing, "is missing while the other plain URL is set")
    broker = parse_service_url(source, BROKER_SERVICE_URL_KEY, broker)
    web = parse_service_url(source, WEB_SERVICE_URL_KEY, web)
    return PeerCluster(cluster, broker, web, tls)


def published_cluster(
    cluster_name: str, app_name: str, model_name: str, tls: BrokerTls, ca: str
) -> dict[str, str]:
    """Return what this side publishes about its cluster ("" removes a key) (pure).

    Plain URLs while their ports are open; TLS URLs and the CA bundle while TLS is on.
    """
    service = service_fqdn(app_name, model_name)
    data = {
        CLUSTER_NAME_KEY: cluster_name,
        BROKER_SERVICE_URL_KEY: f"pulsar://{service}:{BROKER_SERVICE_PORT}"
        if tls.plaintext
        else "",
        WEB_SERVICE_URL_KEY: f"http://{service}:{WEB_SERVICE_PORT}" if plain_web_open(tls) else "",
        BROKER_SERVICE_URL_TLS_KEY: "",
        WEB_SERVICE_URL_TLS_KEY: "",
        TLS_CA_KEY: "",
    }
    if tls.enabled and ca:
        urls = client_tls_endpoints(app_name, model_name)
        data[BROKER_SERVICE_URL_TLS_KEY] = urls.broker_service_url
        data[WEB_SERVICE_URL_TLS_KEY] = urls.web_service_url
        data[TLS_CA_KEY] = ca
    return data


@dataclass(frozen=True)
class PeerLink:
    """A replication relation whose peer published everything, validated."""

    relation_id: int
    app_name: str
    cluster: str
    broker_service_url: str
    web_service_url: str
    token: str
    tls: PeerTls | None = None

    def cluster_data(self) -> dict[str, str | bool]:
        """Return the ClusterData this cluster registers the peer with."""
        data: dict[str, str | bool] = {}
        if self.web_service_url:
            data["serviceUrl"] = self.web_service_url
        if self.broker_service_url:
            data["brokerServiceUrl"] = self.broker_service_url
        if self.tls is not None:
            data.update(
                {
                    "serviceUrlTls": self.tls.web_service_url,
                    "brokerServiceUrlTls": self.tls.broker_service_url,
                    "brokerClientTlsEnabled": True,
                    "brokerClientTrustCertsFilePath": peer_ca_path(self.cluster),
                }
            )
        data["authenticationPlugin"] = TOKEN_AUTH_PLUGIN
        data["authenticationParameters"] = f"token:{self.token}"
        return data


def _field(value: object) -> str:
    if value is None or value is False:
        return ""
    return "true" if value is True else str(value)


def registration_differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the registered ClusterData differs from ``wanted`` in a field the charm sets.

    Absent, null, "" and false are one value (Pulsar answers unset fields either way).
    """
    return any(_field(current.get(k)) != _field(wanted.get(k)) for k in REGISTRATION_FIELDS)


@dataclass(frozen=True)
class PeerRecord:
    """What the leader set up for one peer cluster."""

    relation_id: int
    namespaces: tuple[str, ...] = ()
    # pulsar_tokens.key_id of the peer token the registration holds (never the token).
    token_id: str = ""
    # LIVE while the relation exists; PAUSED once it is gone (see the module doc).
    state: str = LIVE


@dataclass(frozen=True)
class Record:
    """The ``replication-peers`` record: peers set up, and peers whose replication stopped."""

    peers: Mapping[str, PeerRecord] = field(default_factory=dict)
    stopped: tuple[str, ...] = ()

    def encode(self) -> str:
        peers = {
            name: {
                "relation": p.relation_id,
                "namespaces": list(p.namespaces),
                "token": p.token_id,
                **({"state": p.state} if p.state else {}),
            }
            for name, p in sorted(self.peers.items())
        }
        return json.dumps({"peers": peers, "stopped": sorted(self.stopped)}, sort_keys=True)


def parse_record(raw: str | None) -> Record:
    """Read the record; InvalidField when the leader's own data is refused."""
    if not raw:
        return Record()
    source, name = "cluster", PEERS_KEY
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidField(source, name, "is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidField(source, name, "is not a JSON object")
    peers_raw, stopped_raw = value.get("peers", {}), value.get("stopped", [])
    if not isinstance(peers_raw, dict) or not isinstance(stopped_raw, list):
        raise InvalidField(source, name, "has no peers object or stopped list")
    peers: dict[str, PeerRecord] = {}
    for cluster, entry in peers_raw.items():
        if not isinstance(cluster, str) or not is_cluster_name(cluster):
            raise InvalidField(source, name, "names a peer that is not a cluster name")
        if not isinstance(entry, dict):
            raise InvalidField(source, name, "has a peer entry that is not an object")
        relation_id, namespaces = entry.get("relation"), entry.get("namespaces", [])
        token_id, state = entry.get("token", ""), entry.get("state", LIVE)
        if not isinstance(relation_id, int) or isinstance(relation_id, bool):
            raise InvalidField(source, name, "has a relation id that is not an integer")
        if not isinstance(namespaces, list) or any(validate_namespace(n) for n in namespaces):
            raise InvalidField(source, name, "has a namespace that is not tenant/namespace")
        if not isinstance(token_id, str) or not re.fullmatch(r"[0-9a-f]{0,64}", token_id):
            raise InvalidField(source, name, "has a token id that is not hexadecimal")
        if state not in STATES:
            raise InvalidField(source, name, "has a peer state that is not known")
        peers[cluster] = PeerRecord(relation_id, tuple(namespaces), token_id, state)
    if not all(isinstance(c, str) and is_cluster_name(c) for c in stopped_raw):
        raise InvalidField(source, name, "lists a stopped peer that is not a cluster name")
    return Record(peers, tuple(stopped_raw))


def parse_service_url(source: str, key: str, value: object) -> str:
    """Parse a peer's ``pulsar://host:port`` or ``http://host:port`` (TLS schemes too)."""
    match = _URL.fullmatch(value) if isinstance(value, str) else None
    if (
        match is None
        or match["scheme"] not in _SCHEMES[key]
        or not is_hostname(match["host"])
        or not 1 <= int(match["port"]) <= 65535
    ):
        schemes = " or ".join(f"{s}://host:port" for s in _SCHEMES[key])
        raise InvalidField(source, key, f"is not {schemes}")
    assert isinstance(value, str)
    return value.rstrip("/")


class ReplicationAdmin(pulsar_admin.PulsarAdmin):
    """The admin calls of geo-replication, on this cluster's own broker."""

    def get_cluster(self, cluster: str) -> pulsar_admin.AdminResult:
        return self._call("GET", f"/admin/v2/clusters/{_q(cluster)}")

    def put_cluster(
        self, cluster: str, data: Mapping[str, str | bool]
    ) -> pulsar_admin.AdminResult:
        return self._call("PUT", f"/admin/v2/clusters/{_q(cluster)}", dict(data))

    def update_cluster(
        self, cluster: str, data: Mapping[str, str | bool]
    ) -> pulsar_admin.AdminResult:
        return self._call("POST", f"/admin/v2/clusters/{_q(cluster)}", dict(data))

    def delete_cluster(self, cluster: str) -> pulsar_admin.AdminResult:
        result = self._call("DELETE", f"/admin/v2/clusters/{_q(cluster)}")
        return pulsar_admin.AdminResult(204, "gone") if result.status == 404 else result

    def replication_clusters(self, namespace: str) -> pulsar_admin.AdminResult:
        return self._call("GET", f"/admin/v2/namespaces/{_ns(namespace)}/replication")

    def set_replication_clusters(
        self, namespace: str, clusters: Iterable[str]
    ) -> pulsar_admin.AdminResult:
        return self._call(
            "POST", f"/admin/v2/namespaces/{_ns(namespace)}/replication", sorted(set(clusters))
        )

    def remove_tenant_cluster(self, tenant: str, cluster: str) -> pulsar_admin.AdminResult:
        """Take ``cluster`` out of the tenant's allowed clusters (no-op when absent or gone)."""
        current = self.get_tenant(tenant)
        if current.status == 404:
            return pulsar_admin.AdminResult(204, "tenant gone")
        if not current.ok:
            return current
        info = _json(current.body)
        allowed = list(info.get("allowedClusters") or [])
        if cluster not in allowed:
            return current
        body = {
            "adminRoles": sorted(info.get("adminRoles") or []),
            "allowedClusters": sorted(c for c in allowed if c != cluster),
        }
        return self._call("POST", f"/admin/v2/tenants/{_q(tenant)}", body)


class PulsarReplication:
    """The broker's side of every replication relation; the leader acts, every unit reports."""

    def __init__(self, charm: PulsarBrokerCharm):
        self._charm = charm
        # Set when an admin call failed: the charm schedules its retry (a real event).
        self.retry_needed = False

    # -- the reconcile step -----------------------------------------------------------------

    def with_replication(
        self, config: PulsarConfig, auth: AuthMaterial, status: ops.StatusBase
    ) -> ops.StatusBase:
        """Leader: keep every peer registered and replicating; everyone: report it."""
        same = self._same_name_peer(config)
        problems: list[str] = []
        if self._charm.unit.is_leader():
            problems = self._serve(config, auth)
        if same is not None:
            # Named by the option, as every Blocked status: the fix is a different name.
            return ops.BlockedStatus(
                f"cluster-name: '{config.cluster_name}' is also the cluster-name of the "
                f"replication peer {same}; replicating clusters need different names"
            )
        if not isinstance(status, ops.ActiveStatus):
            return status
        record = self._record()
        message = status.message
        live = sorted(c for c, p in record.peers.items() if p.state == LIVE)
        paused = sorted(c for c, p in record.peers.items() if p.state == PAUSED)
        if live:
            message += f", replicating with {', '.join(live)}"
        if paused:
            message += (
                f"; replication with {', '.join(paused)} paused (relation removed, backlog "
                "kept): relate again to resume, or take the namespaces out of "
                "replicated-namespaces to stop"
            )
        if record.stopped:
            message += f"; replication with {', '.join(sorted(record.stopped))} stopped"
        return ops.ActiveStatus(statuses.with_problems(message, problems, "replication: "))

    # -- relation data ----------------------------------------------------------------------

    def relations(self) -> list[ops.Relation]:
        return [r for endpoint in ENDPOINTS for r in self._charm.model.relations[endpoint]]

    def _same_name_peer(self, config: PulsarConfig) -> str | None:
        for relation in self.relations():
            if relation.app is None:
                continue
            name = relation.data[relation.app].get(CLUSTER_NAME_KEY)
            if name == config.cluster_name:
                return relation.app.name
        return None

    def read_peer_cluster(self, relation: ops.Relation) -> PeerCluster | None:
        """Return what the peer published about its cluster; None while missing.

        InvalidField when a value is refused.
        """
        if relation.app is None:
            return None
        return parse_peer_cluster(relation.name, relation.data[relation.app])

    def peer_ca_files(self, own_cluster: str) -> dict[str, str]:
        """Every unit: the CA file of each related TLS peer (refused data: no file, never raises).

        Pushed by every unit's reconcile before its broker starts: the replicator runs on the
        broker owning the topic, and the registration names this path on every broker.
        """
        files: dict[str, str] = {}
        for relation in self.relations():
            try:
                peer = self.read_peer_cluster(relation)
            except InvalidField:
                continue  # the leader names it in the status
            if peer is not None and peer.tls is not None and peer.cluster != own_cluster:
                files[peer_ca_path(peer.cluster)] = peer.tls.ca
        return files

    def read_peer_token(self, relation: ops.Relation) -> str | None:
        """Return the peer's token against it; None while missing; InvalidField if refused."""
        if relation.app is None:
            return None
        secret_id = relation.data[relation.app].get(TOKEN_SECRET_KEY)
        if not secret_id:
            return None
        try:
            content = self._charm.model.get_secret(id=secret_id).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None
        source = f"{relation.name} token secret"
        return parse_credential(source, TOKEN_FIELD, content.get(TOKEN_FIELD))

    def _publish(self, relation: ops.Relation, config: PulsarConfig) -> None:
        state = self._charm.tls_state
        tls = BrokerTls.of(state, config.tls_plaintext_enabled)
        # the trust bundle of every unit's CAs (two during a CA rotation), as the client relation
        ca = state.material.ca if state.material is not None else ""
        write_if_different(
            relation.data[self._charm.app],
            published_cluster(
                config.cluster_name, self._charm.app.name, self._charm.model.name, tls, ca
            ),
        )

    def _publish_token(self, relation: ops.Relation, auth: AuthMaterial, peer: str) -> None:
        """Publish the peer's token against this cluster, in a secret granted to the relation."""
        role = replicator_role(peer)
        secret = self._token_secret(relation.id)
        content = _content(secret)
        token = content.get(TOKEN_FIELD) if content else None
        kept = {pulsar_tokens.token_role(k, token) for k in auth.client_keys_kept} if token else ()
        if token is None or role not in kept:
            token = pulsar_tokens.mint_token(auth.client_signing_key, role)
        if secret is None:
            secret = self._charm.app.add_secret(
                {TOKEN_FIELD: token},
                label=token_secret_label(relation.id),
                description=f"pulsar_replication token of relation {relation.id}",
            )
        elif content != {TOKEN_FIELD: token}:
            secret.set_content({TOKEN_FIELD: token})
        secret.grant(relation)
        secret_id = secret.id or secret.get_info().id or ""
        write_if_different(relation.data[self._charm.app], {TOKEN_SECRET_KEY: secret_id})

    def _token_secret(self, relation_id: int) -> ops.Secret | None:
        try:
            return self._charm.model.get_secret(label=token_secret_label(relation_id))
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def _remove_token(self, relation_id: int) -> None:
        secret = self._token_secret(relation_id)
        if secret is None:
            return
        try:
            secret.remove_all_revisions()
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.warning("could not remove the replication secret of %s: %s", relation_id, exc)

    # -- the record -------------------------------------------------------------------------

    def _record(self) -> Record:
        data = self._charm._peer_app_data()
        return parse_record(data.get(PEERS_KEY) if data is not None else None)

    def _write_record(self, record: Record) -> None:
        data = self._charm._peer_app_data()
        if data is not None:
            empty = not record.peers and not record.stopped
            write_if_different(data, {PEERS_KEY: "" if empty else record.encode()})

    # -- the leader's work ------------------------------------------------------------------

    def admin_client(self, auth: AuthMaterial) -> ReplicationAdmin:
        web = self._charm.web
        return ReplicationAdmin(
            web.url(self._charm.unit_address),
            self._charm.key_rotation.local_admin_token(auth),
            web=web,
        )

    def _serve(self, config: PulsarConfig, auth: AuthMaterial) -> list[str]:
        record = self._record()
        problems: list[str] = []
        links: dict[str, PeerLink] = {}
        live_ids = set()
        for relation in self.relations():
            live_ids.add(relation.id)
            self._publish(relation, config)
            app = relation.app.name if relation.app else "?"
            try:
                peer = self.read_peer_cluster(relation)
                if peer is None:
                    problems.append(f"waiting for {app} to publish its cluster")
                    continue
                cluster = peer.cluster
                if cluster == config.cluster_name:
                    continue  # refused: Blocked (same name)
                if cluster in links:
                    problems.append(f"{app}: cluster {cluster} is already related")
                    continue
                # The peer needs only this side's name to get its token: no deadlock.
                self._publish_token(relation, auth, cluster)
                token = self.read_peer_token(relation)
            except InvalidField as exc:
                problems.append(f"{exc} (from {app})")
                continue
            if token is None:
                problems.append(f"waiting for {app} to publish its token")
                continue
            if peer.tls is None and self._charm.tls_state.enabled:
                # Pulsar: brokerClientTlsEnabled makes every replication client use TLS.
                problems.append(
                    f"{app} serves no TLS, and these brokers reach peer clusters over TLS only; "
                    f"relate {app} to a certificates provider"
                )
            written = self._charm.workload.read_text(peer_ca_path(cluster)) if peer.tls else None
            if peer.tls is not None and written != peer.tls.ca:
                # every unit pushes it before this (pulsar_charm); the registration names it
                problems.append(f"waiting for the CA file of cluster {cluster}")
                continue
            links[cluster] = PeerLink(
                relation.id,
                app,
                cluster,
                peer.broker_service_url,
                peer.web_service_url,
                token,
                peer.tls,
            )

        # Relation data problems are woken by the peer's next change; admin failures need a retry.
        waiting_on_peers = len(problems)
        admin = self.admin_client(auth)
        peers = dict(record.peers)
        stopped = set(record.stopped)
        # A peer keeps replicating while its relation exists, even if its data is briefly bad.
        kept = {c for c, p in peers.items() if p.relation_id in live_ids} | set(links)
        wanted = config.replicated

        for cluster, link in sorted(links.items()):
            previous = peers.get(cluster)
            problem = self._register(admin, link, previous)
            if problem:
                problems.append(problem)
                continue
            peers[cluster] = PeerRecord(
                link.relation_id,
                previous.namespaces if previous else (),
                pulsar_tokens.key_id(link.token),
            )
            if previous is not None and previous.state != LIVE:
                logger.info("replication with cluster %s resumes", cluster)
            stopped.discard(cluster)

        registered = {c for c in kept if c in peers and peers[c].state == LIVE}
        # Paused peers stay in the replication clusters of their namespaces (their backlog).
        paused = {c: p for c, p in peers.items() if c not in kept}
        for namespace in wanted if registered else ():
            keep = {c for c, p in paused.items() if namespace in p.namespaces}
            problem = self._replicate(admin, config, namespace, registered, keep)
            if problem:
                problems.append(problem)
                continue
            for cluster in registered:
                entry = peers[cluster]
                if namespace not in entry.namespaces:
                    namespaces = tuple(sorted({*entry.namespaces, namespace}))
                    peers[cluster] = dataclasses.replace(entry, namespaces=namespaces)

        # Namespaces no longer listed stop replicating (the data stays where it is).
        for cluster in sorted(registered):
            entry = self._drop_unlisted(admin, cluster, peers[cluster], wanted, problems)
            if entry is not None:
                peers[cluster] = entry

        # Relations that are gone: pause, keeping the backlog; stop what is no longer listed.
        for cluster in sorted(paused):
            entry = self._drop_unlisted(admin, cluster, paused[cluster], wanted, problems)
            entry = entry or paused[cluster]
            if not entry.namespaces:
                if not self._unregister(admin, cluster, problems):
                    peers[cluster] = entry
                    continue
                self._remove_token(entry.relation_id)
                del peers[cluster]
                stopped.add(cluster)
                logger.info("replication with cluster %s stopped", cluster)
                continue
            peers[cluster] = self._pause(admin, cluster, entry, problems)

        if problems:
            self.retry_needed = len(problems) > waiting_on_peers
            for problem in problems:
                logger.warning("replication: %s", problem)
        self._write_record(Record(peers, tuple(sorted(stopped))))
        return problems

    def _register(
        self, admin: ReplicationAdmin, link: PeerLink, previous: PeerRecord | None
    ) -> str | None:
        """Register the peer cluster, or update it when its URLs or token changed."""
        wanted = link.cluster_data()
        current = admin.get_cluster(link.cluster)
        if current.ok:
            same_urls = not registration_differs(_json(current.body), wanted)
            same_token = previous is not None and previous.token_id == pulsar_tokens.key_id(
                link.token
            )
            if same_urls and same_token:
                return None
            result = admin.update_cluster(link.cluster, wanted)
        elif current.status == 404:
            result = admin.put_cluster(link.cluster, wanted)
            if result.status == 409:
                result = admin.update_cluster(link.cluster, wanted)
        else:
            result = current
        if not result.ok:
            return f"registering cluster {link.cluster}: {result.describe()}"
        logger.info("registered peer cluster %s", link.cluster)
        return None

    def _replicate(
        self,
        admin: ReplicationAdmin,
        config: PulsarConfig,
        namespace: str,
        peers: set[str],
        keep: set[str],
    ) -> str | None:
        """Tenant allows every cluster, namespace exists, roles granted, clusters set.

        ``keep``: paused peers, left in the replication clusters (no grant).
        """
        tenant = namespace.split("/", 1)[0]
        clusters = {config.cluster_name, *peers, *keep}
        result = admin.ensure_tenant(tenant, sorted(clusters))
        if not result.ok:
            return f"tenant {tenant}: {result.describe()}"
        result = admin.permissions(namespace)
        if result.status == 404:
            result = admin.create_namespace(namespace)
            if not result.ok:
                return f"namespace {namespace}: {result.describe()}"
            result = admin.permissions(namespace)
        if not result.ok:
            return f"permissions on {namespace}: {result.describe()}"
        granted = _json(result.body)
        for peer in sorted(peers):
            role = replicator_role(peer)
            if sorted(granted.get(role) or []) != list(REPLICATOR_ACTIONS):
                result = admin.grant(namespace, role, REPLICATOR_ACTIONS)
                if not result.ok:
                    return f"permissions on {namespace}: {result.describe()}"
        return self._set_clusters(admin, namespace, clusters)

    def _set_clusters(
        self, admin: ReplicationAdmin, namespace: str, clusters: set[str]
    ) -> str | None:
        result = admin.replication_clusters(namespace)
        if not result.ok:
            return f"replication clusters of {namespace}: {result.describe()}"
        current = _json_list(result.body)
        if set(current) == clusters:
            return None
        result = admin.set_replication_clusters(namespace, clusters)
        if not result.ok:
            return f"replication clusters of {namespace}: {result.describe()}"
        logger.info("namespace %s replicates on %s", namespace, ", ".join(sorted(clusters)))
        return None

    def _unreplicate(
        self, admin: ReplicationAdmin, namespace: str, peer: str, problems: list[str]
    ) -> bool:
        """Take ``peer`` out of the namespace's replication; True when done (False: retry)."""
        result = admin.replication_clusters(namespace)
        if result.status == 404:
            return True  # the namespace is gone
        if not result.ok:
            problems.append(f"replication clusters of {namespace}: {result.describe()}")
            return False
        current = set(_json_list(result.body))
        if peer in current:
            problem = self._set_clusters(admin, namespace, current - {peer})
            if problem:
                problems.append(problem)
                return False
        result = admin.revoke(namespace, replicator_role(peer))
        if not result.ok:
            problems.append(f"revoking {replicator_role(peer)}: {result.describe()}")
            return False
        return True

    def _drop_unlisted(
        self,
        admin: ReplicationAdmin,
        cluster: str,
        entry: PeerRecord,
        wanted: tuple[str, ...],
        problems: list[str],
    ) -> PeerRecord | None:
        """Stop the peer's namespaces no longer listed, for good; return the entry without them.

        A paused peer's backlog is dropped; a tenant stops allowing the peer once none of its
        namespaces replicates with it. None when nothing was dropped.
        """
        dropped = [n for n in entry.namespaces if n not in wanted]
        if not dropped:
            return None
        remaining = list(entry.namespaces)
        for namespace in dropped:
            if not self._unreplicate(admin, namespace, cluster, problems):
                continue
            tenant = namespace.split("/", 1)[0]
            others = [n for n in remaining if n != namespace and n.split("/", 1)[0] == tenant]
            if not others:
                result = admin.remove_tenant_cluster(tenant, cluster)
                if not result.ok:
                    problems.append(f"tenant {tenant}: {result.describe()}")
                    continue
            remaining.remove(namespace)
            logger.info("namespace %s no longer replicates with cluster %s", namespace, cluster)
        return dataclasses.replace(entry, namespaces=tuple(remaining))

    def _pause(
        self, admin: ReplicationAdmin, cluster: str, entry: PeerRecord, problems: list[str]
    ) -> PeerRecord:
        """Revoke the peer's role: its connected replicators are closed, and refused after."""
        if entry.state == PAUSED:
            return entry
        role = replicator_role(cluster)
        for namespace in entry.namespaces:
            result = admin.revoke(namespace, role)
            if not result.ok:
                problems.append(f"revoking {role}: {result.describe()}")
                return entry
        self._remove_token(entry.relation_id)
        logger.info("replication with cluster %s paused (%s revoked), backlog kept", cluster, role)
        return dataclasses.replace(entry, state=PAUSED)

    def _unregister(self, admin: ReplicationAdmin, cluster: str, problems: list[str]) -> bool:
        result = admin.delete_cluster(cluster)
        if not result.ok:
            problems.append(f"unregistering cluster {cluster}: {result.describe()}")
            return False
        return True


def _content(secret: ops.Secret | None) -> dict[str, str] | None:
    if secret is None:
        return None
    try:
        return secret.get_content(refresh=True)
    except (ops.SecretNotFoundError, ops.ModelError):
        return None


def _q(part: str) -> str:
    return pulsar_admin._q(part)


def _ns(namespace: str) -> str:
    return pulsar_admin._ns(namespace)


def _json(text: str) -> dict[str, Any]:
    return pulsar_admin._json(text)


def _json_list(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
