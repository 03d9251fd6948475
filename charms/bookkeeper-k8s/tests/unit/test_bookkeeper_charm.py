"""State-transition tests of the bookkeeper-k8s reconcile (ops.testing)."""

from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ops
import pytest
from bookkeeper_config import BookKeeperConfig
from bookkeeper_render import (
    BookieInputs,
    bookie_env,
    bookie_id,
    metadata_service_uri,
    pebble_layer,
    render_bookkeeper_conf,
    render_jaas,
)
from bookkeeper_view import VIEW_CHECK, VIEW_LAYER_LABEL, VIEW_PATH, view_layer, watched_layer
from bookkeeper_workload import BookieWorkload
from charms.pulsar_k8s.v0.view_check import RETRY_PREFIX
from charms.pulsar_k8s.v0.workload import unit_fqdn
from ops import testing

MODEL = "pulsar"
APP = "bookkeeper-k8s"
ZK_ENDPOINTS = (
    "pulsar-zookeeper-k8s-0.pulsar-zookeeper-k8s-endpoints.pulsar.svc.cluster.local:2181"
)
WHATIS = ("/pulsar/bin/bookkeeper", "shell", "whatisinstanceid")
INITNEW = ("/pulsar/bin/bookkeeper", "shell", "initnewcluster")
NO_CLUSTER_OUTPUT = (
    "ERROR org.apache.bookkeeper.discover.ZKRegistrationManager - BookKeeper metadata doesn't "
    "exist in zookeeper. Has the cluster been initialized?\n"
    "Caused by: org.apache.zookeeper.KeeperException$NoNodeException: KeeperErrorCode = NoNode "
    "for BookKeeper metadata\n"
)
CONNECTION_LOSS_OUTPUT = (
    "Caused by: org.apache.zookeeper.KeeperException$ConnectionLossException: "
    "KeeperErrorCode = ConnectionLoss\n"
)
USERNAME, PASSWORD = "relation-7", "s3cret-pw"
ADDRESS = unit_fqdn(f"{APP}/0", APP, MODEL)


def unit_id(number: int) -> str:
    return bookie_id(unit_fqdn(f"{APP}/{number}", APP, MODEL))


