"""bookkeeper-k8s: one BookKeeper bookie per unit, converged by a single reconcile.

Peer relation ``cluster``: read through ``bookkeeper_peer_state`` (its keys are listed there);
    unit ``restart-request`` / app ``restart-granted``  the rolling-restart lock (library)
"""

from __future__ import annotations

import logging
import re
import time

import ops
from bookkeeper_config import BookKeeperConfig
from bookkeeper_peer_state import (
    BOOKIE_STATE_KEY,
    BOOKIE_TLS_KEY,
    INITIALISED_KEY,
    PEER,
    BookKeeperPeerState,
)
from bookkeeper_peer_state import parse as parse_peer_state
from bookkeeper_refresh import UNDERREPLICATED_COMMAND, bookie_problems, underreplicated_problem
from bookkeeper_removal import (
    DECOMMISSION_TIMEOUT_S,
    REFUSED,
    decide,
    decommissioned_message,
    decommissioning_message,
    failed_message,
    leaving_message,
    short_of_bookies,
)
from bookkeeper_render import (
    BOOKKEEPER_SCRIPT,
    CONF_PATH,
    HTTP_PORT,
    JAAS_PATH,
    STORAGE_DIRS,
    BookieInputs,
    bookie_env,
    bookie_id,
    metadata_service_uri,
    pebble_layer,
    render_bookkeeper_conf,
    render_jaas,
    tool_env,
)
from bookkeeper_view import (
    DOWN,
    VIEW_CHECK,
    VIEW_LAYER_LABEL,
    VIEW_PATH,
    WRITABLE,
    bookie_state,
    view_layer,
    watched_layer,
)
from bookkeeper_workload import BookieWorkload
from charms.bookkeeper_k8s.v0.bookkeeper import (
    BookKeeperInfo,
    BookKeeperProvider,
    SharedZooKeeper,
)
from charms.pulsar_k8s.v0 import statuses
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.log_hygiene import quiet_credential_loggers, redact
from charms.pulsar_k8s.v0.observability import RELATIONS as COS_RELATIONS
from charms.pulsar_k8s.v0.observability import MetricsEndpoint, Observability
from charms.pulsar_k8s.v0.refresh import Refresh
from charms.pulsar_k8s.v0.tls import RELATION as CERTIFICATES_RELATION
from charms.pulsar_k8s.v0.tls import RELOAD_CHECK, ReloadingTrust, TlsRequirer, TlsState, tls_sans
from charms.pulsar_k8s.v0.validation import InvalidField, check_zookeeper_connection
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

logger = logging.getLogger(__name__)

CONTAINER = "pulsar"
ZOOKEEPER_RELATION = "zookeeper"
# One tree and one ZooKeeper user per Pulsar cluster: brokers are BookKeeper clients that write
# ledger metadata, and `initialize-cluster-metadata` writes under the BookKeeper root too, so the
# bookies' identity is shared with the brokers over the `bookkeeper` relation.
ZK_CHROOT = "/pulsar"
LAYER_LABEL = "bookkeeper"
TOOL_TIMEOUT_S = 120.0
# A failed metadata init is tried again this long after (woken by the view check).
RETRY_AFTER_S = 5.0
# What `bin/bookkeeper shell whatisinstanceid` prints when the metadata does not exist yet
# (as opposed to ZooKeeper being unreachable or refusing our credentials).
_NO_CLUSTER_MARKERS = ("NoNode for BookKeeper metadata", "BookKeeper metadata doesn't exist")


def _no_cluster(output: str) -> bool:
    return any(marker in output for marker in _NO_CLUSTER_MARKERS)


# What decommissionbookie says while the stopped bookie is still registered in ZooKeeper.
STILL_REGISTERED = "is not shutdown yet"
# How long after the stop it may say so: the stopped bookie's ZooKeeper session lives on for
# zkTimeout (10 s) after a kill; three times that, as a bound by time (a count of attempts
# covered less than the session on a fast machine: one JVM start is ~1.4 s).
STILL_REGISTERED_WINDOW_S = 30.0
_JAAS_PASSWORD = re.compile(r'password="([^"]*)"')
# The hooks a removed unit runs after its relations are gone, in order; the last one is remove.
_TEARDOWN_EVENTS = (ops.StorageDetachingEvent, ops.StopEvent, ops.RemoveEvent)


