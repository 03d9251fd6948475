"""The pulsar-k8s charm: every event runs the same level-triggered ``_reconcile``."""

from __future__ import annotations

import base64
import logging
import time

import ops
import pulsar_admin
from charms.bookkeeper_k8s.v0.bookkeeper import BookKeeperInfo, BookKeeperRequirer
from charms.bookkeeper_k8s.v0.bookkeeper import usable_tls_ca as usable_bookie_ca
from charms.pulsar_k8s.v0 import statuses
from charms.pulsar_k8s.v0.databags import find_app_secret, write_if_different
from charms.pulsar_k8s.v0.log_hygiene import quiet_credential_loggers, redact
from charms.pulsar_k8s.v0.observability import RELATIONS as COS_RELATIONS
from charms.pulsar_k8s.v0.observability import MetricsEndpoint, Observability
from charms.pulsar_k8s.v0.pulsar_client import PulsarClientProvider
from charms.pulsar_k8s.v0.refresh import Refresh
from charms.pulsar_k8s.v0.tls import (
    RELOAD_CHECK,
    ReloadingTrust,
    TlsRequirer,
    TlsState,
    parse_extra_sans,
    tls_sans,
    with_previous_ca,
)
from charms.pulsar_k8s.v0.validation import (
    InvalidField,
    check_zookeeper_connection,
    parse_credential,
    parse_host_ports,
    parse_metadata_service_uri,
)
from charms.pulsar_k8s.v0.view_check import record_view, retry_content
from charms.pulsar_k8s.v0.workload import (
    WorkloadError,
    reconcile_events,
    restart_token,
    unit_fqdn,
)
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import RollingRestart
from charms.pulsar_zookeeper_k8s.v0.zookeeper import (
    CLIENT_TLS_CA_PATH,
    ZooKeeperConnection,
    ZooKeeperRequirer,
    usable_tls_ca,
)
from pulsar_actions import PulsarActions
from pulsar_bookkeeper_tls import bookkeeper_tls_files
from pulsar_client_serving import PulsarClientServing
from pulsar_cluster_record import CLUSTER_TLS_URL_KEY, cluster_tls_urls
from pulsar_cluster_record import converge as converge_cluster_record
from pulsar_config import PulsarConfig
from pulsar_function_serving import PulsarFunctionServing
from pulsar_key_rotation import (
    ADMIN_TOKEN_FIELD,
    BROKER_TOKEN_FIELD,
    PREVIOUS_ADMIN_TOKEN_FIELD,
    PREVIOUS_SIGNING_KEY_FIELD,
    SIGNING_KEY_FIELD,
    SigningKeyRotation,
    new_auth_content,
)
from pulsar_peer_state import (
    INTERNAL_SECRET_ID_KEY,
    METADATA_CLUSTER_NAME_KEY,
    METADATA_INITIALISED_KEY,
    PEER_RELATION,
    PulsarPeerState,
)
from pulsar_peer_state import parse as parse_peer_state
from pulsar_probes import (
    PLAIN_WEB,
    PROBE_CA_PATH,
    WebAccess,
    plain_web_open,
    web_access,
)
from pulsar_proxy_serving import PROXY_RELATION, PulsarProxyServing
from pulsar_render import (
    BROKER_SERVICE_PORT,
    JAAS_CONF_PATH,
    WEB_SERVICE_PORT,
    ZOOKEEPER_CHROOT,
    AuthMaterial,
    BrokerInputs,
    broker_files,
    initialize_cluster_metadata_argv,
    pebble_layer,
    render_jaas,
    tool_environment,
)
from pulsar_replication import ENDPOINTS as REPLICATION_ENDPOINTS
from pulsar_replication import PulsarReplication
from pulsar_tls import BROKER_SERVICE_PORT_TLS, WEB_SERVICE_PORT_TLS, BrokerTls
from pulsar_view import (
    FUNCTIONS_VIEW_CHECK,
    READY,
    SERVING_PATH,
    VIEW_CHECK,
    VIEW_PATH,
    broker_state,
    view_layer,
    watched_layer,
)
from pulsar_workload import PulsarWorkload
from pulsar_zookeeper_identity import broker_zookeeper

logger = logging.getLogger(__name__)