@dataclass
class Calls:
    """Records the workload's mutating calls, so tests can assert that nothing was touched."""

    log: list[tuple[str, Any]] = field(default_factory=list)

    def names(self) -> list[str]:
        return [name for name, _ in self.log]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorded = Calls()
    for name in ("push", "add_layer", "start_bookie", "restart_bookie", "run"):
        original = getattr(BookieWorkload, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            recorded.log.append((_name, args))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(BookieWorkload, name, spy)
    return recorded


def zk_secret() -> testing.Secret:
    return testing.Secret(
        tracked_content={
            "username": USERNAME,
            "password": PASSWORD,
            "uris": f"{ZK_ENDPOINTS}/bookkeeper",
        }
    )


def zk_relation(secret: testing.Secret | None, **overrides: str) -> testing.Relation:
    data = {
        "database": "/pulsar",
        "endpoints": ZK_ENDPOINTS,
        "secret-user": secret.id if secret else "",
        "tls": "disabled",
    }
    data.update(overrides)
    return testing.Relation(
        "zookeeper", remote_app_name="pulsar-zookeeper-k8s", remote_app_data=data
    )


def peers(
    *,
    initialised: bool = True,
    others: tuple[int, ...] = (1, 2),
    app_data: dict[str, str] | None = None,
    reports: dict[int, str] | None = None,
) -> testing.PeerRelation:
    """The peer relation; ``reports``: unit number -> the state that bookie reported."""
    local_app_data = {"bookkeeper-initialised": "true"} if initialised else {}
    local_app_data.update(app_data or {})
    reported = reports or {}
    return testing.PeerRelation(
        "cluster",
        local_app_data=local_app_data,
        peers_data={n: {"bookie-state": reported[n]} if n in reported else {} for n in others},
    )


def desired(config: BookKeeperConfig | None = None) -> tuple[str, str, dict]:
    config = config or BookKeeperConfig()
    uri = metadata_service_uri([ZK_ENDPOINTS], "/pulsar")
    conf = render_bookkeeper_conf(BookieInputs(ADDRESS, uri, config))
    return (
        conf,
        render_jaas(USERNAME, PASSWORD),
        watched_layer(pebble_layer(ADDRESS, bookie_env(config)), ADDRESS),
    )


def container(
    storage: dict[str, testing.Mount],
    tmp_path: Path,
    *,
    running: bool = False,
    files_from: BookKeeperConfig | None = None,
    execs: tuple[testing.Exec, ...] = (),
) -> testing.Container:
    """Build the pulsar container; ``running``: a bookie started with ``files_from``'s files."""
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir(exist_ok=True)
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir(exist_ok=True)
    mounts = {
        **storage,
        "conf": testing.Mount(location="/pulsar/conf", source=conf_dir),
        # the view file lives here, and ops.testing wipes unmounted paths between runs
        "logs": testing.Mount(location="/pulsar/logs", source=logs_dir),
    }
    layers: dict[str, ops.pebble.Layer] = {}
    statuses: dict[str, ops.pebble.ServiceStatus] = {}
    if running:
        conf, jaas, layer = desired(files_from)
        (conf_dir / "bookkeeper.conf").write_text(conf)
        (conf_dir / "bookkeeper-jaas.conf").write_text(jaas)
        layers["bookkeeper"] = ops.pebble.Layer(layer)  # type: ignore[arg-type]
        layers["bookie-view"] = ops.pebble.Layer(view_layer(ADDRESS))  # type: ignore[arg-type]
        statuses["bookie"] = ops.pebble.ServiceStatus.ACTIVE
    return testing.Container(
        "pulsar",
        can_connect=True,
        mounts=mounts,
        layers=layers,
        service_statuses=statuses,
        execs=frozenset(execs),
    )


def state(
    cont: testing.Container,
    *,
    leader: bool = True,
    zk: bool = True,
    peer: testing.PeerRelation | None = None,
    config: dict[str, Any] | None = None,
    extra: tuple[testing.RelationBase, ...] = (),
    secret: testing.Secret | None = None,
    storages: tuple[testing.Storage, ...] = (),
) -> testing.State:
    secret = secret or zk_secret()
    relations: list[testing.RelationBase] = [peer or peers(), *extra]
    if zk:
        relations.append(zk_relation(secret))
    return testing.State(
        leader=leader,
        model=testing.Model(name=MODEL),
        containers={cont},
        relations=relations,
        secrets={secret},
        config=config or {},
        storages=set(storages),
    )


def executed(ctx: testing.Context) -> list[tuple[str, ...]]:
    return [tuple(args.command) for args in ctx.exec_history.get("pulsar", [])]


# --- waiting for ZooKeeper -----------------------------------------------------------------


def test_waits_for_zookeeper_relation(ctx, storage, tmp_path, calls):
    out = ctx.run(ctx.on.config_changed(), state(container(storage, tmp_path), zk=False))
    assert out.unit_status == ops.WaitingStatus("waiting for a zookeeper relation")
    assert calls.log == []
    assert out.opened_ports == {testing.TCPPort(3181), testing.TCPPort(8000)}


def test_leader_requests_chroot_and_waits_for_credentials(ctx, storage, tmp_path, calls):
    relation = zk_relation(None, endpoints="", **{"secret-user": ""})
    st = state(container(storage, tmp_path), zk=False, extra=(relation,))
    out = ctx.run(ctx.on.relation_created(relation), st)
    assert out.unit_status == ops.WaitingStatus("waiting for zookeeper credentials")
    sent = out.get_relation(relation.id).local_app_data
    assert sent["database"] == "/pulsar"
    assert json.loads(sent["requested-secrets"]) == [
        "username",
        "password",
        "tls",
        "tls-ca",
        "uris",
    ]
    assert calls.log == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"secret-user": "secret://deadbeef/nosuchsecret0000000"},  # secret not granted
        {"database": "/other"},  # another chroot than asked for
        {"endpoints": "not a host,also bad"},  # malformed endpoints
        {"endpoints": "zk:2181\nmetadataServiceUri=evil"},
    ],
)
def test_bad_relation_data_waits_without_raising(ctx, storage, tmp_path, calls, overrides):
    secret = zk_secret()
    relation = zk_relation(secret, **overrides)
    st = state(container(storage, tmp_path), zk=False, extra=(relation,), secret=secret)
    out = ctx.run(ctx.on.relation_changed(relation), st)
    assert isinstance(out.unit_status, ops.WaitingStatus)
    assert "zookeeper" in out.unit_status.message
    assert calls.log == []