class BookKeeperCharm(ops.CharmBase):
    # This unit's removal, decided once (see bookkeeper_removal): plan "" (not leaving),
    # "decommission" or "refused"; reason (refused); done (decommissioned).
    _removal = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._removal.set_default(plan="", reason="", done=False)
        # Set by each reconcile: the bookie-view check failed, so record the view afresh.
        self._view_stale = False
        self._reload_stale = False
        quiet_credential_loggers()
        self.zookeeper = ZooKeeperRequirer(self, ZOOKEEPER_RELATION, chroot=ZK_CHROOT)
        self.bookkeeper = BookKeeperProvider(self, "bookkeeper")
        self.rolling_restart = RollingRestart(self, PEER)
        self.workload = BookieWorkload(self.unit.get_container(CONTAINER), self.address)
        self.observability = Observability(
            self,
            MetricsEndpoint(HTTP_PORT, "/metrics"),
            PEER,
            lambda unit: unit_fqdn(unit, self.app.name, self.model.name),
        )
        self.refresh = Refresh(self, PEER, self._refresh_problems)
        self.trust = ReloadingTrust(self, self.workload, PEER)
        # Before the reconcile's observers: the library stores and requests first.
        self.tls = TlsRequirer(
            self,
            sans=tls_sans(self.unit.name, self.app.name, self.model.name),
            relation_name=CERTIFICATES_RELATION,
        )
        for event in reconcile_events(
            self,
            CONTAINER,
            relations=(
                PEER,
                ZOOKEEPER_RELATION,
                "bookkeeper",
                CERTIFICATES_RELATION,
                *COS_RELATIONS,
            ),
            storages=("journal", "ledgers"),
        ):
            framework.observe(event, self._reconcile)
        framework.observe(self.tls.available, self._reconcile)
        for event in (
            self.on.journal_storage_detaching,
            self.on.ledgers_storage_detaching,
            self.on.stop,
            self.on.remove,
        ):
            framework.observe(event, self._on_teardown)

    @property
    def address(self) -> str:
        return unit_fqdn(self.unit.name, self.app.name, self.model.name)

    # --- the reconcile ---------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase | None = None) -> None:
        # The view check failed: the view is stale; record it afresh even if unchanged.
        failed = event if isinstance(event, ops.PebbleCheckFailedEvent) else None
        self._view_stale = failed is not None and failed.info.name == VIEW_CHECK
        self._reload_stale = failed is not None and failed.info.name == RELOAD_CHECK
        if self._removal.plan or self._departing(event):
            # Being removed: only the removal runs (a stopped bookie must stay stopped).
            self.unit.status = self._leave(event)
            return
        # Bookie and HTTP (health, metrics) ports on the application's Service; no-op when open.
        self.unit.set_ports(3181, 8000)
        status = self.observability.reconcile(self.workload, statuses.guarded(self._converge))
        if self.unit.is_leader():
            self.rolling_restart.arbitrate()
        self.unit.status = self.refresh.status(status)

    def _converge(self) -> ops.StatusBase:
        try:
            config = self.load_config(BookKeeperConfig)
        except (ValueError, TypeError) as exc:
            return statuses.bad_config(exc)
        connection, waiting = self._zookeeper_connection()
        self._share_zookeeper(connection)
        if connection is None:
            self._publish(None)
            return waiting
        tls_state = self.tls.state()
        if tls_state.waiting:
            # Nothing changes on this unit until the certificate is there (no half TLS).
            return statuses.awaiting(f"a certificate on the {CERTIFICATES_RELATION} relation")
        uri = metadata_service_uri(connection.endpoints, connection.chroot)
        inputs = BookieInputs(self.address, uri, config, tls=tls_state.enabled)
        files = {
            CONF_PATH: render_bookkeeper_conf(inputs),
            JAAS_PATH: render_jaas(connection.username, connection.password),
        }
        if connection.tls:
            files[CLIENT_TLS_CA_PATH] = usable_tls_ca(connection) or ""
        if not self.workload.can_connect():
            return statuses.pebble_unreachable()
        refused = self.refresh.refused(self.workload)
        if refused is not None:
            return refused
        # The PEM files are no restart input: the bookie re-reads them
        # (tlsCertFilesRefreshDurationSeconds), so a renewal reaches it without a restart.
        # They are pushed before any (re)start that turns TLS on.
        # A CA rotation goes through trust bundles: the bookkeeper relation publishes the
        # bundle of every bookie's CAs (core tls, ReloadingTrust).
        tls_state = self.trust.converge(tls_state, self._reload_stale)
        layer = watched_layer(
            pebble_layer(self.address, bookie_env(config, connection.tls)), self.address
        )
        running = self.workload.bookie_running()
        if not running:
            # Nothing reads these files until the bookie (re)starts, so they can change freely.
            self.workload.push(files)
        waiting = self._ensure_initialised(config, connection)
        if waiting:
            self._publish(None)
            return waiting
        for path in STORAGE_DIRS:
            self.workload.ensure_owned(path)
        if not running:
            self.workload.add_layer(LAYER_LABEL, layer)
            self.workload.start_bookie()
            self.rolling_restart.release()
        else:
            waiting = self._apply_by_rolling_restart(files, layer)
            if waiting:
                return waiting

        # Its own layer, outside the restart inputs: adding or changing it restarts nothing.
        view = view_layer(self.address)
        if self.workload.layer_differs(view):
            self.workload.add_layer(VIEW_LAYER_LABEL, view)
        return self._health_status(uri, connection.username, tls_state)

    # --- removal (bookkeeper_removal) ------------------------------------------------------

    def _departing(self, event: ops.EventBase | None) -> bool:
        return isinstance(event, ops.RelationDepartedEvent) and event.departing_unit == self.unit

    def _on_teardown(self, event: ops.EventBase) -> None:
        # storage-detaching happens only on removal; stop and remove also end a pod restart
        # (stop) or follow a removal already seen: only then do they act.
        if isinstance(event, ops.StorageDetachingEvent) or self._removal.plan:
            self.unit.status = self._leave(event)

    def _leave(self, event: ops.EventBase | None) -> ops.StatusBase:
        """Remove this unit: decide once, then decommission in a teardown hook."""
        if not self._removal.plan:
            self._decide()
        if self._removal.plan == REFUSED:
            return ops.BlockedStatus(self._removal.reason)
        if self._removal.done:
            return ops.MaintenanceStatus("decommissioned; waiting for the unit to go")
        if isinstance(event, _TEARDOWN_EVENTS):
            return self._decommission(last_hook=isinstance(event, ops.RemoveEvent))
        return ops.MaintenanceStatus(leaving_message())

    def _decide(self) -> None:
        own = bookie_id(self.address)
        remaining = self._planned_units()
        writable = self.workload.writable_bookies()
        if writable is not None:
            remaining = min(remaining, len(set(writable) - {own}))
        decision = decide(remaining, self.bookkeeper.required_bookies(), self.app.name)
        self._removal.plan, self._removal.reason = decision.plan, decision.reason
        if decision.plan == REFUSED:
            logger.warning("%s", decision.reason)
            return
        # No new ledger lands on it from now on; the brokers move their writes elsewhere.
        read_only = self.workload.set_read_only()
        logger.info("leaving: decommissioning %s (read-only: %s)", own, read_only)

    def _planned_units(self) -> int:
        try:
            return self.app.planned_units()
        except ops.ModelError:
            relation = self.model.get_relation(PEER)
            return len(relation.units) if relation else 0

    def _decommission(self, last_hook: bool) -> ops.StatusBase:
        """Stop the bookie, wait for its ledgers to be re-replicated, check its cookie is gone."""
        own = bookie_id(self.address)
        try:
            config = self.load_config(BookKeeperConfig)
        except (ValueError, TypeError):
            config = BookKeeperConfig()  # the tools need only the files on disk
        env = tool_env(config, self._zookeeper_tls())
        self.unit.status = ops.MaintenanceStatus(decommissioning_message())
        started = time.monotonic()
        try:
            self.workload.stop_bookie()
        except WorkloadError as exc:
            return self._failed(f"cannot stop the bookie: {exc}", "", last_hook)
        command = [BOOKKEEPER_SCRIPT, "shell", "decommissionbookie", "-bookieid", own]
        deadline = started + DECOMMISSION_TIMEOUT_S
        while True:
            result = self.workload.run(command, env, max(deadline - time.monotonic(), 1.0))
            # A bookie killed at the end of Pebble's kill-delay stays registered until its
            # ZooKeeper session expires (zkTimeout, 10 s): try again until that is surely over.
            if result.ok or STILL_REGISTERED not in result.output:
                break
            # No pause: each attempt is a JVM start (~1.4 s) already.
            if time.monotonic() - started > STILL_REGISTERED_WINDOW_S:
                break
        if not result.ok:
            return self._failed("decommissionbookie did not finish", result.output, last_hook)
        # The tools print their answers at INFO.
        listed = self.workload.run(
            [BOOKKEEPER_SCRIPT, "shell", "listbookies", "-a"],
            {**env, "PULSAR_LOG_LEVEL": "info", "PULSAR_LOG_ROOT_LEVEL": "info"},
            TOOL_TIMEOUT_S,
        )
        if not listed.ok or own in listed.output:
            return self._failed("the bookie is still listed", listed.output, last_hook)
        self._removal.done = True
        elapsed = time.monotonic() - started
        logger.info("decommissioned %s in %.0f s", own, elapsed)
        return ops.MaintenanceStatus(decommissioned_message(elapsed))

    def _failed(self, what: str, output: str, last_hook: bool) -> ops.StatusBase:
        logger.warning("decommission: %s: %s", what, redact(output, self._known_secrets()))
        return ops.BlockedStatus(failed_message(what, last_hook))

    def _known_secrets(self) -> list[str]:
        """Return the ZooKeeper password (relation, else the JAAS file), for redaction."""
        secrets = []
        try:
            connection = self.zookeeper.connection() if self.zookeeper.relation else None
        except ops.ModelError:  # the relation or its secret is going away
            connection = None
        if connection is not None:
            secrets.append(connection.password)
        try:
            jaas = self.workload.read(JAAS_PATH)
        except WorkloadError:
            jaas = None
        if jaas:
            secrets += _JAAS_PASSWORD.findall(jaas.decode("utf-8", "replace"))
        return [secret for secret in secrets if secret]

    def _refresh_problems(self) -> list[str]:
        """Run the pre-refresh check: every bookie writable, no under-replicated ledger."""
        relation = self.model.get_relation(PEER)
        units = [self.unit, *(relation.units if relation is not None else ())]
        states = {
            unit.name: bookie_state(
                self.workload.state_json(unit_fqdn(unit.name, self.app.name, self.model.name))
            )
            for unit in units
        }
        problems = bookie_problems(states)
        try:
            config = self.load_config(BookKeeperConfig)
        except (ValueError, TypeError) as exc:
            return [*problems, f"configuration: {exc}"]
        result = self.workload.run(
            [BOOKKEEPER_SCRIPT, *UNDERREPLICATED_COMMAND],
            tool_env(config, self._zookeeper_tls()),
            TOOL_TIMEOUT_S,
        )
        problem = underreplicated_problem(result.ok, result.output)
        return [*problems, problem] if problem else problems

    # --- steps -----------------------------------------------------------------------------

    def _zookeeper_connection(self) -> tuple[ZooKeeperConnection | None, ops.StatusBase]:
        if self.zookeeper.relation is None:
            return None, statuses.no_relation(ZOOKEEPER_RELATION)
        if self.unit.is_leader():
            try:
                self.zookeeper.request()
            except ops.ModelError as exc:  # e.g. the relation is going away
                logger.info("cannot request the zookeeper chroot: %s", exc)
        connection = self.zookeeper.connection()
        if connection is None:
            return None, statuses.awaiting("zookeeper credentials")
        try:
            check_zookeeper_connection(ZOOKEEPER_RELATION, connection)
            if usable_tls_ca(connection) is None:
                raise InvalidField(
                    ZOOKEEPER_RELATION, "tls-ca", "is missing or not PEM certificates with tls on"
                )
        except InvalidField as exc:
            return None, statuses.invalid_data(exc)
        return connection, ops.ActiveStatus()

    def _zookeeper_tls(self) -> bool:
        """Whether the zookeeper relation says TLS (the one-off tools connect as the bookie)."""
        connection = self.zookeeper.connection() if self.zookeeper.relation else None
        return bool(connection and connection.tls)

    def _share_zookeeper(self, connection: ZooKeeperConnection | None) -> None:
        """Leader: hand the brokers this application's ZooKeeper identity (one per cluster)."""
        if not self.unit.is_leader():
            return
        identity = connection and SharedZooKeeper(
            connection.endpoints,
            connection.chroot,
            connection.username,
            connection.password,
            usable_tls_ca(connection) or "",
        )
        try:
            self.bookkeeper.share_zookeeper(identity)
        except ops.ModelError as exc:  # e.g. the relation is going away
            logger.info("cannot share the zookeeper identity: %s", exc)

    def _peer_app_data(self) -> ops.RelationDataContent | None:
        relation = self.model.get_relation(PEER)
        return relation.data[self.app] if relation else None

    def _peer_state(self) -> BookKeeperPeerState:
        relation = self.model.get_relation(PEER)
        if relation is None:
            return BookKeeperPeerState()
        units = {unit.name: relation.data[unit] for unit in relation.units}
        return parse_peer_state(relation.data[self.app], units)

    def _initialised(self) -> bool:
        return self._peer_state().initialised

    def _ensure_initialised(
        self, config: BookKeeperConfig, connection: ZooKeeperConnection
    ) -> ops.StatusBase | None:
        if self._initialised():
            return None
        if not self.unit.is_leader():
            return statuses.awaiting("the leader to initialise bookkeeper metadata")
        problem = self._initialise_metadata(config, connection)
        if problem:
            self._retry_later()
        return ops.WaitingStatus(problem) if problem else None

    def _retry_later(self) -> None:
        """Make the view check fail in RETRY_AFTER_S: the retry's wake-up (no update-status).

        The bookie is not running yet, so its view layer is added first; it restarts nothing.
        """
        view = view_layer(self.address)
        if self.workload.layer_differs(view):
            self.workload.add_layer(VIEW_LAYER_LABEL, view)
        self.workload.push({VIEW_PATH: retry_content(DOWN, time.time(), RETRY_AFTER_S)})

    def _initialise_metadata(
        self, config: BookKeeperConfig, connection: ZooKeeperConnection
    ) -> str | None:
        """Leader: create the BookKeeper metadata unless it exists; return what blocks it.

        ``initnewcluster`` first: it refuses to touch metadata that exists, so it never
        initialises twice, and on a cold deploy (the critical path) one tool JVM is enough.
        Only when it fails does ``whatisinstanceid`` tell "exists already" (record it) from
        "ZooKeeper unreachable" (retry).
        """
        data = self._peer_app_data()
        if data is None:
            return "waiting for the peer relation"
        env = tool_env(config, self._zookeeper_tls())
        init = self.workload.run(
            [BOOKKEEPER_SCRIPT, "shell", "initnewcluster"], env, TOOL_TIMEOUT_S
        )
        if not init.ok:
            probe = self.workload.run(
                [BOOKKEEPER_SCRIPT, "shell", "whatisinstanceid"], env, TOOL_TIMEOUT_S
            )
            if not probe.ok:
                output = probe.output if not _no_cluster(probe.output) else init.output
                logger.warning(
                    "bookkeeper metadata init failed: %s", redact(output, [connection.password])
                )
                if _no_cluster(probe.output):
                    return "bookkeeper metadata init failed, will retry"
                return "bookkeeper metadata check failed (zookeeper unreachable?), will retry"
            logger.info("bookkeeper metadata exists already: recording it")
        write_if_different(data, {INITIALISED_KEY: "true"})
        return None

    def _apply_by_rolling_restart(
        self, files: dict[str, str], layer: dict
    ) -> ops.StatusBase | None:
        """Restart a running bookie on changed inputs, one unit at a time; None when done."""
        if self.workload.changed_files(files) or self.workload.layer_differs(layer):
            if not self.rolling_restart.acquire(restart_token(files, layer)):
                return ops.WaitingStatus("waiting for the rolling-restart lock to apply changes")
            self.workload.push(files)
            self.workload.add_layer(LAYER_LABEL, layer)
            logger.info("restarting the bookie to apply changed configuration")
            self.workload.restart_bookie()
            # Keep the lock until the bookie answers again: the bookie-view check wakes this
            # unit when it does (no hook waits for the JVM).
            return ops.WaitingStatus("bookie restarted; waiting for it to answer")
        elif self.rolling_restart.pending() and self._observe() != DOWN:
            self.rolling_restart.release()
        return None

    def _observe(self) -> str:
        """Read the bookie's live state and record it where the view check compares it."""
        state = bookie_state(self.workload.state_json())
        record_view(self.workload, VIEW_PATH, state, self._view_stale)
        self._view_stale = False
        return state

    def _health_status(self, uri: str, zookeeper_user: str, tls_state: TlsState) -> ops.StatusBase:
        own = self._observe()
        # the bookie answers with the files on disk: it logged in to ZooKeeper as this user (what
        # a ZooKeeper credential rotation waits for before removing the old user)
        self.zookeeper.report_running_user(zookeeper_user if own != DOWN else None)
        own_id = bookie_id(self.address)
        self.bookkeeper.report(own_id, own)
        # Reached with nothing left to apply: the running bookie serves what was rendered.
        reports = self._peer_reports(own, tls_state.enabled)
        everyone = self._all_bookie_ids()
        writable = sorted(b for b, state in reports.items() if state == WRITABLE and b in everyone)
        tls = self._bookies_serve_tls(tls_state)
        ca = tls_state.material.ca if tls and tls_state.material else ""
        self._publish(BookKeeperInfo(uri, tuple(everyone), tuple(writable), tls=tls, tls_ca=ca))
        short = short_of_bookies(
            self._planned_units(), self.bookkeeper.required_bookies(), self.app.name
        )
        if short:
            return ops.BlockedStatus(short)
        if own == DOWN:
            return ops.WaitingStatus("bookie not answering on its HTTP API yet")
        if own != WRITABLE:
            return ops.WaitingStatus(f"bookie {own} ({len(writable)}/{len(everyone)} writable)")
        return ops.ActiveStatus(f"bookie writable ({len(writable)}/{len(everyone)} writable)")

    def _bookies_serve_tls(self, tls_state: TlsState) -> bool:
        """Whether the brokers may start TLS to every bookie: this one and every peer do.

        A peer that has not reported yet has not started: with the certificates relation it
        starts only once it has its certificate, so it starts serving TLS.
        """
        return tls_state.enabled and all(self._peer_state().bookie_tls.values())

    def _peer_reports(self, own: str, tls: bool) -> dict[str, str]:
        """Bookie id -> state, as each bookie reports itself (this unit: ``own``, just seen)."""
        reports = {bookie_id(self.address): own}
        relation = self.model.get_relation(PEER)
        if relation is None:
            return reports
        write_if_different(
            relation.data[self.unit],
            {BOOKIE_STATE_KEY: own, BOOKIE_TLS_KEY: "true" if tls else "false"},
        )
        for name, state in self._peer_state().bookie_states.items():
            reports[bookie_id(unit_fqdn(name, self.app.name, self.model.name))] = state
        return reports

    def _all_bookie_ids(self) -> list[str]:
        names = {self.unit.name}
        relation = self.model.get_relation(PEER)
        if relation is not None:
            names.update(unit.name for unit in relation.units)
        return sorted(bookie_id(unit_fqdn(name, self.app.name, self.model.name)) for name in names)

    def _publish(self, info: BookKeeperInfo | None) -> None:
        if not self.unit.is_leader():
            return
        try:
            self.bookkeeper.publish(info if info is None or self._initialised() else None)
        except ops.ModelError as exc:
            logger.info("cannot publish bookkeeper relation data: %s", exc)
