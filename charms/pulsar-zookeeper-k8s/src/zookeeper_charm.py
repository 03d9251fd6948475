"""The pulsar-zookeeper-k8s charm: every event runs the same level-triggered ``_reconcile``.

Peer relation ``cluster``: read through ``zookeeper_peer_state`` (its keys are listed there).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import ops
import zookeeper_ensemble
from charms.pulsar_k8s.v0 import statuses
from charms.pulsar_k8s.v0.databags import find_app_secret, write_if_different
from charms.pulsar_k8s.v0.log_hygiene import quiet_credential_loggers
from charms.pulsar_k8s.v0.observability import RELATIONS as COS_RELATIONS
from charms.pulsar_k8s.v0.observability import MetricsEndpoint, Observability
from charms.pulsar_k8s.v0.refresh import Refresh
from charms.pulsar_k8s.v0.tls import RELATION as TLS_RELATION
from charms.pulsar_k8s.v0.tls import TlsMaterial, TlsRequirer, TlsState, tls_sans
from charms.pulsar_k8s.v0.validation import InvalidField, is_credential, parse_credential
from charms.pulsar_k8s.v0.view_check import record_view, retry_content
from charms.pulsar_k8s.v0.workload import (
    WorkloadError,
    reconcile_events,
    restart_token,
    unit_fqdn,
)
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import RollingRestart
from charms.pulsar_zookeeper_k8s.v0.zookeeper import (
    ClientRequest,
    ZooKeeperProvider,
    client_secret_label,
    client_username,
    generate_password,
)
from zookeeper_clients import EXCLUSIVE, assign_chroots
from zookeeper_config import ZooKeeperConfig
from zookeeper_ensemble import EnsembleError
from zookeeper_peer_state import (
    ADDRESS_KEY,
    CERTIFICATE_KEY,
    CLIENTS_KEY,
    INTERNAL_SECRET_ID_KEY,
    MEMBERS_KEY,
    PEER,
    PLAIN_CLIENT_PORT_KEY,
    PLAIN_CLIENTS_KEY,
    QUORUM_TLS_KEY,
    QUORUM_TLS_STAGE_KEY,
    ROTATIONS_KEY,
    SECURE_PORT_KEY,
    SERVER_ID_KEY,
    STARTED_KEY,
    TLS_CAS_KEY,
    TRUSTED_CAS_KEY,
    USERS_KEY,
    Peer,
    ZooKeeperPeerState,
)
from zookeeper_peer_state import parse as parse_peer_state
from zookeeper_plain_port import CLOSED, OPEN, plan_plain_port
from zookeeper_refresh import refresh_problems
from zookeeper_render import (
    CLIENT_PORT,
    CONF_PATH,
    JAAS_PATH,
    METRICS_PORT,
    MYID_PATH,
    client_address,
    render_dynamic_config,
    render_env,
    render_jaas,
    render_layer,
    render_myid,
    render_static_config,
    server_id,
    server_line,
)
from zookeeper_rotation import (
    ADDING,
    REMOVING,
    SWITCHING,
    Rotation,
    client_progress,
    describe,
    encode_rotations,
    next_username,
    relation_id_of,
    rotation_secret_label,
)
from zookeeper_tls import (
    OFF,
    SECURE_CLIENT_PORT,
    TLS,
    TLS_PATHS,
    SessionPeer,
    bundle_fingerprints,
    needed_cas,
    plan_member_tls,
    plan_stage,
    super_session,
    tls_files,
    tls_properties,
    trust_bundle,
)
from zookeeper_view import (
    DOWN,
    SERVING,
    VIEW_CHECK,
    VIEW_LAYER_LABEL,
    VIEW_PATH,
    view_layer,
    watched_layer,
)
from zookeeper_workload import AppliedState, DesiredWorkload, ZooKeeperWorkload

logger = logging.getLogger(__name__)

CONTAINER = "pulsar"
CLIENT_RELATION = "zookeeper"
INTERNAL_SECRET_LABEL = "zookeeper-internal"
# A failed ZooKeeper operation with the quorum up is retried this long after (the view check
# fails then: a real event, not update-status).
RETRY_AFTER_S = 5.0
# Probing another member's AdminServer: a live server answers at once; a frozen one must not hold
# the hook.
PROBE_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Credentials:
    """Server-side passwords, from the app-owned ``zookeeper-internal`` secret."""

    super_password: str
    quorum_password: str


def _unit_number(unit: ops.Unit) -> int:
    return int(unit.name.rsplit("/", 1)[1])


class ZooKeeperCharm(ops.CharmBase):
    """One ZooKeeper server per unit; the leader manages membership and client credentials."""

    # What this hook saw of the server (None: not looked at).
    _observed: str | None = None
    _view_stale = False
    # This unit's TLS state, read by each reconcile.
    tls_state = TlsState()
    # rotation secrets written in this hook (relation id -> content): read back from here, as a
    # secret created in a hook may not be readable by label before the hook ends
    _written_rotation_secrets: dict[int, dict[str, str]]

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        quiet_credential_loggers()
        self._written_rotation_secrets = {}
        self.provider = ZooKeeperProvider(self, CLIENT_RELATION)
        self.restarts = RollingRestart(self, PEER)
        self.workload = ZooKeeperWorkload(self.unit.get_container(CONTAINER))
        # before the reconcile's observers: the library stores and requests in the same hook
        self.tls = TlsRequirer(self, sans=tls_sans(self.unit.name, self.app.name, self.model.name))
        self.observability = Observability(
            self,
            MetricsEndpoint(METRICS_PORT, "/metrics"),
            PEER,
            lambda unit: unit_fqdn(unit, self.app.name, self.model.name),
        )
        self.refresh = Refresh(self, PEER, self._refresh_problems)
        events = reconcile_events(
            self,
            CONTAINER,
            relations=(PEER, CLIENT_RELATION, TLS_RELATION, *COS_RELATIONS),
            storages=("data",),
        )
        for event in [self.on.start, self.tls.available, *events]:
            framework.observe(event, self._on_event)
        framework.observe(self.on.rotate_zookeeper_credentials_action, self._on_rotate_credentials)

    # ---- identity -------------------------------------------------------------------------

    @property
    def unit_number(self) -> int:
        return _unit_number(self.unit)

    @property
    def address(self) -> str:
        return unit_fqdn(self.unit.name, self.app.name, self.model.name)

    @property
    def server_id(self) -> int:
        return server_id(self.unit_number)

    # ---- the reconcile --------------------------------------------------------------------

    def _on_event(self, event: ops.EventBase) -> None:
        # The view check failed: the view is stale; record it afresh even if unchanged.
        self._view_stale = (
            isinstance(event, ops.PebbleCheckFailedEvent) and event.info.name == VIEW_CHECK
        )
        self._reconcile()

    def _reconcile(self) -> None:
        try:
            config = self.load_config(ZooKeeperConfig, errors="raise")
        except (ValueError, TypeError) as exc:
            # nothing below runs: a running server keeps its last good configuration
            self.unit.status = statuses.bad_config(exc)
            return
        status = statuses.guarded(lambda: self._converge(config))
        self.unit.status = self.refresh.status(self.observability.reconcile(self.workload, status))

    def _converge(self, config: ZooKeeperConfig) -> ops.StatusBase:
        tls_state = self.tls.state()
        if tls_state.waiting:
            # nothing changes on this unit until its certificate is there (no half TLS)
            return statuses.awaiting("a certificate on the certificates relation")
        self.tls_state = tls_state
        relation = self.model.get_relation(PEER)
        self._open_client_ports()
        if relation is None:
            return statuses.awaiting("the peer relation")
        self._publish_unit(
            relation,
            {
                ADDRESS_KEY: self.address,
                SERVER_ID_KEY: str(self.server_id),
                CERTIFICATE_KEY: "true" if tls_state.enabled else "",
            },
        )

        if self.unit.is_leader():
            self._ensure_client_passwords()
        credentials = self._credentials(relation)
        if credentials is None:
            return ops.WaitingStatus("waiting for the leader to generate credentials")

        peers = self._peers(relation)
        members = self._members(relation)
        if self.unit.is_leader() and not members:
            members = self._commit_bootstrap_members(relation, peers)
        if not members:
            if self.unit.is_leader():
                planned = self._planned_units()
                return ops.WaitingStatus(
                    f"waiting for units to publish their address ({len(peers)}/{planned})"
                )
            return ops.WaitingStatus("waiting for the leader to commit the ensemble")

        if self.unit.is_leader():
            self._plan_quorum_tls(relation, members)
        workload_status = self._workload_step(config, credentials, members)
        leader_status: ops.StatusBase | None = None
        notes: list[str] = []
        if self.unit.is_leader():
            # 2181 first: reopened before the clients are told plain-text endpoints
            port_notes: list[str] = []
            port_status = self._lead_plain_port(relation, credentials, config, port_notes)
            leader_status, notes = self._lead(relation, credentials, config.acl_policy)
            leader_status = leader_status or port_status
            notes += port_notes
        return workload_status or leader_status or self._health(self._members(relation), notes)

    def _plan_quorum_tls(self, relation: ops.Relation, members: dict[int, str]) -> None:
        """Leader: take the quorum TLS stage one step towards what the members can run.

        TLS once every member has its certificate; plain text when the certificates relation
        is gone or a member has none. A member restarts once for its certificate and a stage
        when both come before its turn of the lock.
        """
        state = self._peer_state(relation)
        peers = state.peers
        target_tls = self.tls.relation is not None and all(
            sid in peers and peers[sid].certificate for sid in members
        )
        applied = [peers[sid].quorum_tls if sid in peers else None for sid in members]
        any_started = any(sid in peers and peers[sid].started for sid in members)
        any_certificate = any(sid in peers and peers[sid].certificate for sid in members)
        stage = plan_stage(
            state.quorum_tls_stage, target_tls, applied, any_started, any_certificate
        )
        if stage != state.quorum_tls_stage:
            logger.info("quorum TLS: stage %s -> %s", state.quorum_tls_stage, stage)
        write_if_different(relation.data[self.app], {QUORUM_TLS_STAGE_KEY: stage})

    def _refresh_problems(self) -> list[str]:
        """Run the pre-refresh check: every unit an ensemble member and serving."""
        relation = self.model.get_relation(PEER)
        if relation is None:
            return ["no peer relation yet"]
        units = {
            unit.name: unit_fqdn(unit.name, self.app.name, self.model.name)
            for unit in [self.unit, *relation.units]
        }
        return refresh_problems(
            units,
            self._members(relation),
            lambda address: zookeeper_ensemble.admin_command(address, "zabstate", timeout=2.0),
        )

    # ---- workload ----------------------------------------------------------------------

    def _workload_step(
        self, config: ZooKeeperConfig, credentials: Credentials, members: dict[int, str]
    ) -> ops.StatusBase | None:
        if not self.workload.can_connect():
            return statuses.pebble_unreachable()
        refused = self.refresh.refused(self.workload)
        if refused is not None:
            return refused
        try:
            self.workload.ensure_storage_owned()
            return self._converge_workload(config, credentials, members)
        except WorkloadError as exc:
            logger.warning("workload: %s", exc)
            return ops.WaitingStatus(f"waiting for Pebble: {exc}")

    def _desired(
        self,
        config: ZooKeeperConfig,
        credentials: Credentials,
        members: dict[int, str],
        running: AppliedState | None,
    ) -> DesiredWorkload:
        users = self._client_users()
        stage = self._quorum_tls_stage()
        settings = tls_properties(self.tls_state, self.address, stage)
        presented, trust = self._tls_plan(members, running)
        files = {
            CONF_PATH: render_static_config(config, self.address, settings),
            JAAS_PATH: render_jaas(credentials.super_password, credentials.quorum_password, users),
            MYID_PATH: render_myid(self.server_id),
            # read at start only (ZooKeeper 3.9 does not reload them): a renewal restarts
            **tls_files(presented, trust),
        }
        layer = watched_layer(
            render_layer(render_env(config, credentials.super_password), self.address),
            self.address,
        )
        # Every stage is a restart, even when this unit's effective settings do not change:
        # the leader steps on once every member started with the current stage.
        token_inputs = {**files, "quorum-tls-stage": stage}
        return DesiredWorkload(
            files=files,
            # a starting server joins with the committed ensemble plus itself
            dynamic_config=render_dynamic_config(
                {**members, self.server_id: self.address}, self._plain_client_port() == OPEN
            ),
            layer=layer,
            token=restart_token(token_inputs, layer),
            users=tuple(sorted(users)),
            quorum_tls=stage,
            secure_port=self.tls_state.enabled,
            presented_ca=presented.ca if presented else "",
            trusted=tuple(sorted(bundle_fingerprints(trust))),
        )

    def _tls_plan(
        self, members: dict[int, str], running: AppliedState | None
    ) -> tuple[TlsMaterial | None, str]:
        """Return the certificate the server presents and its trust bundle.

        A certificate from a new CA waits until every other member trusts that CA (the
        running one is presented meanwhile); the bundle is every CA a unit needs trusted
        (``zookeeper_tls``).
        """
        newest = self.tls_state.material
        if newest is None:
            return None, ""
        relation = self.model.get_relation(PEER)
        peers = self._peers(relation) if relation else {}
        presented_ca = running.presented_ca if running else ""
        others = [
            peers[sid].trusted if sid in peers else None
            for sid in sorted(members)
            if sid != self.server_id
        ]
        # this unit's own databag may still name the CA it stops presenting: left out
        others_cas = [ca for sid, p in peers.items() if sid != self.server_id for ca in p.cas]
        plan = plan_member_tls(newest.ca, presented_ca, others, others_cas)
        if plan.present_new:
            return newest, plan.trust
        held = self._running_material(presented_ca)
        if held is None:  # the running files are gone: nothing else to present
            return newest, plan.trust
        return held, plan.trust

    def _running_material(self, ca: str) -> TlsMaterial | None:
        """Return the certificate and key the running server presents (None: unreadable)."""
        certificate = self.workload.read_text(TLS_PATHS.certificate)
        private_key = self.workload.read_text(TLS_PATHS.private_key)
        if not certificate or not private_key:
            return None
        return TlsMaterial(certificate=certificate, ca=ca, private_key=private_key)

    def _needed_cas(self, running: AppliedState | None) -> list[str]:
        """Return the CAs this unit needs trusted: its newest certificate's, the running one's."""
        newest = self.tls_state.material
        return needed_cas(newest.ca if newest else "", running.presented_ca if running else "")

    def _plain_client_port(self) -> str:
        relation = self.model.get_relation(PEER)
        return self._peer_state(relation).plain_client_port if relation else OPEN

    def _counts_plain_clients(self, config: ZooKeeperConfig, running: AppliedState | None) -> bool:
        """Whether this unit counts its plain-text clients: the leader may close 2181 soon."""
        return (
            not config.tls_plaintext_enabled
            and self.tls_state.enabled
            and running is not None
            and running.secure_port
            and self._plain_client_port() == OPEN
        )

    def _quorum_tls_stage(self) -> str:
        relation = self.model.get_relation(PEER)
        return self._peer_state(relation).quorum_tls_stage if relation else OFF

    def _converge_workload(
        self, config: ZooKeeperConfig, credentials: Credentials, members: dict[int, str]
    ) -> ops.StatusBase | None:
        """Start, or restart through the lock; publish ``started`` and ``users``.

        Returns a status when this unit waits (restart turn, ruok).
        """
        running = self.workload.server_running()
        applied = self.workload.applied()
        desired = self._desired(config, credentials, members, applied if running else None)
        status: ops.StatusBase | None = None

        # No hook waits for the JVM: the view check wakes this unit when the server answers.
        if not running:
            # a stopped server costs the quorum nothing more: no lock needed
            self.workload.start_server(desired)
        elif applied is None or applied.token != desired.token:
            if self.restarts.acquire(desired.token):
                logger.info("restart lock granted: restarting to apply %s", desired.token)
                self.workload.restart_server(desired)
            else:
                status = ops.WaitingStatus("waiting for the rolling-restart lock")
        running = self.workload.server_running()
        applied = self.workload.applied()
        counting = running and self._counts_plain_clients(config, applied)
        self.workload.ensure_checks(VIEW_LAYER_LABEL, view_layer(self.address, counting))

        observed = self._observe() if running else DOWN
        started = observed != DOWN
        current = applied is not None and applied.token == desired.token
        if started and current and self.restarts.pending():
            # restarted (or started) with what is wanted and answering: hand the lock on
            self.restarts.release()
        if self.unit.is_leader():
            self.restarts.arbitrate()

        users = list(applied.users) if (started and applied) else []
        running_with = applied if (started and applied) else None
        # the CA of the certificate the server presents stays asked for while it restarts or
        # does not answer: peers must not drop it before it presents another one
        cas = self._needed_cas(applied)
        relation = self.model.get_relation(PEER)
        if relation is not None:
            self._publish_unit(
                relation,
                {
                    STARTED_KEY: "true" if started else "false",
                    USERS_KEY: json.dumps(users),
                    QUORUM_TLS_KEY: running_with.quorum_tls if running_with else "",
                    SECURE_PORT_KEY: "true" if running_with and running_with.secure_port else "",
                    TLS_CAS_KEY: json.dumps(cas) if cas else "",
                    TRUSTED_CAS_KEY: (
                        json.dumps(list(running_with.trusted))
                        if running_with and running_with.trusted
                        else ""
                    ),
                    PLAIN_CLIENTS_KEY: (
                        self._plain_clients_count() if counting and observed == SERVING else ""
                    ),
                },
            )
        if status is None and not started:
            status = ops.WaitingStatus("waiting for ZooKeeper to answer ruok")
        return status

    def _plain_clients_count(self) -> str:
        """Count this server's plain-text client connections for the leader ("": no answer)."""
        count = zookeeper_ensemble.plain_clients(self.address)
        return "" if count is None else str(count)

    def _observe(self) -> str:
        """Read the server's live state and record it where the view check compares it."""
        # Local calls a live server answers at once: a short timeout keeps a hook on a frozen
        # or starting server short (the view check wakes the unit when it answers).
        observed = zookeeper_ensemble.server_state_of(self.address, timeout=1.0)
        record_view(self.workload, VIEW_PATH, observed, self._view_stale)
        self._view_stale = False
        self._observed = observed
        return observed

    def _serving_members(self, members: dict[int, str]) -> list[str]:
        """Return the members in a quorum now: the hosts of the kazoo session.

        Without one a session only times out, and a session offered a member that is not
        serving may spend its whole timeout on it.
        """
        serving = []
        for _, address in sorted(members.items()):
            if address == self.address and self._observed is not None:
                if self._observed == SERVING:
                    serving.append(address)
                continue
            state = zookeeper_ensemble.server_state_of(address, timeout=PROBE_TIMEOUT_S)
            if state == SERVING:
                serving.append(address)
        return serving

    def _retry_later(self) -> None:
        """Make the view check fail in RETRY_AFTER_S: the retry's wake-up (no update-status).

        Only a running server has a view check; a unit whose server is not running is woken by
        that server's own start.
        """
        if self._observed is None:
            return
        content = retry_content(self._observed, time.time(), RETRY_AFTER_S)
        self.workload.record(VIEW_PATH, content)

    # ---- peer data ------------------------------------------------------------------------

    def _publish_unit(self, relation: ops.Relation, wanted: dict[str, str]) -> None:
        write_if_different(relation.data[self.unit], wanted)

    def _peer_state(self, relation: ops.Relation) -> ZooKeeperPeerState:
        """Parse the peer databags (InvalidField when a value is refused)."""
        units: dict[str, dict[str, str]] = {}
        for unit in [self.unit, *relation.units]:
            try:
                units[unit.name] = dict(relation.data[unit])
            except ops.ModelError as exc:  # e.g. a unit departing mid-hook
                logger.info("peer %s data unreadable: %s", unit.name, exc)
        return parse_peer_state(relation.data[self.app], units)

    def _peers(self, relation: ops.Relation) -> dict[int, Peer]:
        """Every unit (this one included) that published an address, by server id."""
        return dict(self._peer_state(relation).peers)

    def _members(self, relation: ops.Relation) -> dict[int, str]:
        return dict(self._peer_state(relation).members)

    def _clients(self, relation: ops.Relation) -> dict[str, str]:
        return dict(self._peer_state(relation).clients)

    def _planned_units(self) -> int:
        try:
            return self.app.planned_units()
        except ops.ModelError:
            relation = self.model.get_relation(PEER)
            return 1 + (len(relation.units) if relation else 0)

    # ---- leader: secrets, bootstrap, membership, clients ----------------------------------

    def _ensure_client_passwords(self) -> None:
        """Create every related client's password now, before it asks or a quorum exists.

        Members load client users from their JAAS file at start only: a user known before the
        first start is in every member from the beginning, which saves a rolling restart of
        the whole ensemble per client on a fresh deploy. The password is handed out only once
        the request is granted and every member loaded the user.
        """
        for relation_id in self._client_relation_ids():
            self.provider.ensure_password(relation_id)

    def _credentials(self, relation: ops.Relation) -> Credentials | None:
        """Server passwords; the leader creates the secret once and records its id."""
        content = find_app_secret(
            self,
            INTERNAL_SECRET_LABEL,
            relation.data[self.app],
            INTERNAL_SECRET_ID_KEY,
            _new_internal_content if self.unit.is_leader() else None,
        )
        if content is None:
            return None
        source = f"{INTERNAL_SECRET_LABEL} secret"
        return Credentials(
            parse_credential(source, "super-password", content.get("super-password")),
            parse_credential(source, "quorum-password", content.get("quorum-password")),
        )

    def _commit_bootstrap_members(
        self, relation: ops.Relation, peers: dict[int, Peer]
    ) -> dict[int, str]:
        """First ensemble: only once every planned unit has an address, all at once."""
        planned = self._planned_units()
        if len(peers) < planned:
            return {}
        members = {sid: p.address for sid, p in peers.items() if p.unit_number < planned}
        self._write_members(relation, members)
        return members

    def _write_members(self, relation: ops.Relation, members: dict[int, str]) -> None:
        encoded = json.dumps({str(k): members[k] for k in sorted(members)})
        write_if_different(relation.data[self.app], {MEMBERS_KEY: encoded})

    def _write_clients(self, relation: ops.Relation, clients: dict[str, str]) -> None:
        encoded = json.dumps(dict(sorted(clients.items())))
        if relation.data[self.app].get(CLIENTS_KEY, "{}") != encoded:
            write_if_different(relation.data[self.app], {CLIENTS_KEY: encoded})

    def _lead(
        self, relation: ops.Relation, credentials: Credentials, acl_policy: str
    ) -> tuple[ops.StatusBase | None, list[str]]:
        """Apply membership changes, client ACLs, revocations and publications.

        Returns a status when the ensemble cannot be worked on, and notes for the Active message.
        """
        self.restarts.arbitrate()
        peers = self._peers(relation)
        members = self._members(relation)
        planned = self._planned_units()
        # departing units first: gone from the relation, or beyond the planned scale
        leaving = sorted(
            sid for sid in members if sid not in peers or peers[sid].unit_number >= planned
        )
        if len(leaving) == len(members):
            leaving = []  # never remove the whole ensemble
        joining = {
            sid: p.address
            for sid, p in sorted(peers.items())
            if sid not in members and p.started and p.unit_number < planned
        }
        exclusive = acl_policy == EXCLUSIVE
        requests = assign_chroots(self.provider.requests(), acl_policy)
        notes: list[str] = []
        rotating = self._rotations(relation)
        if rotating and not (leaving or joining):
            rotation_status, rotation_notes, switched = self._advance_rotations(
                relation, credentials, members, requests, rotating
            )
            notes.extend(rotation_notes)
            if rotation_status is not None or switched:
                # a switch rewrote relation secrets: the next event publishes from them
                return rotation_status, notes
            rotating = self._rotations(relation)
        requests = [self._with_current_user(r) for r in requests]
        valid = [r for r in requests if r.error is None]
        notes += [f"invalid request from {r.app_name}: {r.error}" for r in requests if r.error]
        for r in requests:
            if r.error:
                logger.warning("skipping relation %s (%s): %s", r.relation_id, r.app_name, r.error)
                self.provider.unpublish(r.relation_id)
        clients = self._clients(relation)
        # exclusive: znodes clients created since the last reconcile are made theirs alone
        to_grant = [r for r in valid if exclusive or clients.get(r.username) != r.chroot]
        wanted_users = {r.username for r in valid}
        for relation_id, rotation in rotating.items():
            if rotation.phase != REMOVING and any(r.relation_id == relation_id for r in valid):
                wanted_users |= {rotation.old, rotation.new}
        to_revoke = {u: c for u, c in clients.items() if u not in wanted_users}

        if leaving or joining or to_grant or to_revoke:
            serving = (
                self._serving_members(members)
                if any(p.started for sid, p in peers.items() if sid in members)
                else []
            )
            if not serving:
                # Nothing to try: a member entering the quorum wakes this unit (its own view
                # check, or that member's `started` on the peer relation).
                return ops.WaitingStatus("waiting for quorum"), notes
            try:
                members = self._change_ensemble(
                    relation,
                    credentials,
                    serving,
                    members,
                    leaving,
                    joining,
                    to_grant,
                    to_revoke,
                    clients,
                    rotating,
                    exclusive=exclusive,
                )
            except EnsembleError as exc:
                logger.warning("ensemble operation failed: %s", exc)
                self._retry_later()
                return ops.WaitingStatus(f"waiting for the ensemble: {exc}"), notes

        waiting = self._publish_clients(relation, valid, members)
        if waiting:
            # bookies and brokers share a chroot: name each once
            notes.append(
                f"waiting for members to load credentials of {', '.join(sorted(set(waiting)))}"
            )
        return None, notes

    def _lead_plain_port(
        self,
        relation: ops.Relation,
        credentials: Credentials,
        config: ZooKeeperConfig,
        notes: list[str],
    ) -> ops.StatusBase | None:
        """Leader: bind the plain-text client listeners where ``zookeeper_plain_port`` says.

        A reconfig moves every member's listener (running servers re-bind, nothing restarts);
        the peer relation records it once done. Adds a note while clients keep 2181 open.
        """
        state = self._peer_state(relation)
        peers, members = state.peers, dict(state.members)
        tls_everywhere = (
            self.tls.relation is not None
            and bool(members)
            and all(sid in peers and peers[sid].certificate for sid in members)
            and all(peers[sid].secure_port for sid in members)
        )
        counts = [peers[sid].plain_clients if sid in peers else None for sid in sorted(members)]
        target = plan_plain_port(
            state.plain_client_port,
            plaintext_allowed=config.tls_plaintext_enabled,
            tls_everywhere=tls_everywhere,
            tls_only_quorum=_quorum_on_tls(state, members),
            plain_clients=counts,
        )
        if target == OPEN and tls_everywhere and not config.tls_plaintext_enabled:
            left = sum(count for count in counts if count)
            if left:
                notes.append(f"2181 open until {left} plain-text client connection(s) leave")
        if target == state.plain_client_port:
            return None
        serving = self._serving_members(members)
        if not serving:
            return ops.WaitingStatus("waiting for quorum")
        hosts, tls_ca = self._super_session(relation, serving)
        try:
            with zookeeper_ensemble.ZooKeeperEnsemble(
                hosts, credentials.super_password, tls_ca=tls_ca
            ) as zk:
                zk.move_client_addresses(members, target)
        except EnsembleError as exc:
            logger.warning("moving the plain-text client port failed: %s", exc)
            self._retry_later()
            return ops.WaitingStatus(f"waiting for the ensemble: {exc}")
        logger.info("plain-text client port: %s -> %s", state.plain_client_port, target)
        write_if_different(relation.data[self.app], {PLAIN_CLIENT_PORT_KEY: target})
        self._open_client_ports()
        return None

    def _open_client_ports(self) -> None:
        """Offer the listening client ports on the Kubernetes Service (a no-op when unchanged)."""
        plain = self._plain_client_port() == OPEN
        self.unit.set_ports(
            *([CLIENT_PORT] if plain else []),
            *([SECURE_CLIENT_PORT] if self.tls_state.enabled else []),
        )

    def _change_ensemble(
        self,
        relation: ops.Relation,
        credentials: Credentials,
        hosts: list[str],
        members: dict[int, str],
        leaving: list[int],
        joining: dict[int, str],
        to_grant: list[ClientRequest],
        to_revoke: dict[str, str],
        clients: dict[str, str],
        rotating: dict[int, Rotation],
        *,
        exclusive: bool = False,
    ) -> dict[int, str]:
        hosts, tls_ca = self._super_session(relation, hosts)
        with zookeeper_ensemble.ZooKeeperEnsemble(
            hosts, credentials.super_password, tls_ca=tls_ca
        ) as zk:
            if leaving or joining:
                # ZooKeeper's own view wins (a previous hook may have died after a reconfig)
                current = zk.members()
                still_leaving = [sid for sid in leaving if sid in current]
                if still_leaving and len(still_leaving) < len(current):
                    current = zk.remove_servers(still_leaving)
                plain_open = self._plain_client_port() == OPEN
                still_joining = [
                    server_line(sid, addr, plain_open)
                    for sid, addr in joining.items()
                    if sid not in current
                ]
                if still_joining:
                    current = zk.add_servers(still_joining)
                members = current
                self._write_members(relation, members)
            for request in to_grant:
                # the current user's password (request.username is the current user)
                password = self.provider.ensure_password(request.relation_id)
                if password is None or not is_credential(password):
                    continue
                old_chroot = clients.get(request.username)
                if old_chroot and old_chroot != request.chroot:
                    zk.revoke(old_chroot, request.username, recursive=exclusive)
                # both users of a rotation keep the chroot (exclusive: only they)
                also = [
                    pair
                    for pair in self._rotation_users(request.relation_id, rotating).items()
                    if pair[0] != request.username
                ]
                changed = zk.grant(
                    request.chroot,
                    request.username,
                    password,
                    request.acl,
                    exclusive=exclusive,
                    also=also,
                )
                if changed:
                    logger.info("ACL of %s znode(s) under %s set", changed, request.chroot)
                clients[request.username] = request.chroot
                self._write_clients(relation, clients)
            live = set(self._client_relation_ids())
            for username, chroot in to_revoke.items():
                relation_id = relation_id_of(username)
                # a rotated-out user of a live relation: its entries are everywhere under it
                zk.revoke(chroot, username, recursive=exclusive or relation_id in live)
                if relation_id is not None and relation_id not in live:
                    self.provider.withdraw(relation_id)
                del clients[username]
                self._write_clients(relation, clients)
        return members

    def _publish_clients(
        self, relation: ops.Relation, valid: list[ClientRequest], members: dict[int, str]
    ) -> list[str]:
        """Hand out credentials once every member's running JAAS holds the user."""
        peers = self._peers(relation)
        clients = self._clients(relation)
        endpoints, tls_ca = self._client_endpoints(relation, members)
        waiting: list[str] = []
        for request in valid:
            current = self._current_user(request.relation_id)
            password = current[1] if current else None
            if password is None or clients.get(request.username) != request.chroot:
                waiting.append(request.chroot)
                continue
            loaded = all(sid in peers and request.username in peers[sid].users for sid in members)
            if not loaded:
                waiting.append(request.chroot)
                continue
            self.provider.publish(
                request, endpoints=endpoints, password=password, tls=bool(tls_ca), tls_ca=tls_ca
            )
        return waiting

    def _super_session(self, relation: ops.Relation, hosts: list[str]) -> tuple[list[str], str]:
        """Return the hosts and CA bundle of the super-user session (see ``super_session``).

        Plain text with 2181 closed (this unit without its certificate, as when the
        certificates relation is removed): its own server's pod-local listener, which the
        credential never leaves the pod to reach.
        """
        material = self.tls_state.material
        state = self._peer_state(relation)
        peers = [SessionPeer(p.address, p.secure_port, p.cas) for p in state.peers.values()]
        hosts, tls_ca = super_session(hosts, peers, material.ca if material is not None else None)
        if not tls_ca and state.plain_client_port == CLOSED:
            return [client_address(self.address, self.server_id, plain_open=False)], ""
        return hosts, tls_ca

    def _client_endpoints(
        self, relation: ops.Relation, members: dict[int, str]
    ) -> tuple[list[str], str]:
        """Return the endpoints clients use and the CAs they trust ("" : plain text).

        TLS once every member's running server serves the secure client port, the quorum has
        finished its walk to TLS, and this unit has the CA; plain text otherwise (clients would
        fail on a member without TLS). Waiting for the walk keeps the clients' own rolling
        restarts (bookies, brokers) out of the servers' rolls: a broker starting while the
        servers restart one after another waits for each new quorum. The CAs: the members'
        trust bundle, so clients trust old and new servers during a CA rotation.
        """
        state = self._peer_state(relation)
        peers = state.peers
        material = self.tls_state.material
        secure = (
            bool(members)
            and all(sid in peers and peers[sid].secure_port for sid in members)
            and _quorum_on_tls(state, members)
        )
        if material is None or not secure:
            return [f"{members[sid]}:{CLIENT_PORT}" for sid in sorted(members)], ""
        bundle = trust_bundle([material.ca, *(ca for p in peers.values() for ca in p.cas)])
        return [f"{members[sid]}:{SECURE_CLIENT_PORT}" for sid in sorted(members)], bundle

    # ---- credential rotation (zookeeper_rotation has the phases) ---------------------------

    def _on_rotate_credentials(self, event: ops.ActionEvent) -> None:
        """Start a rotation of one (``relation-id``) or every served client relation's user.

        Re-running it while a rotation rolls starts nothing and reports the progress.
        """
        if not self.unit.is_leader():
            event.fail("run this action on the leader unit")
            return
        relation = self.model.get_relation(PEER)
        if relation is None:
            event.fail("the peer relation is not there yet")
            return
        try:
            rotating = self._rotations(relation)
            clients = self._clients(relation)
        except InvalidField as exc:
            event.fail(f"cannot read the rotation state: {exc}")
            return
        served: dict[int, tuple[str, str]] = {}
        for request in self.provider.requests():
            current = self._current_user(request.relation_id)
            if request.error is None and current and clients.get(current[0]) == request.chroot:
                served[request.relation_id] = current
        served_ids = sorted(set(served) | set(rotating))
        raw = event.params.get("relation-id")
        if raw is not None:
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                event.fail("relation-id: must be the id of a client relation (an integer)")
                return
            if raw not in served_ids:
                known = ", ".join(map(str, served_ids)) or "none"
                event.fail(
                    f"relation-id: {raw} is not a served client relation of this application "
                    f"(served client relations: {known})"
                )
                return
            targets = [raw]
        else:
            targets = served_ids
        if not targets:
            event.fail("no served client relation to rotate")
            return
        results: dict[str, str] = {}
        started = False
        for relation_id in targets:
            rotation = rotating.get(relation_id)
            if rotation is not None:
                detail = self._rotation_detail(relation, relation_id, rotation)
                results[f"relation-{relation_id}"] = "in-progress: " + describe(rotation, detail)
                continue
            old_user, old_password = served[relation_id]
            rotation = Rotation(ADDING, old_user, next_username(relation_id, old_user))
            content = {"old-password": old_password, "new-password": generate_password()}
            label = rotation_secret_label(relation_id)
            try:
                try:
                    self.model.get_secret(label=label).set_content(content)
                except ops.SecretNotFoundError:
                    self.app.add_secret(content, label=label)
            except ops.ModelError as exc:
                event.fail(f"cannot write the rotation secret of relation {relation_id}: {exc}")
                return
            self._written_rotation_secrets[relation_id] = content
            rotating[relation_id] = rotation
            started = True
            results[f"relation-{relation_id}"] = f"started: {rotation.old} -> {rotation.new}"
            logger.info("rotating relation %s: %s -> %s", relation_id, rotation.old, rotation.new)
        self._write_rotations(relation, rotating)
        # the leader's own server loads the new user now; the peers follow on relation-changed
        self._reconcile()
        event.set_results({"status": "started" if started else "in-progress", **results})

    def _rotations(self, relation: ops.Relation) -> dict[int, Rotation]:
        return dict(self._peer_state(relation).rotations)

    def _write_rotations(self, relation: ops.Relation, rotations: dict[int, Rotation]) -> None:
        data = relation.data[self.app]
        if not rotations:
            if ROTATIONS_KEY in data:
                del data[ROTATIONS_KEY]
            return
        write_if_different(data, {ROTATIONS_KEY: encode_rotations(rotations)})

    def _rotation_passwords(self, relation_id: int) -> tuple[str, str] | None:
        """(old, new) password of a rotation, from its secret; None when unusable."""
        content = self._written_rotation_secrets.get(relation_id)
        if content is None:
            try:
                secret = self.model.get_secret(label=rotation_secret_label(relation_id))
                content = secret.get_content(refresh=True)
            except (ops.SecretNotFoundError, ops.ModelError):
                return None
        old, new = content.get("old-password"), content.get("new-password")
        if not (old and new and is_credential(old) and is_credential(new)):
            return None
        return old, new

    def _rotation_users(self, relation_id: int, rotating: dict[int, Rotation]) -> dict[str, str]:
        """Both users of a rotation while clients may use either; else none."""
        rotation = rotating.get(relation_id)
        if rotation is None or rotation.phase == REMOVING:
            return {}
        passwords = self._rotation_passwords(relation_id)
        if passwords is None:
            return {}
        return {rotation.old: passwords[0], rotation.new: passwords[1]}

    def _remove_rotation_secret(self, relation_id: int) -> None:
        self._written_rotation_secrets.pop(relation_id, None)
        try:
            self.model.get_secret(label=rotation_secret_label(relation_id)).remove_all_revisions()
        except (ops.SecretNotFoundError, ops.ModelError) as exc:
            logger.info("rotation secret of relation %s: %s", relation_id, exc)

    def _client_reports(self, relation_id: int) -> tuple[dict, dict]:
        """Return the users client units report: (the rotated relation's, every other's)."""
        rotated: dict[str, str | None] = {}
        others: dict[str, str | None] = {}
        for client in self.provider.relations:
            reports = self.provider.running_users(client)
            (rotated if client.id == relation_id else others).update(reports)
        return rotated, others

    def _rotation_detail(
        self, relation: ops.Relation, relation_id: int, rotation: Rotation
    ) -> str:
        """Return what the rotation waits for, in words (empty when its next step can run)."""
        peers = self._peers(relation)
        members = self._members(relation)
        if rotation.phase == ADDING:
            loaded = [
                sid
                for sid in members
                if sid in peers and peers[sid].started and rotation.new in peers[sid].users
            ]
            if len(loaded) == len(members):
                return ""
            return f"{len(loaded)}/{len(members)} servers run with the new user"
        if rotation.phase == SWITCHING:
            progress = client_progress(*self._client_reports(relation_id), rotation)
            if progress.done:
                return ""
            detail = f"{progress.on_new}/{progress.total} client units run with the new user"
            if progress.still_old:
                detail += f" (waiting for {', '.join(progress.still_old)})"
            return detail
        dropped = [
            sid
            for sid in members
            if sid in peers and peers[sid].started and rotation.old not in peers[sid].users
        ]
        if len(dropped) == len(members):
            return ""
        return f"{len(dropped)}/{len(members)} servers run without the old user"

    def _advance_rotations(
        self,
        relation: ops.Relation,
        credentials: Credentials,
        members: dict[int, str],
        requests: list[ClientRequest],
        rotating: dict[int, Rotation],
    ) -> tuple[ops.StatusBase | None, list[str], bool]:
        """Leader: take every rotation whose wait is over one phase on.

        Returns a status when ZooKeeper cannot be worked on, notes, and whether a relation's
        secret now names its new user (then the rest of the leader's client work waits for
        the next event, which reads it back).
        """
        live = {r.relation_id: self._with_current_user(r) for r in requests if r.error is None}
        remaining = dict(rotating)
        notes: list[str] = []
        steps: list[tuple[int, Rotation, ClientRequest]] = []
        for relation_id, rotation in sorted(rotating.items()):
            request = live.get(relation_id)
            if request is None:
                # relation gone (or its request invalid): the usual revocation takes its users
                del remaining[relation_id]
                self._remove_rotation_secret(relation_id)
                continue
            if rotation.phase == ADDING and self._rotation_passwords(relation_id) is None:
                # nothing was handed out yet: drop it; the action starts it afresh
                logger.warning("rotation of relation %s: its secret is unusable", relation_id)
                del remaining[relation_id]
                notes.append(f"rotation of relation-{relation_id} abandoned: secret unusable")
                continue
            detail = self._rotation_detail(relation, relation_id, rotation)
            if detail:
                notes.append(f"rotating relation-{relation_id}: {describe(rotation, detail)}")
            elif rotation.phase == REMOVING:
                logger.info("rotation of relation %s done: %s", relation_id, rotation.new)
                del remaining[relation_id]
            else:
                steps.append((relation_id, rotation, request))
        switched = False
        status: ops.StatusBase | None = None
        if steps:
            serving = self._serving_members(members)
            if not serving:
                self._write_rotations(relation, remaining)
                return ops.WaitingStatus("waiting for quorum"), notes, False
            endpoints, tls_ca = self._client_endpoints(relation, members)
            clients = self._clients(relation)
            try:
                session_hosts, session_ca = self._super_session(relation, serving)
                with zookeeper_ensemble.ZooKeeperEnsemble(
                    session_hosts, credentials.super_password, tls_ca=session_ca
                ) as zk:
                    for relation_id, rotation, request in steps:
                        if rotation.phase == ADDING:
                            passwords = self._rotation_passwords(relation_id)
                            assert passwords is not None  # checked above
                            changed = zk.mirror(
                                request.chroot, rotation.old, rotation.new, passwords[1]
                            )
                            logger.info("rotation: %s znode(s) granted to the new user", changed)
                            clients[rotation.new] = request.chroot
                            self._write_clients(relation, clients)
                            self.provider.publish(
                                dataclasses.replace(request, user=rotation.new),
                                endpoints=endpoints,
                                password=passwords[1],
                                tls=bool(tls_ca),
                                tls_ca=tls_ca,
                            )
                            remaining[relation_id] = dataclasses.replace(rotation, phase=SWITCHING)
                            switched = True
                        else:  # SWITCHING, every client on the new user
                            current = self._current_user(relation_id)
                            if current is not None and current[0] == rotation.new:
                                # znodes the old user's sessions created meanwhile
                                zk.mirror(request.chroot, rotation.old, rotation.new, current[1])
                            zk.revoke(request.chroot, rotation.old, recursive=True)
                            clients.pop(rotation.old, None)
                            self._write_clients(relation, clients)
                            remaining[relation_id] = dataclasses.replace(rotation, phase=REMOVING)
                            self._remove_rotation_secret(relation_id)
                        self._write_rotations(relation, remaining)
            except EnsembleError as exc:
                logger.warning("rotation step failed: %s", exc)
                self._retry_later()
                status = ops.WaitingStatus(f"waiting for the ensemble: {exc}")
        self._write_rotations(relation, remaining)
        return status, notes, switched

    # ---- what the units see ---------------------------------------------------------------

    def _client_users(self) -> dict[str, str]:
        """Return the JAAS Server section's client users: every related application's.

        Only invalid requests are left out. The user of a relation that has not asked yet
        exists with no ACL and an unpublished password, so its request needs no restart.
        """
        users: dict[str, str] = {}
        relation = self.model.get_relation(PEER)
        rotating = self._rotations(relation) if relation else {}
        for relation_id in self._client_relation_ids():
            current = self._current_user(relation_id)
            if current is not None:
                users[current[0]] = current[1]
            # both users of a rotation until every client left the old one
            users.update(self._rotation_users(relation_id, rotating))
        return users

    def _current_user(self, relation_id: int) -> tuple[str, str] | None:
        """Return the relation's current (username, password) from its secret, or None."""
        try:
            secret = self.model.get_secret(label=client_secret_label(relation_id))
            content = secret.get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None
        password = content.get("password")
        if not password:
            return None
        username = content.get("username") or client_username(relation_id)
        if not is_credential(password) or relation_id_of(username) != relation_id:
            # never rendered: the user is left out until its secret holds usable values
            logger.warning("client secret of relation %s: unusable credentials", relation_id)
            return None
        return username, password

    def _with_current_user(self, request: ClientRequest) -> ClientRequest:
        current = self._current_user(request.relation_id)
        if current is None or current[0] == request.username:
            return request
        return dataclasses.replace(request, user=current[0])

    def _client_relation_ids(self) -> list[int]:
        """Every client relation but those whose request is invalid."""
        invalid = {r.relation_id for r in self.provider.requests() if r.error is not None}
        return [r.id for r in self.provider.relations if r.id not in invalid]

    def _health(self, members: dict[int, str], notes: list[str]) -> ops.StatusBase:
        if self.server_id not in members:
            return ops.WaitingStatus("waiting to be added to the ensemble")
        # What this hook observed is current (a second probe of a frozen server would hold the
        # hook for its timeout); only an unobserved (not running) server is asked.
        serving = (
            self._observed == SERVING
            if self._observed is not None
            else zookeeper_ensemble.is_serving(self.address)
        )
        if not serving:
            return ops.WaitingStatus("waiting for quorum")
        relation = self.model.get_relation(PEER)
        chroots = sorted(set(self._clients(relation).values())) if relation else []
        message = f"{len(members)} members, quorum ok"
        if len(members) % 2 == 0:
            message += " (even count: no more fault tolerance than one fewer)"
        message += f"; clients: {', '.join(chroots) if chroots else 'none'}"
        if notes:
            message += "; " + "; ".join(notes)
        return ops.ActiveStatus(message)


def _quorum_on_tls(state: ZooKeeperPeerState, members: Mapping[int, str]) -> bool:
    """Whether the walk to quorum TLS is done: the stage is TLS and every member runs it."""
    peers = state.peers
    return state.quorum_tls_stage == TLS and all(
        sid in peers and peers[sid].quorum_tls == TLS for sid in members
    )


def _new_internal_content() -> dict[str, str]:
    return {"super-password": generate_password(), "quorum-password": generate_password()}