def test_secret_with_control_characters_waits(ctx, storage, tmp_path, calls):
    secret = testing.Secret(tracked_content={"username": "u", "password": "bad\npassword"})
    out = ctx.run(ctx.on.config_changed(), state(container(storage, tmp_path), secret=secret))
    assert out.unit_status.name == "waiting"
    assert "zookeeper relation: password" in out.unit_status.message
    assert "bad" not in out.unit_status.message  # the value itself is never shown
    assert calls.log == []


# --- bad config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"heap-mb": 16}, "heap-mb"),
        ({"write-cache-mb": 400, "read-ahead-cache-mb": 200}, "direct-memory-mb"),
        ({"log-level": "chatty"}, "log-level"),
        ({"minor-compaction-threshold": 1.5}, "minor-compaction-threshold"),
        ({"major-compaction-interval-s": 60}, "major-compaction-interval-s"),
    ],
)
def test_bad_config_blocks_naming_option_and_touches_nothing(
    ctx, storage, tmp_path, calls, config, option
):
    cont = container(storage, tmp_path, running=True)
    out = ctx.run(ctx.on.config_changed(), state(cont, config=config))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"{option}: ")
    assert calls.log == []
    assert executed(ctx) == []


# --- one-off metadata initialisation -------------------------------------------------------


def test_init_existing_cluster_only_records_flag(ctx, storage, tmp_path, calls):
    """initnewcluster refuses existing metadata; the probe then shows it exists: recorded."""
    execs = (
        testing.Exec(INITNEW, return_code=1, stdout="Ledger root path: /ledgers already exists"),
        testing.Exec(WHATIS, stdout="InstanceId: a098b02f"),
    )
    cont = container(storage, tmp_path, execs=execs)
    out = ctx.run(ctx.on.config_changed(), state(cont, peer=peers(initialised=False)))
    assert executed(ctx) == [INITNEW, WHATIS]
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert peer.local_app_data["bookkeeper-initialised"] == "true"
    args = ctx.exec_history["pulsar"][0]
    assert args.environment["BOOKIE_MEM"] == "-Xmx128m -XX:TieredStopAtLevel=1"
    assert (
        "-Djava.security.auth.login.config=/pulsar/conf/bookkeeper-jaas.conf"
        in (args.environment["BOOKIE_EXTRA_OPTS"])
    )
    assert (args.user_id, args.group_id) == (10000, 0)
    assert args.timeout
    assert "start_bookie" in calls.names()  # bookies start once the flag is set


def test_init_without_cluster_runs_initnewcluster_alone(ctx, storage, tmp_path):
    """A cold deploy: one tool JVM on the critical path, no probe."""
    execs = (
        testing.Exec(WHATIS, return_code=255, stdout=NO_CLUSTER_OUTPUT),
        testing.Exec(INITNEW, return_code=0),
    )
    cont = container(storage, tmp_path, execs=execs)
    out = ctx.run(ctx.on.config_changed(), state(cont, peer=peers(initialised=False)))
    assert executed(ctx) == [INITNEW]
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert peer.local_app_data["bookkeeper-initialised"] == "true"
    assert all("metaformat" not in " ".join(cmd) for cmd in executed(ctx))


