"""The pulsar-k8s charm: every event runs the same level-triggered ``_reconcile``."""

from __future__ import annotations

import json
import logging
import time

import ops
import pulsar_admin
import pulsar_tokens
from charms.bookkeeper_k8s.v0.bookkeeper import BookKeeperInfo, BookKeeperRequirer
from charms.pulsar_k8s.v0.pulsar_client import ClientRequest, Endpoints, PulsarClientProvider
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import RollingRestart
from charms.pulsar_zookeeper_k8s.v0.zookeeper import ZooKeeperConnection, ZooKeeperRequirer
from ops import pebble
from pulsar_actions import PulsarActions
from pulsar_config import PulsarConfig
from pulsar_render import (
    BROKER_SERVICE_PORT,
    JAAS_CONF_PATH,
    WEB_SERVICE_PORT,
    ZOOKEEPER_CHROOT,
    AuthMaterial,
    BrokerInputs,
    broker_files,
    initialize_cluster_metadata_argv,
    inputs_token,
    pebble_layer,
    render_jaas,
    service_fqdn,
    tool_environment,
    unit_fqdn,
)
from pulsar_view import (
    READY,
    VIEW_CHECK,
    VIEW_PATH,
    broker_state,
    record_content,
    recorded_state,
    view_layer,
)
from pulsar_workload import PulsarWorkload

logger = logging.getLogger(__name__)

CONTAINER = "pulsar"
PEER_RELATION = "cluster"
ZOOKEEPER_RELATION = "zookeeper"
BOOKKEEPER_RELATION = "bookkeeper"
CLIENT_RELATION = "pulsar"

# The app secret holding the token signing key and the charm's own tokens.
INTERNAL_SECRET_LABEL = "pulsar-internal"
INTERNAL_SECRET_ID_KEY = "internal-secret-id"
SIGNING_KEY_FIELD = "signing-key"
ADMIN_TOKEN_FIELD = "admin-token"
BROKER_TOKEN_FIELD = "broker-token"
# Peer app databag: {role: "tenant/namespace"} of every relation role the leader has served.
CLIENTS_KEY = "clients"

# Peer application databag, written by the leader once the cluster metadata exists.
METADATA_INITIALISED_KEY = "cluster-metadata-initialised"
METADATA_CLUSTER_NAME_KEY = "cluster-metadata-cluster-name"

# initialize-cluster-metadata took ~4 s on the real distribution; ZooKeeper session setup can
# take up to its 30 s session timeout when a server is down.
INIT_TIMEOUT_SECONDS = 120.0

_PEBBLE_ERRORS = (
    pebble.ConnectionError,
    pebble.APIError,
    pebble.ChangeError,
    pebble.PathError,
    pebble.TimeoutError,
)