CONTAINER = "pulsar"
ZOOKEEPER_RELATION = "zookeeper"
BOOKKEEPER_RELATION = "bookkeeper"
CLIENT_RELATION = "pulsar"
CERTIFICATES_RELATION = "certificates"

# The app secret holding the token signing key and the charm's own tokens (its fields, and the
# previous key kept while a rotation rolls, are named in pulsar_key_rotation).
INTERNAL_SECRET_LABEL = "pulsar-internal"

# initialize-cluster-metadata took ~4 s on the real distribution; ZooKeeper session setup can
# take up to its 30 s session timeout when a server is down.
INIT_TIMEOUT_SECONDS = 120.0
# A client request that failed (namespace, grant, revoke) is retried this long after.
RETRY_AFTER_S = 5.0


class PulsarBrokerCharm(ops.CharmBase):
    """Apache Pulsar broker on Kubernetes."""

    _view_stale = False
    _reload_stale = False
    # This unit's TLS state, read by each reconcile (the client relation publishes from it).
    tls_state = TlsState()
    _ports: tuple[int, ...] = (BROKER_SERVICE_PORT, WEB_SERVICE_PORT)

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        quiet_credential_loggers()
        self.zookeeper = ZooKeeperRequirer(self, ZOOKEEPER_RELATION, chroot=ZOOKEEPER_CHROOT)
        self.bookkeeper = BookKeeperRequirer(self, BOOKKEEPER_RELATION)
        self.restart_lock = RollingRestart(self, PEER_RELATION)
        self.workload = PulsarWorkload(self.unit.get_container(CONTAINER))
        # Before the reconcile's observers: the library stores and requests first.
        # An invalid tls-extra-sans blocks the reconcile; the request keeps the charm's names.
        extra = parse_extra_sans(self.config.get("tls-extra-sans", "")) or ()
        self.tls = TlsRequirer(
            self,
            sans=tls_sans(self.unit.name, self.app.name, self.model.name, extra),
            relation_name=CERTIFICATES_RELATION,
        )
        # A CA rotation across the brokers: trust bundles in the peer relation (core tls).
        self.trust = ReloadingTrust(self, self.workload, PEER_RELATION)
        self.clients = PulsarClientProvider(self, CLIENT_RELATION)
        self.client_serving = PulsarClientServing(self)
        self.function_serving = PulsarFunctionServing(self)
        self.replication = PulsarReplication(self)
        self.proxy_serving = PulsarProxyServing(self)
        self.key_rotation = SigningKeyRotation(self)
        self.actions = PulsarActions(self)
        self.observability = Observability(
            self,
            lambda: metrics_endpoint(self.web),
            PEER_RELATION,
            lambda unit: unit_fqdn(unit, self.app.name, self.model.name),
        )
        self.refresh = Refresh(self, PEER_RELATION, self._refresh_problems)

        for event in reconcile_events(
            self,
            CONTAINER,
            relations=(
                PEER_RELATION,
                ZOOKEEPER_RELATION,
                BOOKKEEPER_RELATION,
                CLIENT_RELATION,
                PROXY_RELATION,
                CERTIFICATES_RELATION,
                *REPLICATION_ENDPOINTS,
                *COS_RELATIONS,
            ),
            storages=("data",),
        ):
            framework.observe(event, self._on_event)
        framework.observe(self.tls.available, self._on_event)
        # secret-remove (nobody tracks a revision any more, e.g. the one holding a rotated-out
        # signing key): the tls-certificates library observes it for EVERY secret this unit
        # owns and removes that revision; a second removal here would fail the hook.

    def _on_event(self, event: ops.EventBase) -> None:
        # The view check failed: the view is stale; record it afresh even if unchanged.
        self._view_stale = (
            isinstance(event, ops.PebbleCheckFailedEvent) and event.info.name == VIEW_CHECK
        )
        self._reload_stale = (
            isinstance(event, ops.PebbleCheckFailedEvent) and event.info.name == RELOAD_CHECK
        )
        self.function_serving.view_stale = (
            isinstance(event, ops.PebbleCheckFailedEvent)
            and event.info.name == FUNCTIONS_VIEW_CHECK
        )
        self._reconcile()

    def _refresh_problems(self) -> list[str]:
        """Run the pre-refresh check: every broker answers ``/admin/v2/brokers/ready``."""
        auth = self.auth_material()
        if auth is None:
            return [f"the {INTERNAL_SECRET_LABEL} secret is not available yet"]
        token = self.key_rotation.local_admin_token(auth)
        relation = self.model.get_relation(PEER_RELATION)
        units = [self.unit, *(relation.units if relation is not None else ())]
        return [
            f"{unit.name} broker not serving"
            for unit in sorted(units, key=lambda u: u.name)
            if not pulsar_admin.broker_ready(
                unit_fqdn(unit.name, self.app.name, self.model.name),
                timeout=3.0,
                token=token,
                web=self.web,
            )
        ]

    # -- the reconcile -------------------------------------------------------------------

    def reconcile(self) -> None:
        """Run the reconcile from an action (it changed what the reconcile reads)."""
        self._reconcile()

    def _reconcile(self) -> None:
        status = statuses.guarded(self._converge)
        # The cluster's service URLs name the application's Service: open the broker and web
        # ports on it (a no-op when already open); with TLS, 6651 and 8443 too.
        self.unit.set_ports(*self._ports)
        self.unit.status = self.refresh.status(self.observability.reconcile(self.workload, status))

    def _converge(self) -> ops.StatusBase:
        # Lock and chroot bookkeeping come first: other units depend on them even while
        # this unit is blocked.
        zookeeper = broker_zookeeper(self, self.zookeeper, self.bookkeeper, ZOOKEEPER_CHROOT)
        if self.unit.is_leader():
            self.restart_lock.arbitrate()

        try:
            config = self.load_config(PulsarConfig)
        except (ValueError, TypeError) as exc:
            return statuses.bad_config(exc)
        self._publish_ensemble_size(config)

        recorded = self._recorded_cluster_name()
        if recorded is not None and recorded != config.cluster_name:
            return ops.BlockedStatus(
                f"cluster-name: fixed to '{recorded}' since the cluster metadata exists; "
                f"set it back to '{recorded}'"
            )

        if not self.workload.can_connect():
            return statuses.pebble_unreachable()
        refused = self.refresh.refused(self.workload)
        if refused is not None:
            return refused
        tls_state = self.tls.state()
        if tls_state.waiting:
            # Nothing changes on this unit until the certificate is there (no half TLS).
            return statuses.awaiting(f"a certificate on the {CERTIFICATES_RELATION} relation")
        self.tls_state = tls_state
        tls = BrokerTls.of(tls_state, config.tls_plaintext_enabled)
        self._ports = _open_ports(tls)
        probe_ca = self._probe_ca(tls_state)
        self._web = web_access(tls, probe_ca)
        if isinstance(zookeeper, ops.StatusBase):
            return zookeeper
        check_zookeeper_connection(ZOOKEEPER_RELATION, zookeeper)
        zookeeper_ca = usable_tls_ca(zookeeper)
        if zookeeper_ca is None:
            raise InvalidField(
                ZOOKEEPER_RELATION, "tls-ca", "is missing or not PEM certificates with tls on"
            )
        if self.model.get_relation(BOOKKEEPER_RELATION) is None:
            return statuses.no_relation(BOOKKEEPER_RELATION)
        bookkeeper = _checked_bookkeeper(self.bookkeeper.info())
        if bookkeeper is None:
            return statuses.awaiting("bookkeeper to publish its metadata service")
        bookie_ca = usable_bookie_ca(bookkeeper)
        if bookie_ca is None:
            raise InvalidField(
                BOOKKEEPER_RELATION, "tls-ca", "is missing or not PEM certificates with tls on"
            )
        # Pulsar's BookKeeper client starts TLS only with a client key pair: this broker's own
        # certificate (pulsar_bookkeeper_tls). Without one it stays plain text (the bookies
        # accept both) and says so in its status.
        bookkeeper_tls = bool(bookie_ca) and tls_state.enabled
        if self.model.get_relation(PEER_RELATION) is None:
            return statuses.awaiting("the cluster peer relation")
        auth = self._ensure_auth()
        if auth is None:
            return ops.WaitingStatus(
                f"waiting for the leader to create the {INTERNAL_SECRET_LABEL} secret"
            )
        self._auth = auth

        problem = self._ensure_cluster_metadata(config, zookeeper, bookkeeper)
        if problem:
            return problem
        # The JVM starts while the bookies come up (it needs only ZooKeeper and the metadata,
        # and takes seconds to start); what makes it serve waits for a writable ensemble: the
        # serving gate of its readiness, Active, and the client relations.
        short_of_bookies = _bookie_problem(config, bookkeeper)
        if isinstance(short_of_bookies, ops.BlockedStatus):
            return short_of_bookies

        inputs = BrokerInputs(
            config,
            self._unit_address,
            zookeeper.hosts,
            bookkeeper.metadata_service_uri,
            tls,
            bookkeeper_tls=bookkeeper_tls,
        )
        files = broker_files(inputs, zookeeper.username, zookeeper.password, auth)
        if zookeeper_ca:
            # a restart input: the JVM's ZooKeeper clients read the trust store at start
            files[CLIENT_TLS_CA_PATH] = zookeeper_ca
        # The PEM files are no restart input: Pulsar re-reads them
        # (tlsCertRefreshCheckDurationSec), so a renewal reaches the broker without a restart,
        # and a CA rotation goes through trust bundles (the client relations publish the bundle).
        tls_state = self.trust.converge(tls_state, self._reload_stale)
        self.tls_state = tls_state
        pem_files = bookkeeper_tls_files(bookie_ca if bookkeeper_tls else "")
        if probe_ca:
            pem_files[PROBE_CA_PATH] = probe_ca
        # Each TLS replication peer's CA, on every unit before its broker starts (the replicator
        # runs on the broker owning the topic); Pulsar's clients re-read it, no restart input.
        pem_files.update(self.replication.peer_ca_files(config.cluster_name))
        if self.workload.changed_files(pem_files):
            self.workload.push(pem_files)
        layer = watched_layer(
            pebble_layer(config, self._unit_address, zookeeper.tls, self.web),
            self._unit_address,
            self.web,
        )
        status = self._converge_broker(config, files, layer)
        if short_of_bookies is not None:
            return status if isinstance(status, ops.WaitingStatus) else short_of_bookies
        self._open_serving_gate()
        if isinstance(status, ops.ActiveStatus):
            # the broker serves with the files on disk: tell ZooKeeper which user it logged in
            # with (the bookies' shared one; a credential rotation waits for it)
            self.zookeeper.report_running_user(zookeeper.username)
            self.key_rotation.report_serving(auth)
            rotation = None
            if self.unit.is_leader():
                auth, rotation = self.key_rotation.progress(auth)
                self._auth = auth
            status = self.client_serving.with_clients(config, auth, status)
            status = self.function_serving.with_functions(
                config.functions_worker_enabled, auth, status
            )
            self.proxy_serving.publish(config, auth, zookeeper)
            if rotation:
                status = ops.ActiveStatus(f"{status.message}; {rotation}")
            status = self.replication.with_replication(config, auth, status)
            cluster_record_failed = self.unit.is_leader() and not self._publish_cluster_tls_urls(
                config, auth, tls_state.enabled
            )
            if bookie_ca and not bookkeeper_tls and isinstance(status, ops.ActiveStatus):
                status = ops.ActiveStatus(f"{status.message}; {BOOKIES_PLAIN_TEXT}")
            if (
                self.client_serving.retry_needed
                or self.function_serving.retry_needed
                or self.replication.retry_needed
                or cluster_record_failed
            ):
                self._retry_later()
        return status

    def _publish_cluster_tls_urls(
        self, config: PulsarConfig, auth: AuthMaterial, tls_enabled: bool
    ) -> bool:
        """Leader: the cluster record's TLS URLs follow TLS (pulsar_cluster_record); False: failed.

        No admin call while the record already holds what the peer databag says it holds.
        """
        data = self._peer_app_data()
        urls = cluster_tls_urls(self.app.name, self.model.name, tls_enabled)
        wanted = urls["brokerServiceUrlTls"]
        if data is None or data.get(CLUSTER_TLS_URL_KEY, "") == wanted:
            return True
        admin = self.client_serving.admin_client(auth)
        result = converge_cluster_record(admin, config.cluster_name, urls)
        if not result.ok:
            logger.warning("cluster record TLS URLs not updated: %s", result.describe())
            return False
        write_if_different(data, {CLUSTER_TLS_URL_KEY: wanted})
        logger.info("cluster record TLS URLs: %s", wanted or "none")
        return True

    def _publish_ensemble_size(self, config: PulsarConfig) -> None:
        """Leader: tell the bookies the ensemble size, so they refuse a removal below it."""
        try:
            self.bookkeeper.publish_ensemble_size(config.managed_ledger_ensemble_size)
        except ops.ModelError as exc:  # e.g. the relation is going away
            logger.info("cannot publish the ensemble size: %s", exc)

    def _retry_later(self) -> None:
        """Make the broker-view check fail in RETRY_AFTER_S (no update-status).

        The wake-up of a client request that failed: that reconcile records the live view and
        serves again.
        """
        self.workload.push({VIEW_PATH: retry_content(READY, time.time(), RETRY_AFTER_S)})

    def _open_serving_gate(self) -> None:
        """Once the ensemble is writable, let the readiness check pass (once per pod).

        The gate stays open if bookies fail later: Pulsar itself refuses writes it cannot
        replicate, and taking every broker out of the Service would only add an outage.
        """
        if self.workload.read(SERVING_PATH) is None:
            self.workload.push({SERVING_PATH: f"{int(time.time())}\n"})

    # -- token authentication ------------------------------------------------------------

    _auth: AuthMaterial | None = None
    # The secret's content the rotate-signing-key action just set (read back in the same hook,
    # a secret may still show its previous revision).
    _internal_content: dict[str, str] | None = None

    def _ensure_auth(self) -> AuthMaterial | None:
        """Every unit: the internal credentials; the leader creates them once."""
        return self._read_auth(create=self.unit.is_leader())

    def auth_material(self) -> AuthMaterial | None:
        """Return the signing key and tokens from the ``pulsar-internal`` secret, or None."""
        return self._read_auth(create=False)

    def _read_auth(self, create: bool) -> AuthMaterial | None:
        content = self._internal_content or find_app_secret(
            self,
            INTERNAL_SECRET_LABEL,
            self._peer_app_data(),
            INTERNAL_SECRET_ID_KEY,
            new_auth_content if create else None,
        )
        if content is None:
            return None
        fields = (SIGNING_KEY_FIELD, ADMIN_TOKEN_FIELD, BROKER_TOKEN_FIELD)
        source = f"{INTERNAL_SECRET_LABEL} secret"
        key, admin, broker = (parse_credential(source, n, content.get(n)) for n in fields)
        _check_key(source, SIGNING_KEY_FIELD, key)
        previous = (PREVIOUS_SIGNING_KEY_FIELD, PREVIOUS_ADMIN_TOKEN_FIELD)
        present = [name for name in previous if content.get(name)]
        if not present:
            return AuthMaterial(key, admin, broker)
        if len(present) != len(previous):
            missing = next(name for name in previous if name not in present)
            raise InvalidField(source, missing, "is missing while a rotation is under way")
        old_key, old_admin = (parse_credential(source, n, content.get(n)) for n in previous)
        _check_key(source, PREVIOUS_SIGNING_KEY_FIELD, old_key)
        return AuthMaterial(key, admin, broker, old_key, old_admin)

    def internal_secret(self) -> ops.Secret | None:
        """Return the ``pulsar-internal`` secret (the leader changes its content), or None."""
        data = self._peer_app_data()
        secret_id = data.get(INTERNAL_SECRET_ID_KEY) if data is not None else None
        try:
            if secret_id:
                return self.model.get_secret(id=secret_id)
            return self.model.get_secret(label=INTERNAL_SECRET_LABEL)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None

    def store_internal_content(self, content: dict[str, str]) -> bool:
        """Leader: replace the ``pulsar-internal`` content (this hook reads it back as set)."""
        secret = self.internal_secret()
        if secret is None:
            return False
        secret.set_content(content)
        self._internal_content = content
        return True

    # -- cluster metadata ----------------------------------------------------------------

    def _peer_app_data(self) -> ops.RelationDataContent | None:
        relation = self.model.get_relation(PEER_RELATION)
        return relation.data[self.app] if relation else None

    def peer_state(self) -> PulsarPeerState:
        """Parse the peer state (InvalidField when a value is refused)."""
        data = self._peer_app_data()
        return PulsarPeerState() if data is None else parse_peer_state(data)

    def _recorded_cluster_name(self) -> str | None:
        """Return the cluster name the metadata was created with, once it exists."""
        return self.peer_state().metadata_cluster_name

    def _ensure_cluster_metadata(
        self,
        config: PulsarConfig,
        zookeeper: ZooKeeperConnection,
        bookkeeper: BookKeeperInfo,
    ) -> ops.StatusBase | None:
        """Leader only, once: initialise the cluster metadata and record it for every unit."""
        if self._recorded_cluster_name() is not None:
            return None
        if not self.unit.is_leader():
            return ops.WaitingStatus("waiting for the leader to initialise the cluster metadata")
        # The tool logs in to ZooKeeper with the same JAAS file as the broker.
        self.workload.push({JAAS_CONF_PATH: render_jaas(zookeeper.username, zookeeper.password)})
        argv = initialize_cluster_metadata_argv(
            cluster_name=config.cluster_name,
            zookeeper_hosts=zookeeper.hosts,
            bookkeeper_metadata_service_uri=bookkeeper.metadata_service_uri,
            app_name=self.app.name,
            model_name=self.model.name,
        )
        if zookeeper.tls:
            self.workload.push({CLIENT_TLS_CA_PATH: usable_tls_ca(zookeeper) or ""})
        result = self.workload.run(argv, tool_environment(zookeeper.tls), INIT_TIMEOUT_SECONDS)
        if not result.ok:
            output = redact(result.output, [zookeeper.password, *self._secret_values()])
            logger.warning("initialize-cluster-metadata failed: %s", output)
            return ops.WaitingStatus("cluster metadata initialisation failed; retrying")
        data = self._peer_app_data()
        assert data is not None  # checked by the caller
        write_if_different(
            data,
            {METADATA_INITIALISED_KEY: "true", METADATA_CLUSTER_NAME_KEY: config.cluster_name},
        )
        logger.info("cluster metadata initialised for cluster %s", config.cluster_name)
        return None

    # -- the broker service --------------------------------------------------------------

    def _secret_values(self) -> list[str]:
        auth = self._auth
        if auth is None:
            return []
        previous = [auth.previous_signing_key or "", auth.previous_admin_token or ""]
        return [auth.signing_key, auth.admin_token, auth.broker_token, *filter(None, previous)]

    @property
    def _token(self) -> str | None:
        return self.key_rotation.local_admin_token(self._auth) if self._auth else None

    @property
    def unit_address(self) -> str:
        return self._unit_address

    _web: WebAccess | None = None

    @property
    def web(self) -> WebAccess:
        """How the charm reaches the brokers' web service: 8080, or 8443 and the CA.

        Set by the reconcile; an action or check run outside it reads config and TLS now
        (plain HTTP when either is refused: the call then fails and says so).
        """
        if self._web is None:
            try:
                config = self.load_config(PulsarConfig)
                state = self.tls.state()
                probe_ca = self._probe_ca(state)
            # ConfigError and InvalidField are ValueErrors
            except (ValueError, TypeError, WorkloadError):
                return PLAIN_WEB
            self._web = web_access(BrokerTls.of(state, config.tls_plaintext_enabled), probe_ca)
        return self._web

    def _probe_ca(self, state: TlsState) -> str | None:
        """Return the CAs the charm's own checks and calls trust (None without TLS)."""
        if state.material is None:
            return None
        return with_previous_ca(state.material.ca, self.workload.read_text(PROBE_CA_PATH))

    @property
    def _unit_address(self) -> str:
        return unit_fqdn(self.unit.name, self.app.name, self.model.name)

    def _converge_broker(
        self, config: PulsarConfig, files: dict[str, str | bytes], layer: dict
    ) -> ops.StatusBase:
        self.workload.ensure_data_dir_owned()
        if not self.workload.broker_running():
            # Nothing is served from this unit yet, so starting disturbs no peer: no lock.
            self._apply_and_start(files, layer)
            self.restart_lock.release()
            return self._status_after_start(config)

        if not (self.workload.changed_files(files) or self.workload.layer_differs(layer)):
            if self.restart_lock.pending():
                # Applied already (or reverted): hand the lock on once this broker serves.
                if self._observe() != READY:
                    return ops.WaitingStatus("restarted; waiting for the broker to be ready")
                self.restart_lock.release()
            return self._status(config)

        if not self.restart_lock.acquire(restart_token(files, layer)):
            return ops.WaitingStatus("configuration changed; waiting for the rolling-restart lock")
        logger.info("restarting the broker to apply new configuration")
        self.workload.stop_draining()
        self._apply_and_start(files, layer)
        return self._status_after_start(config)

    def _apply_and_start(self, files: dict[str, str | bytes], layer: dict) -> None:
        self.workload.push(files)
        if self.workload.layer_differs(layer):
            self.workload.add_broker_layer(layer)
        self.workload.start_broker()

    def _status_after_start(self, config: PulsarConfig) -> ops.StatusBase:
        # No hook waits for the JVM: the broker-view check wakes this unit once it is ready,
        # and that reconcile releases the restart lock.
        if self._observe() == READY:
            self.restart_lock.release()
            return _active(config)
        return ops.WaitingStatus("broker started; waiting for /admin/v2/brokers/ready")

    def _status(self, config: PulsarConfig) -> ops.StatusBase:
        if self._observe() == READY:
            return _active(config)
        return ops.WaitingStatus("broker running; waiting for /admin/v2/brokers/ready")

    def _observe(self) -> str:
        """Read the broker's readiness and record it where the view check compares it."""
        view = view_layer(self._unit_address, self.web)
        if self.workload.layer_differs(view):
            # Merged into the broker's layer; a check change restarts no service.
            self.workload.add_broker_layer(view)
        ready = pulsar_admin.broker_ready(self._unit_address, token=self._token, web=self.web)
        observed = broker_state(ready)
        record_view(self.workload, VIEW_PATH, observed, self._view_stale)
        self._view_stale = False
        return observed