@pytest.mark.parametrize(
    "execs",
    [
        (
            testing.Exec(INITNEW, return_code=255, stdout=CONNECTION_LOSS_OUTPUT),
            testing.Exec(WHATIS, return_code=255, stdout=CONNECTION_LOSS_OUTPUT),
        ),
        (
            testing.Exec(INITNEW, return_code=255, stdout="KeeperErrorCode = NoNode"),
            testing.Exec(WHATIS, return_code=255, stdout=NO_CLUSTER_OUTPUT),
        ),
    ],
)
def test_init_failure_waits_and_starts_nothing(ctx, storage, tmp_path, calls, execs):
    cont = container(storage, tmp_path, execs=execs)
    out = ctx.run(ctx.on.config_changed(), state(cont, peer=peers(initialised=False)))
    assert out.unit_status.name == "waiting"
    assert "metadata" in out.unit_status.message
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert "bookkeeper-initialised" not in peer.local_app_data
    assert not {"start_bookie", "restart_bookie"} & set(calls.names())
    # The retry's wake-up: only the view layer is added, and its record fails the check soon.
    assert [args[0] for name, args in calls.log if name == "add_layer"] == [VIEW_LAYER_LABEL]
    assert set(out.get_container("pulsar").plan.services) == set()
    assert VIEW_CHECK in out.get_container("pulsar").plan.checks
    record = (tmp_path / "logs" / VIEW_PATH.removeprefix("/pulsar/logs/")).read_text()
    assert record.startswith(RETRY_PREFIX)
    assert executed(ctx) == [INITNEW, WHATIS]
    bk = testing.Relation("bookkeeper")
    out = ctx.run(ctx.on.update_status(), state(cont, peer=peers(initialised=False), extra=(bk,)))
    assert out.get_relation(bk.id).local_app_data.get("metadata-service-uri", "") == ""


def test_new_leader_with_flag_runs_no_exec(ctx, storage, tmp_path, calls):
    out = ctx.run(ctx.on.leader_elected(), state(container(storage, tmp_path)))
    assert executed(ctx) == []
    assert "start_bookie" in calls.names()
    command = shlex.split(out.get_container("pulsar").plan.services["bookie"].command)
    # the bookie, started behind its watcher (which wakes the charm once it is writable)
    assert command[:2] == ["/bin/bash", "-c"]
    assert command[2].endswith("& exec /pulsar/bin/pulsar bookie")
    assert "/charm/bin/pebble notify charmhub.io/bookkeeper-k8s/view" in command[2]


def test_non_leader_waits_for_flag(ctx, storage, tmp_path, calls):
    st = state(container(storage, tmp_path), leader=False, peer=peers(initialised=False))
    out = ctx.run(ctx.on.config_changed(), st)
    assert out.unit_status == ops.WaitingStatus(
        "waiting for the leader to initialise bookkeeper metadata"
    )
    assert executed(ctx) == []
    assert "start_bookie" not in calls.names()


def test_storage_chowned_only_when_not_owned(ctx, storage, tmp_path, calls, not_owned):
    not_owned.add("/pulsar/data/bookkeeper/ledgers")
    cont = container(storage, tmp_path, execs=(testing.Exec(("chown",)),))
    ledgers = testing.Storage("ledgers")
    ctx.run(ctx.on.storage_attached(ledgers), state(cont, storages=(ledgers,)))
    (args,) = ctx.exec_history["pulsar"]
    assert args.command == ["chown", "-R", "10000:0", "/pulsar/data/bookkeeper/ledgers"]
    assert args.user_id == 0


# --- starting, files, layer ----------------------------------------------------------------


def test_first_start_pushes_files_and_layer(ctx, storage, tmp_path):
    cont = container(storage, tmp_path)
    out = ctx.run(ctx.on.pebble_ready(cont), state(cont))
    conf, jaas, _ = desired()
    root = tmp_path / "conf"
    assert (root / "bookkeeper.conf").read_text() == conf
    assert (root / "bookkeeper-jaas.conf").read_text() == jaas
    assert oct((root / "bookkeeper-jaas.conf").stat().st_mode & 0o777) == oct(0o600)
    plan = out.get_container("pulsar").plan
    assert plan.services["bookie"].environment["BOOKIE_MEM"].startswith("-Xms512m -Xmx512m")
    alive = plan.checks["bookie-alive"]
    assert alive.exec is not None and f"/dev/tcp/{ADDRESS}/8000" in alive.exec["command"]
    assert plan.services["bookie"].kill_delay == "30s"


def test_unchanged_reconcile_touches_nothing(ctx, storage, tmp_path, calls):
    cont = container(storage, tmp_path, running=True)
    bk = testing.Relation("bookkeeper")
    peer = peers(reports={1: "writable", 2: "writable"})
    out = ctx.run(ctx.on.update_status(), state(cont, peer=peer, extra=(bk,)))
    assert out.unit_status == ops.ActiveStatus("bookie writable (3/3 writable)")
    # a second, identical reconcile on the output state
    calls.log.clear()
    ctx.exec_history.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert calls.log == []
    assert executed(ctx) == []
    assert again.get_relation(bk.id).local_app_data == out.get_relation(bk.id).local_app_data