class PulsarBrokerCharm(ops.CharmBase):
    """Apache Pulsar broker on Kubernetes."""

    _view_stale = False

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.zookeeper = ZooKeeperRequirer(self, ZOOKEEPER_RELATION, chroot=ZOOKEEPER_CHROOT)
        self.bookkeeper = BookKeeperRequirer(self, BOOKKEEPER_RELATION)
        self.restart_lock = RollingRestart(self, PEER_RELATION)
        self.workload = PulsarWorkload(self.unit.get_container(CONTAINER))
        self.clients = PulsarClientProvider(self, CLIENT_RELATION)
        self.actions = PulsarActions(self)

        observed = [
            self.on.install,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.update_status,
            self.on.leader_elected,
            self.on.secret_changed,
            self.on[CONTAINER].pebble_ready,
            # The broker-view check wakes the unit whenever readiness changes (pulsar_view).
            self.on[CONTAINER].pebble_check_failed,
            self.on[CONTAINER].pebble_check_recovered,
            self.on["data"].storage_attached,
        ]
        for relation in (PEER_RELATION, ZOOKEEPER_RELATION, BOOKKEEPER_RELATION, CLIENT_RELATION):
            observed += [
                self.on[relation].relation_joined,
                self.on[relation].relation_changed,
                self.on[relation].relation_departed,
                self.on[relation].relation_broken,
            ]
        for event in observed:
            framework.observe(event, self._on_event)

    def _on_event(self, event: ops.EventBase) -> None:
        # The view check failed: the view is stale; record it afresh even if unchanged.
        self._view_stale = (
            isinstance(event, ops.PebbleCheckFailedEvent) and event.info.name == VIEW_CHECK
        )
        self._reconcile()

    # -- the reconcile -------------------------------------------------------------------

    def _reconcile(self) -> None:
        # The cluster's service URLs name the application's Service: open the broker and web
        # ports on it (a no-op when already open).
        self.unit.set_ports(6650, 8080)
        try:
            status = self._converge()
        except _PEBBLE_ERRORS as exc:
            # Pebble went away mid-hook (container restarting): the next event retries.
            logger.warning("pebble call failed: %s", exc)
            status = ops.WaitingStatus("pulsar container not reachable, retrying")
        self.unit.status = status

    def _converge(self) -> ops.StatusBase:
        if self.unit.is_leader():
            # Lock and chroot bookkeeping come first: other units depend on them even while
            # this unit is blocked.
            self.zookeeper.request()
            self.restart_lock.arbitrate()

        try:
            config = self.load_config(PulsarConfig)
        except (ValueError, TypeError) as exc:
            return ops.BlockedStatus(str(exc))

        recorded = self._recorded_cluster_name()
        if recorded is not None and recorded != config.cluster_name:
            return ops.BlockedStatus(
                f"cluster-name: fixed to '{recorded}' since the cluster metadata exists; "
                f"set it back to '{recorded}'"
            )

        if not self.workload.can_connect():
            return ops.WaitingStatus("waiting for the pulsar container (Pebble)")
        if self.model.get_relation(ZOOKEEPER_RELATION) is None:
            return ops.WaitingStatus("waiting for a zookeeper relation")
        zookeeper = self.zookeeper.connection()
        if zookeeper is None:
            return ops.WaitingStatus(f"waiting for zookeeper credentials for {ZOOKEEPER_CHROOT}")
        if self.model.get_relation(BOOKKEEPER_RELATION) is None:
            return ops.WaitingStatus("waiting for a bookkeeper relation")
        bookkeeper = self.bookkeeper.info()
        if bookkeeper is None:
            return ops.WaitingStatus("waiting for bookkeeper to publish its metadata service")
        if self.model.get_relation(PEER_RELATION) is None:
            return ops.WaitingStatus("waiting for the cluster peer relation")
        auth = self._ensure_auth()
        if auth is None:
            return ops.WaitingStatus(
                f"waiting for the leader to create the {INTERNAL_SECRET_LABEL} secret"
            )
        self._auth = auth

        problem = self._ensure_cluster_metadata(config, zookeeper, bookkeeper)
        problem = problem or _bookie_problem(config, bookkeeper)
        if problem:
            return problem

        inputs = BrokerInputs(
            config, self._unit_address, zookeeper.hosts, bookkeeper.metadata_service_uri
        )
        files = broker_files(inputs, zookeeper.username, zookeeper.password, auth)
        layer = pebble_layer(config, self._unit_address)
        status = self._converge_broker(config, files, layer)
        if isinstance(status, ops.ActiveStatus):
            status = self._with_clients(config, auth, status)
        return status

    # -- token authentication ------------------------------------------------------------

    _auth: AuthMaterial | None = None

    def _ensure_auth(self) -> AuthMaterial | None:
        """Every unit: the internal credentials; the leader creates them once."""
        auth = self.auth_material()
        if auth is not None or not self.unit.is_leader():
            return auth
        key = pulsar_tokens.generate_key()
        content = {
            SIGNING_KEY_FIELD: key,
            ADMIN_TOKEN_FIELD: pulsar_tokens.mint_token(key, pulsar_tokens.ADMIN_ROLE),
            BROKER_TOKEN_FIELD: pulsar_tokens.mint_token(key, pulsar_tokens.BROKER_ROLE),
        }
        secret = self.app.add_secret(
            content,
            label=INTERNAL_SECRET_LABEL,
            description="Pulsar token signing key and the admin and broker tokens",
        )
        data = self._peer_app_data()
        assert data is not None  # checked by the caller
        data[INTERNAL_SECRET_ID_KEY] = secret.id or secret.get_info().id
        logger.info("created the %s secret (token signing key)", INTERNAL_SECRET_LABEL)
        return self.auth_material()

    def auth_material(self) -> AuthMaterial | None:
        """Return the signing key and tokens from the ``pulsar-internal`` secret, or None."""
        secret = None
        data = self._peer_app_data()
        secret_id = data.get(INTERNAL_SECRET_ID_KEY) if data is not None else None
        try:
            if secret_id:
                secret = self.model.get_secret(id=secret_id)
            elif self.unit.is_leader():
                secret = self.model.get_secret(label=INTERNAL_SECRET_LABEL)
        except (ops.SecretNotFoundError, ops.ModelError):
            secret = None
        if secret is None:
            return None
        try:
            content = secret.get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None
        if self.unit.is_leader() and data is not None and not secret_id and secret.id:
            data[INTERNAL_SECRET_ID_KEY] = secret.id
        fields = (SIGNING_KEY_FIELD, ADMIN_TOKEN_FIELD, BROKER_TOKEN_FIELD)
        if not all(content.get(name) for name in fields):
            return None
        return AuthMaterial(*(content[name] for name in fields))

    # -- client relations (pulsar_client) --------------------------------------------------

    def admin_client(self, auth: AuthMaterial) -> pulsar_admin.PulsarAdmin:
        return pulsar_admin.PulsarAdmin(
            f"http://{self._unit_address}:{WEB_SERVICE_PORT}", auth.admin_token
        )

    def client_endpoints(self) -> Endpoints:
        service = service_fqdn(self.app.name, self.model.name)
        return Endpoints(
            broker_service_url=f"pulsar://{service}:{BROKER_SERVICE_PORT}",
            web_service_url=f"http://{service}:{WEB_SERVICE_PORT}",
            websocket_url=f"ws://{service}:{WEB_SERVICE_PORT}/ws/v2",
        )

    def served_clients(self) -> dict[str, str]:
        data = self._peer_app_data()
        try:
            served = json.loads(data.get(CLIENTS_KEY, "{}")) if data is not None else {}
        except ValueError:
            served = {}
        if not isinstance(served, dict):
            return {}
        return {str(k): str(v) for k, v in served.items()}

    def _record_served(self, served: dict[str, str]) -> None:
        data = self._peer_app_data()
        if data is None:
            return
        value = json.dumps(served, sort_keys=True)
        if served and data.get(CLIENTS_KEY) != value:
            data[CLIENTS_KEY] = value
        elif not served and CLIENTS_KEY in data:
            del data[CLIENTS_KEY]

    def _with_clients(
        self, config: PulsarConfig, auth: AuthMaterial, status: ops.ActiveStatus
    ) -> ops.StatusBase:
        """Leader: serve every client relation; everyone: mention the clients served."""
        problems: list[str] = []
        if self.unit.is_leader():
            problems = self._serve_clients(config, auth)
        served = len(self.served_clients())
        message = status.message
        if served:
            message += f", {served} client{'s' if served != 1 else ''}"
        if problems:
            message += f"; {problems[0]}"
            if len(problems) > 1:
                message += f" (+{len(problems) - 1} more)"
        return ops.ActiveStatus(message)

    def _serve_clients(self, config: PulsarConfig, auth: AuthMaterial) -> list[str]:
        """Level-triggered: grant what every relation asks, revoke what no relation holds."""
        admin = self.admin_client(auth)
        served = self.served_clients()
        problems: list[str] = []
        relations = {r.id: r for r in self.clients.relations}
        for request in self.clients.requests():
            relation = relations[request.relation_id]
            if request.error:
                self.clients.publish_error(relation, request.error)
                problems.append(f"{request.app_name}: {request.error}")
                continue
            problem = self._serve_client(config, auth, admin, request, served)
            if problem:
                logger.warning("client %s not served yet: %s", request.role, problem)
                problems.append(f"{request.app_name}: {problem}")
                continue
            served[request.role] = request.namespace
            token = self.clients.stored_token(request.relation_id)
            if token is None or pulsar_tokens.token_role(auth.signing_key, token) != request.role:
                token = pulsar_tokens.mint_token(auth.signing_key, request.role)
            self.clients.publish(relation, self.client_endpoints(), request, token)
        live_roles = {request.role for request in self.clients.requests()}
        for role, namespace in sorted(served.items()):
            if role in live_roles:
                continue
            result = admin.revoke(namespace, role)
            if not result.ok:
                problems.append(f"revoking {role} failed: {result.describe()}")
                continue
            admin.remove_tenant_admin(namespace.split("/", 1)[0], role)
            relation_id = _relation_id(role)
            if relation_id is not None:
                self.clients.withdraw(relation_id)
            logger.info("revoked %s on %s (namespace kept)", role, namespace)
            del served[role]
        self._record_served(served)
        return problems

    def _serve_client(
        self,
        config: PulsarConfig,
        auth: AuthMaterial,
        admin: pulsar_admin.PulsarAdmin,
        request: ClientRequest,
        served: dict[str, str],
    ) -> str | None:
        admins = [request.role] if request.tenant_admin else []
        result = admin.ensure_tenant(request.tenant, [config.cluster_name], admins)
        if not result.ok:
            return f"tenant {request.tenant}: {result.describe()}"
        if not request.tenant_admin:
            admin.remove_tenant_admin(request.tenant, request.role)
        result = admin.create_namespace(request.namespace)
        if not result.ok:
            return f"namespace {request.namespace}: {result.describe()}"
        previous = served.get(request.role)
        if previous and previous != request.namespace:
            # The relation moved to another namespace: the old one keeps its data, not the role.
            result = admin.revoke(previous, request.role)
            if not result.ok:
                return f"revoking on {previous}: {result.describe()}"
        if request.actions:
            result = admin.grant(request.namespace, request.role, request.actions)
        else:
            result = admin.revoke(request.namespace, request.role)
        if not result.ok:
            return f"permissions on {request.namespace}: {result.describe()}"
        return None

    # -- cluster metadata ----------------------------------------------------------------

    def _peer_app_data(self) -> ops.RelationDataContent | None:
        relation = self.model.get_relation(PEER_RELATION)
        return relation.data[self.app] if relation else None

    def _recorded_cluster_name(self) -> str | None:
        """Return the cluster name the metadata was created with, once it exists."""
        data = self._peer_app_data()
        if data is None or data.get(METADATA_INITIALISED_KEY) != "true":
            return None
        return data.get(METADATA_CLUSTER_NAME_KEY) or None

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
        result = self.workload.run(argv, tool_environment(), INIT_TIMEOUT_SECONDS)
        if not result.ok:
            logger.warning("initialize-cluster-metadata failed: %s", result.output)
            return ops.WaitingStatus("cluster metadata initialisation failed; retrying")
        data = self._peer_app_data()
        assert data is not None  # checked by the caller
        data[METADATA_INITIALISED_KEY] = "true"
        data[METADATA_CLUSTER_NAME_KEY] = config.cluster_name
        logger.info("cluster metadata initialised for cluster %s", config.cluster_name)
        return None

    # -- the broker service --------------------------------------------------------------

    @property
    def _token(self) -> str | None:
        return self._auth.admin_token if self._auth else None

    @property
    def unit_address(self) -> str:
        return self._unit_address

    @property
    def _unit_address(self) -> str:
        return unit_fqdn(self.unit.name, self.app.name, self.model.name)

    def _converge_broker(
        self, config: PulsarConfig, files: dict[str, str | bytes], layer: dict
    ) -> ops.StatusBase:
        self.workload.ensure_data_dir_owned()
        if not self.workload.is_running():
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

        self.restart_lock.request(inputs_token(files, layer))
        if self.unit.is_leader():
            self.restart_lock.arbitrate()
        if not self.restart_lock.granted():
            return ops.WaitingStatus("configuration changed; waiting for the rolling-restart lock")
        logger.info("restarting the broker to apply new configuration")
        self.workload.stop_draining()
        self._apply_and_start(files, layer)
        return self._status_after_start(config)

    def _apply_and_start(self, files: dict[str, str | bytes], layer: dict) -> None:
        self.workload.push(files)
        if self.workload.layer_differs(layer):
            self.workload.add_layer(layer)
        self.workload.start()

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
        view = view_layer(self._unit_address)
        if self.workload.layer_differs(view):
            # Merged into the broker's layer; a check change restarts no service.
            self.workload.add_layer(view)
        ready = pulsar_admin.broker_ready(self._unit_address, token=self._token)
        observed = broker_state(ready)
        if self._view_stale or recorded_state(self.workload.read(VIEW_PATH)) != observed:
            self.workload.push({VIEW_PATH: record_content(observed, time.time())})
            self._view_stale = False
        return observed


def _active(config: PulsarConfig) -> ops.ActiveStatus:
    return ops.ActiveStatus(f"broker ready (cluster {config.cluster_name})")


def _relation_id(role: str) -> int | None:
    prefix, _, number = role.partition("-")
    return int(number) if prefix == "relation" and number.isdigit() else None


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