def metrics_endpoint(web: WebAccess) -> MetricsEndpoint:
    """Where Prometheus scrapes: 8080, or 8443 over HTTPS with the CA (plain text closed)."""
    if not web.tls:
        return MetricsEndpoint(WEB_SERVICE_PORT, "/metrics/")
    return MetricsEndpoint(web.port, "/metrics/", scheme="https", ca=web.ca)


def _open_ports(tls: BrokerTls) -> tuple[int, ...]:
    ports = [WEB_SERVICE_PORT] if plain_web_open(tls) else []
    if tls.plaintext:
        ports.append(BROKER_SERVICE_PORT)
    if tls.enabled:
        ports += [BROKER_SERVICE_PORT_TLS, WEB_SERVICE_PORT_TLS]
    return tuple(sorted(ports))


def _active(config: PulsarConfig) -> ops.ActiveStatus:
    return ops.ActiveStatus(f"broker ready (cluster {config.cluster_name})")


def _check_key(source: str, field: str, key: str) -> None:
    try:
        base64.b64decode(key, validate=True)
    except ValueError:
        raise InvalidField(source, field, "is not base64") from None


# The bookies serve TLS but this broker has no certificate to start TLS with.
BOOKIES_PLAIN_TEXT = "plain text to bookies: relate certificates for TLS"