# --- provider data ------------------------------------------------------------------------


def test_publishes_bookies_and_what_each_bookie_reports(ctx, storage, tmp_path):
    bk = testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")
    peer = peers(reports={1: "read-only", 2: "writable"})
    out = ctx.run(
        ctx.on.update_status(),
        state(container(storage, tmp_path, running=True), peer=peer, extra=(bk,)),
    )
    data = out.get_relation(bk.id).local_app_data
    assert data["metadata-service-uri"] == (f"zk+hierarchical://{ZK_ENDPOINTS}/pulsar/ledgers")
    assert json.loads(data["bookies"]) == [unit_id(0), unit_id(1), unit_id(2)]
    assert json.loads(data["ready-bookies"]) == [unit_id(0), unit_id(2)]
    unit_data = out.get_relation(bk.id).local_unit_data
    assert (unit_data["bookie-id"], unit_data["bookie-state"]) == (unit_id(0), "writable")
    assert out.get_relation(peer.id).local_unit_data["bookie-state"] == "writable"
    assert out.unit_status == ops.ActiveStatus("bookie writable (2/3 writable)")


def test_leader_whose_bookie_is_frozen_still_publishes_the_others(
    ctx, storage, tmp_path, fake_http
):
    """The leader's own trouble is not the application's truth."""
    fake_http.writable = None  # the leader's bookie does not answer
    bk = testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")
    peer = peers(reports={1: "writable", 2: "writable"})
    out = ctx.run(
        ctx.on.update_status(),
        state(container(storage, tmp_path, running=True), peer=peer, extra=(bk,)),
    )
    assert out.unit_status == ops.WaitingStatus("bookie not answering on its HTTP API yet")
    data = out.get_relation(bk.id).local_app_data
    assert json.loads(data["ready-bookies"]) == [unit_id(1), unit_id(2)]
    assert out.get_relation(bk.id).local_unit_data["bookie-state"] == "down"


def test_read_only_own_bookie_waits_and_says_so(ctx, storage, tmp_path, fake_http):
    fake_http.own = "read-only"
    peer = peers(reports={1: "writable"})
    out = ctx.run(
        ctx.on.update_status(), state(container(storage, tmp_path, running=True), peer=peer)
    )
    assert out.unit_status == ops.WaitingStatus("bookie read-only (1/3 writable)")


def test_non_leader_reports_only_its_own_bookie(ctx, storage, tmp_path):
    bk = testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")
    st = state(container(storage, tmp_path, running=True), leader=False, extra=(bk,))
    out = ctx.run(ctx.on.update_status(), st)
    assert out.get_relation(bk.id).local_app_data == {}
    assert out.get_relation(bk.id).local_unit_data["bookie-state"] == "writable"


# --- waking up: the view check ----------------------------------------------------------------


def test_layer_carries_a_threshold_one_view_check_without_level(ctx, storage, tmp_path):
    out = ctx.run(ctx.on.pebble_ready(cont := container(storage, tmp_path)), state(cont))
    check = out.get_container("pulsar").plan.checks[VIEW_CHECK]
    assert check.threshold == 1
    assert not check.level or check.level == ops.pebble.CheckLevel.UNSET
    assert VIEW_PATH in check.exec["command"]  # type: ignore[index]


def test_check_failed_records_and_publishes_the_new_state(ctx, storage, tmp_path, fake_http):
    """The view check fails when the bookie becomes writable: that event publishes it."""
    bk = testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")
    cont = container(storage, tmp_path, running=True)
    fake_http.own = "starting"
    out = ctx.run(ctx.on.update_status(), state(cont, leader=False, extra=(bk,)))
    assert out.get_relation(bk.id).local_unit_data["bookie-state"] == "down"
    fake_http.own = "writable"
    cont_out = out.get_container("pulsar")
    check = testing.CheckInfo(
        VIEW_CHECK, status=ops.pebble.CheckStatus.DOWN, failures=1, threshold=1
    )
    cont_failed = testing.Container(
        cont_out.name,
        can_connect=True,
        mounts=cont_out.mounts,
        layers=cont_out.layers,
        service_statuses=cont_out.service_statuses,
        check_infos={check},
    )
    failed_state = dataclasses.replace(out, containers={cont_failed})
    after = ctx.run(ctx.on.pebble_check_failed(cont_failed, check), failed_state)
    assert after.get_relation(bk.id).local_unit_data["bookie-state"] == "writable"
    assert after.unit_status.name == "active"
    assert (tmp_path / "logs/charm-view/bookie-state").read_text().split()[0] == "writable"


