"""bookkeeper-k8s: one BookKeeper bookie per unit, converged by a single reconcile.

Peer relation ``cluster``:
    app  ``bookkeeper-initialised``  ``"true"`` once the leader created the BookKeeper metadata
    unit ``bookie-state``  what this unit's bookie reports: writable, read-only or down
    unit ``restart-request`` / app ``restart-granted``  the rolling-restart lock (library)
"""

from __future__ import annotations

import logging
import re
import time

import ops
from bookkeeper_config import BookKeeperConfig
from bookkeeper_render import (
    BOOKKEEPER_SCRIPT,
    CONF_PATH,
    JAAS_PATH,
    STORAGE_DIRS,
    BookieInputs,
    bookie_env,
    bookie_id,
    inputs_token,
    metadata_service_uri,
    pebble_layer,
    render_bookkeeper_conf,
    render_jaas,
    tool_env,
    unit_fqdn,
)
from bookkeeper_view import (
    DOWN,
    VIEW_CHECK,
    VIEW_LAYER_LABEL,
    VIEW_PATH,
    WRITABLE,
    bookie_state,
    record_content,
    recorded_state,
    view_layer,
)
from bookkeeper_workload import BookieWorkload
from charms.bookkeeper_k8s.v0.bookkeeper import BookKeeperInfo, BookKeeperProvider
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import RollingRestart
from charms.pulsar_zookeeper_k8s.v0.zookeeper import ZooKeeperConnection, ZooKeeperRequirer

logger = logging.getLogger(__name__)

CONTAINER = "pulsar"
PEER = "cluster"
# Bookies share the brokers' chroot (each application with its own ZooKeeper user): brokers are
# BookKeeper clients that write ledger metadata, and `initialize-cluster-metadata` writes under
# the BookKeeper root too, so one tree granted to both is what Pulsar expects.
ZK_CHROOT = "/pulsar"
INITIALISED_KEY = "bookkeeper-initialised"
LAYER_LABEL = "bookkeeper"
# What `bin/bookkeeper shell whatisinstanceid` prints when the metadata does not exist yet
# (as opposed to ZooKeeper being unreachable or refusing our credentials).
_NO_CLUSTER_MARKERS = ("NoNode for BookKeeper metadata", "BookKeeper metadata doesn't exist")
_ENDPOINT = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")