def _checked_bookkeeper(info: BookKeeperInfo | None) -> BookKeeperInfo | None:
    """Refuse a bad metadata URI or bookie id; count each bookie once, ready only if listed."""
    if info is None:
        return None
    uri = parse_metadata_service_uri(
        BOOKKEEPER_RELATION, "metadata-service-uri", info.metadata_service_uri
    )
    bookies = (
        parse_host_ports(BOOKKEEPER_RELATION, "bookies", info.bookies) if info.bookies else ()
    )
    ready = (
        parse_host_ports(BOOKKEEPER_RELATION, "ready-bookies", info.ready_bookies)
        if info.ready_bookies
        else ()
    )
    ready_listed = tuple(b for b in ready if b in bookies)
    return BookKeeperInfo(uri, bookies, ready_listed, tls=info.tls, tls_ca=info.tls_ca)


def _bookie_problem(config: PulsarConfig, bookkeeper: BookKeeperInfo) -> ops.StatusBase | None:
    """Why the managed-ledger ensemble cannot be written now, or None when it can."""
    needed = config.managed_ledger_ensemble_size
    total, ready = len(bookkeeper.bookies), len(bookkeeper.ready_bookies)
    if needed > total:
        return ops.BlockedStatus(
            f"managed-ledger-ensemble-size={needed} needs {needed} bookies; bookkeeper has {total}"
        )
    if needed > ready:
        return ops.WaitingStatus(f"{ready}/{total} bookies writable, ensemble needs {needed}")
    return None