# --- rolling restart ------------------------------------------------------------------------


def test_changed_config_waits_for_lock(ctx, storage, tmp_path, calls):
    peer = peers(app_data={"restart-granted": f"{APP}/1"})
    cont = container(storage, tmp_path, running=True)
    st = state(cont, leader=False, peer=peer, config={"heap-mb": 1024})
    out = ctx.run(ctx.on.config_changed(), st)
    assert out.unit_status == ops.WaitingStatus(
        "waiting for the rolling-restart lock to apply changes"
    )
    assert out.get_relation(peer.id).local_unit_data["restart-request"]
    assert calls.log == []  # the running bookie's files are left alone


def test_changed_config_restarts_without_waiting_and_keeps_the_lock(ctx, storage, tmp_path, calls):
    peer = peers(app_data={"restart-granted": f"{APP}/0"})
    peer = testing.PeerRelation(
        "cluster",
        local_app_data=dict(peer.local_app_data),
        local_unit_data={"restart-request": "previous-token"},
        peers_data={1: {}, 2: {}},
    )
    cont = container(storage, tmp_path, running=True)
    st = state(cont, leader=False, peer=peer, config={"heap-mb": 1024})
    out = ctx.run(ctx.on.relation_changed(peer), st)
    assert "restart_bookie" in calls.names()
    env = out.get_container("pulsar").plan.services["bookie"].environment
    assert env["BOOKIE_MEM"].startswith("-Xms1024m -Xmx1024m")
    # The hook returns at once; the lock is held until the view check reports the bookie back.
    assert out.get_relation(peer.id).local_unit_data["restart-request"]
    assert out.unit_status == ops.WaitingStatus("bookie restarted; waiting for it to answer")
    again = ctx.run(ctx.on.update_status(), out)
    assert again.get_relation(peer.id).local_unit_data.get("restart-request", "") == ""
    assert again.unit_status == ops.ActiveStatus("bookie writable (1/3 writable)")


def test_restart_keeps_lock_while_down(ctx, storage, tmp_path, calls, fake_http):
    fake_http.own = "starting"
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"bookkeeper-initialised": "true", "restart-granted": f"{APP}/0"},
        local_unit_data={"restart-request": "t"},
        peers_data={1: {}},
    )
    cont = container(storage, tmp_path, running=True)
    st = state(cont, leader=False, peer=peer, config={"log-level": "debug"})
    out = ctx.run(ctx.on.config_changed(), st)
    assert "restart_bookie" in calls.names()
    assert out.get_relation(peer.id).local_unit_data["restart-request"]
    assert out.unit_status == ops.WaitingStatus("bookie restarted; waiting for it to answer")
    held = ctx.run(ctx.on.update_status(), out)
    assert held.get_relation(peer.id).local_unit_data["restart-request"]


def test_leader_grants_lock_to_lowest_requester(ctx, storage, tmp_path):
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"bookkeeper-initialised": "true"},
        peers_data={1: {}, 2: {"restart-request": "abc"}},
    )
    out = ctx.run(
        ctx.on.relation_changed(peer, remote_unit=2),
        state(container(storage, tmp_path, running=True), peer=peer),
    )
    assert out.get_relation(peer.id).local_app_data["restart-granted"] == f"{APP}/2"


def test_unchanged_running_bookie_is_not_restarted_even_if_granted(ctx, storage, tmp_path, calls):
    peer = peers(app_data={"restart-granted": f"{APP}/0"})
    st = state(container(storage, tmp_path, running=True), leader=False, peer=peer)
    ctx.run(ctx.on.update_status(), st)
    assert "restart" not in calls.names()


def test_pebble_not_reachable_waits(ctx, storage, tmp_path, calls):
    cont = testing.Container("pulsar", can_connect=False)
    out = ctx.run(ctx.on.update_status(), state(cont))
    assert out.unit_status == ops.WaitingStatus("waiting for the pulsar container (Pebble)")
    assert calls.log == []