class BookKeeperCharm(ops.CharmBase):
    _view_stale = False

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.zookeeper = ZooKeeperRequirer(self, "zookeeper", chroot=ZK_CHROOT)
        self.bookkeeper = BookKeeperProvider(self, "bookkeeper")
        self.rolling_restart = RollingRestart(self, PEER)
        self.workload = BookieWorkload(self.unit.get_container(CONTAINER), self.address)
        for event in (
            self.on.install,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.update_status,
            self.on.leader_elected,
            self.on.secret_changed,
            self.on[CONTAINER].pebble_ready,
            self.on[CONTAINER].pebble_check_failed,
            self.on[CONTAINER].pebble_check_recovered,
            self.on.journal_storage_attached,
            self.on.ledgers_storage_attached,
            self.on[PEER].relation_changed,
            self.on[PEER].relation_departed,
            self.on.zookeeper_relation_created,
            self.on.zookeeper_relation_changed,
            self.on.zookeeper_relation_broken,
            self.on.bookkeeper_relation_joined,
            self.on.bookkeeper_relation_changed,
        ):
            framework.observe(event, self._reconcile)

    @property
    def address(self) -> str:
        return unit_fqdn(self.unit.name, self.model.name)

    # --- the reconcile ---------------------------------------------------------------------

    def _reconcile(self, event: ops.EventBase | None = None) -> None:
        # The view check failed: the view is stale; record it afresh even if unchanged.
        self._view_stale = (
            isinstance(event, ops.PebbleCheckFailedEvent) and event.info.name == VIEW_CHECK
        )
        # Bookie and HTTP (health, metrics) ports on the application's Service; no-op when open.
        self.unit.set_ports(3181, 8000)
        try:
            status = self._converge()
        except (ops.pebble.ConnectionError, ops.pebble.APIError, ops.pebble.ChangeError) as exc:
            # Pebble went away in the middle of the hook: the next event converges again.
            logger.warning("pebble error during reconcile: %s", exc)
            status = ops.WaitingStatus("waiting for pebble")
        if self.unit.is_leader():
            self.rolling_restart.arbitrate()
        self.unit.status = status

    def _converge(self) -> ops.StatusBase:
        try:
            config = self.load_config(BookKeeperConfig)
        except ValueError as exc:
            return ops.BlockedStatus(str(exc))

        connection, waiting = self._zookeeper_connection()
        if connection is None:
            self._publish(None)
            return waiting
        uri = metadata_service_uri(connection.endpoints, connection.chroot)
        try:
            conf = render_bookkeeper_conf(BookieInputs(self.address, uri, config))
            jaas = render_jaas(connection.username, connection.password)
        except ValueError as exc:
            self._publish(None)
            return ops.WaitingStatus(f"zookeeper relation data unusable: {exc}")
        if not self.workload.can_connect():
            return ops.WaitingStatus("waiting for pebble")

        files = {CONF_PATH: (conf, 0o644), JAAS_PATH: (jaas, 0o600)}
        layer = pebble_layer(self.address, bookie_env(config))
        running = self.workload.is_running()
        if not running:
            # Nothing reads these files until the bookie (re)starts, so they can change freely.
            self._push_changed(files)

        if not self._initialised():
            if not self.unit.is_leader():
                self._publish(None)
                return ops.WaitingStatus(
                    "waiting for the leader to initialise bookkeeper metadata"
                )
            problem = self._initialise_metadata(config)
            if problem:
                self._publish(None)
                return ops.WaitingStatus(problem)

        for path in STORAGE_DIRS:
            if not self.workload.owned_by_workload(path) and not self.workload.chown_to_workload(
                path
            ):
                return ops.WaitingStatus(f"waiting to chown {path} to the workload user")

        if not running:
            if self.workload.layer_differs(layer):
                self.workload.add_layer(LAYER_LABEL, layer)
            self.workload.start()
            self.rolling_restart.release()
        else:
            waiting = self._apply_by_rolling_restart(files, layer)
            if waiting:
                return waiting

        # Its own layer, outside the restart inputs: adding or changing it restarts nothing.
        view = view_layer(self.address)
        if self.workload.layer_differs(view):
            self.workload.add_layer(VIEW_LAYER_LABEL, view)
        return self._health_status(uri)

    # --- steps -----------------------------------------------------------------------------

    def _zookeeper_connection(self) -> tuple[ZooKeeperConnection | None, ops.StatusBase]:
        if self.zookeeper.relation is None:
            return None, ops.WaitingStatus("waiting for zookeeper relation")
        if self.unit.is_leader():
            try:
                self.zookeeper.request()
            except ops.ModelError as exc:  # e.g. the relation is going away
                logger.info("cannot request the zookeeper chroot: %s", exc)
        connection = self.zookeeper.connection()
        if connection is None:
            return None, ops.WaitingStatus("waiting for zookeeper credentials")
        if not all(_ENDPOINT.match(endpoint) for endpoint in connection.endpoints):
            return None, ops.WaitingStatus("zookeeper relation data unusable: bad endpoints")
        return connection, ops.ActiveStatus()

    def _push_changed(self, files: dict[str, tuple[str, int]]) -> None:
        for path, (content, mode) in files.items():
            if self.workload.file_differs(path, content):
                self.workload.push(path, content, mode=mode)

    def _initialised(self) -> bool:
        relation = self.model.get_relation(PEER)
        return relation is not None and relation.data[self.app].get(INITIALISED_KEY) == "true"

    def _initialise_metadata(self, config: BookKeeperConfig) -> str | None:
        """Leader: create the BookKeeper metadata unless it exists; return what blocks it."""
        relation = self.model.get_relation(PEER)
        if relation is None:
            return "waiting for the peer relation"
        env = tool_env(config)
        probe = self.workload.run(
            [BOOKKEEPER_SCRIPT, "shell", "whatisinstanceid"], environment=env
        )
        if not probe.ok:
            if not any(marker in probe.output for marker in _NO_CLUSTER_MARKERS):
                logger.warning("whatisinstanceid failed: %s", probe.output[-500:])
                return "bookkeeper metadata check failed (zookeeper unreachable?), will retry"
            logger.info("no bookkeeper metadata yet: running initnewcluster")
            init = self.workload.run(
                [BOOKKEEPER_SCRIPT, "shell", "initnewcluster"], environment=env
            )
            if not init.ok:
                logger.warning("initnewcluster failed: %s", init.output[-500:])
                return "bookkeeper metadata init failed, will retry"
        relation.data[self.app][INITIALISED_KEY] = "true"
        return None

    def _apply_by_rolling_restart(
        self, files: dict[str, tuple[str, int]], layer: dict
    ) -> ops.StatusBase | None:
        """Restart a running bookie on changed inputs, one unit at a time; None when done."""
        stale = any(self.workload.file_differs(p, c) for p, (c, _) in files.items())
        if stale or self.workload.layer_differs(layer):
            conf, _ = files[CONF_PATH]
            jaas, _ = files[JAAS_PATH]
            self.rolling_restart.request(inputs_token(conf, jaas, layer))
            if self.unit.is_leader():
                self.rolling_restart.arbitrate()
            if not self.rolling_restart.granted():
                return ops.WaitingStatus("waiting for the rolling-restart lock to apply changes")
            self._push_changed(files)
            if self.workload.layer_differs(layer):
                self.workload.add_layer(LAYER_LABEL, layer)
            logger.info("restarting the bookie to apply changed configuration")
            self.workload.restart()
            # Keep the lock until the bookie answers again: the bookie-view check wakes this
            # unit when it does (no hook waits for the JVM).
            return ops.WaitingStatus("bookie restarted; waiting for it to answer")
        elif self.rolling_restart.pending() and self._observe() != DOWN:
            self.rolling_restart.release()
        return None

    def _observe(self) -> str:
        """Read the bookie's live state and record it where the view check compares it."""
        state = bookie_state(self.workload.state_json())
        if self._view_stale or recorded_state(self.workload.read_text(VIEW_PATH)) != state:
            self.workload.push(VIEW_PATH, record_content(state, time.time()), mode=0o644)
            self._view_stale = False
        return state

    def _health_status(self, uri: str) -> ops.StatusBase:
        own = self._observe()
        own_id = bookie_id(self.address)
        self.bookkeeper.report(own_id, own)
        reports = self._peer_reports(own)
        everyone = self._all_bookie_ids()
        writable = sorted(b for b, state in reports.items() if state == WRITABLE and b in everyone)
        self._publish(BookKeeperInfo(uri, tuple(everyone), tuple(writable)))
        if own == DOWN:
            return ops.WaitingStatus("bookie not answering on its HTTP API yet")
        if own != WRITABLE:
            return ops.WaitingStatus(f"bookie {own} ({len(writable)}/{len(everyone)} writable)")
        return ops.ActiveStatus(f"bookie writable ({len(writable)}/{len(everyone)} writable)")

    def _peer_reports(self, own: str) -> dict[str, str]:
        """Bookie id -> state, as each bookie reports itself (this unit: ``own``, just seen)."""
        reports = {bookie_id(self.address): own}
        relation = self.model.get_relation(PEER)
        if relation is None:
            return reports
        if relation.data[self.unit].get("bookie-state") != own:
            relation.data[self.unit]["bookie-state"] = own
        for unit in relation.units:
            state = relation.data[unit].get("bookie-state")
            if state:
                reports[bookie_id(unit_fqdn(unit.name, self.model.name))] = state
        return reports

    def _all_bookie_ids(self) -> list[str]:
        names = {self.unit.name}
        relation = self.model.get_relation(PEER)
        if relation is not None:
            names.update(unit.name for unit in relation.units)
        return sorted(bookie_id(unit_fqdn(name, self.model.name)) for name in names)

    def _publish(self, info: BookKeeperInfo | None) -> None:
        if not self.unit.is_leader():
            return
        try:
            self.bookkeeper.publish(info if info is None or self._initialised() else None)
        except ops.ModelError as exc:
            logger.info("cannot publish bookkeeper relation data: %s", exc)