def test_view_check_failed_refreshes_an_unchanged_record(ctx, storage, tmp_path, calls):
    """The state moved and came back before the hook ran: the record is refreshed anyway, so
    the check passes once and the next difference raises a new event (no check stuck down)."""
    cont = container(storage, tmp_path, running=True)
    view = tmp_path / "logs/charm-view/bookie-state"
    view.parent.mkdir(parents=True, exist_ok=True)
    view.write_text("writable 1000")
    check = testing.CheckInfo(
        VIEW_CHECK, status=ops.pebble.CheckStatus.DOWN, failures=3, threshold=1
    )
    cont = dataclasses.replace(cont, check_infos={check})
    ctx.run(ctx.on.pebble_check_failed(cont, check), state(cont))
    seen, stamp = view.read_text().split()
    assert seen == "writable" and int(stamp) > 1000
    # any other event with the same state writes nothing
    calls.log.clear()
    ctx.run(ctx.on.update_status(), state(container(storage, tmp_path, running=True)))
    assert ("push", (VIEW_PATH,)) not in [(n, a[:1]) for n, a in calls.log]


# --- the peer state ------------------------------------------------------------------------


def test_corrupt_peer_flag_waits_naming_cluster_and_field(ctx, storage, tmp_path, calls):
    peer = peers(initialised=False, app_data={"bookkeeper-initialised": "yes"})
    out = ctx.run(ctx.on.config_changed(), state(container(storage, tmp_path), peer=peer))
    assert out.unit_status == ops.WaitingStatus(
        'cluster relation: bookkeeper-initialised is not "true"; waiting for valid data'
    )
    assert executed(ctx) == []


# --- the ZooKeeper user the running bookie logged in with ----------------------------------


def zk_report(out: testing.State) -> str | None:
    (relation,) = [r for r in out.relations if r.endpoint == "zookeeper"]
    return relation.local_unit_data.get("zookeeper-username")


def test_a_serving_bookie_reports_its_zookeeper_user(ctx, storage, tmp_path, calls):
    cont = container(storage, tmp_path, running=True)
    out = ctx.run(ctx.on.update_status(), state(cont, peer=peers(reports={1: "writable"})))
    assert zk_report(out) == USERNAME


def test_the_report_changes_only_once_the_bookie_answers_with_the_new_user(
    ctx, storage, tmp_path, calls, fake_http
):
    # the bookie runs with the files of relation-7; the secret now names relation-7-r1
    rotated = testing.Secret(
        tracked_content={
            "username": f"{USERNAME}-r1",
            "password": "n3w-pw",
            "uris": f"{ZK_ENDPOINTS}/bookkeeper",
        }
    )
    cont = container(storage, tmp_path, running=True)
    peer = peers(app_data={"restart-granted": f"{APP}/1"})
    st = state(cont, leader=False, peer=peer, secret=rotated)
    zk = next(r for r in st.relations if r.endpoint == "zookeeper")
    zk = dataclasses.replace(zk, local_unit_data={"zookeeper-username": USERNAME})
    st = dataclasses.replace(st, relations={*(r for r in st.relations if r.id != zk.id), zk})

    # waiting for the restart lock: still the old user
    out = ctx.run(ctx.on.secret_changed(rotated), st)
    assert out.unit_status.message == "waiting for the rolling-restart lock to apply changes"
    assert zk_report(out) == USERNAME

    # granted: restarted, not answering yet: still the old user
    fake_http.own = "starting"  # running: false, reads as down
    peer_out = out.get_relation(peer.id)
    assert isinstance(peer_out, testing.PeerRelation)
    granted = dataclasses.replace(
        peer_out, local_app_data={**peer_out.local_app_data, "restart-granted": f"{APP}/0"}
    )
    out = dataclasses.replace(
        out, relations={*(r for r in out.relations if r.id != peer.id), granted}
    )
    out = ctx.run(ctx.on.relation_changed(granted), out)
    assert "restart_bookie" in calls.names()
    assert zk_report(out) == USERNAME

    # the bookie answers: it logged in with the new user
    fake_http.own = "writable"
    out = ctx.run(ctx.on.update_status(), out)
    assert zk_report(out) == f"{USERNAME}-r1"
