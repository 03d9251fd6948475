"""State-transition tests of the pulsar-k8s reconcile (ops.testing)."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any, cast

import ops
import pulsar_tokens
import pytest
from charms.pulsar_k8s.v0.workload import unit_fqdn
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import GRANTED_KEY, REQUEST_KEY
from ops import pebble, testing
from pulsar_charm import (
    INTERNAL_SECRET_ID_KEY,
    INTERNAL_SECRET_LABEL,
    METADATA_CLUSTER_NAME_KEY,
    METADATA_INITIALISED_KEY,
)
from pulsar_config import PulsarConfig
from pulsar_render import (
    BROKER_CONF_PATH,
    JAAS_CONF_PATH,
    LAYER_NAME,
    SERVICE_NAME,
    STATUS_FILE_PATH,
    AuthMaterial,
    BrokerInputs,
    broker_files,
    pebble_layer,
)
from pulsar_view import (
    SERVING_CHECK,
    SERVING_PATH,
    VIEW_CHECK,
    VIEW_PATH,
    view_layer,
    watched_layer,
)
from pulsar_workload import PulsarWorkload

MODEL = "pulsar"
APP = "pulsar-k8s"
UNIT_ADDRESS = unit_fqdn(f"{APP}/0", APP, MODEL)
ZK_HOSTS = (
    "pulsar-zookeeper-k8s-0.pulsar-zookeeper-k8s-endpoints.pulsar.svc.cluster.local:2181,"
    "pulsar-zookeeper-k8s-1.pulsar-zookeeper-k8s-endpoints.pulsar.svc.cluster.local:2181"
)
BK_URI = "zk+hierarchical://pulsar-zookeeper-k8s-0:2181;pulsar-zookeeper-k8s-1:2181/pulsar/ledgers"
USERNAME, PASSWORD = "relation-3", "s3cret-pw"
INIT_ARGV = ("/pulsar/bin/pulsar", "initialize-cluster-metadata")
SIGNING_KEY = "c2lnbmluZy1rZXktZm9yLXRoZS11bml0LXRlc3RzLTAxMjM0NTY3"
AUTH = AuthMaterial(
    SIGNING_KEY,
    pulsar_tokens.mint_token(SIGNING_KEY, "admin"),
    pulsar_tokens.mint_token(SIGNING_KEY, "pulsar-broker"),
)
INTERNAL = testing.Secret(
    tracked_content={
        "signing-key": AUTH.signing_key,
        "admin-token": AUTH.admin_token,
        "broker-token": AUTH.broker_token,
    },
    owner="app",
    label=INTERNAL_SECRET_LABEL,
)


def bookie(n: int) -> str:
    return f"bookkeeper-k8s-{n}.bookkeeper-k8s-endpoints.pulsar.svc.cluster.local:3181"


def zk_secret() -> testing.Secret:
    return testing.Secret(
        tracked_content={"username": USERNAME, "password": PASSWORD, "uris": f"{ZK_HOSTS}/pulsar"}
    )


def zk_relation(secret: testing.Secret | None, **overrides: str) -> testing.Relation:
    data = {"database": "/pulsar", "endpoints": ZK_HOSTS, "tls": "disabled"}
    if secret is not None:
        data["secret-user"] = secret.id
    data.update(overrides)
    return testing.Relation(
        "zookeeper", remote_app_name="pulsar-zookeeper-k8s", remote_app_data=data
    )


def bk_relation(total: int = 2, ready: int | None = None) -> testing.Relation:
    ready = total if ready is None else ready
    return testing.Relation(
        "bookkeeper",
        remote_app_name="bookkeeper-k8s",
        remote_app_data={
            "metadata-service-uri": BK_URI,
            "bookies": json.dumps([bookie(n) for n in range(total)]),
            "ready-bookies": json.dumps([bookie(n) for n in range(ready)]),
        },
    )


def peers(
    initialised: str | None = "pulsar",
    *,
    app_data: dict[str, str] | None = None,
    unit_data: dict[str, str] | None = None,
    peer_units: dict[int, dict[str, str]] | None = None,
) -> testing.PeerRelation:
    data = {INTERNAL_SECRET_ID_KEY: INTERNAL.id, **(app_data or {})}
    if initialised is not None:
        data.update({METADATA_INITIALISED_KEY: "true", METADATA_CLUSTER_NAME_KEY: initialised})
    return testing.PeerRelation(
        "cluster",
        local_app_data=data,
        local_unit_data=unit_data or {},
        peers_data=peer_units or {},
    )


def expected_files(config: PulsarConfig | None = None) -> dict[str, str | bytes]:
    inputs = BrokerInputs(config or PulsarConfig(), UNIT_ADDRESS, ZK_HOSTS, BK_URI)
    return broker_files(inputs, USERNAME, PASSWORD, AUTH)


def container(
    root: Path,
    *,
    running: bool = False,
    files: dict[str, str | bytes] | None = None,
    init_rc: int = 0,
    can_connect: bool = True,
    view_state: str = "ready",
) -> testing.Container:
    """The pulsar container, its whole /pulsar tree backed by ``root``."""
    for path, content in (files or {}).items():
        target = root / Path(path).relative_to("/pulsar")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    layers = {}
    statuses = {}
    if running:
        # a running broker, converged: its layer with the view check, its view recorded
        layer = watched_layer(pebble_layer(PulsarConfig(), UNIT_ADDRESS), UNIT_ADDRESS)
        layer["checks"].update(view_layer(UNIT_ADDRESS)["checks"])
        layers = {LAYER_NAME: pebble.Layer(cast("pebble.LayerDict", layer))}
        statuses = {SERVICE_NAME: pebble.ServiceStatus.ACTIVE}
        view = root / Path(VIEW_PATH).relative_to("/pulsar")
        view.parent.mkdir(parents=True, exist_ok=True)
        view.write_text(view_state)
        # and its serving gate open (the ensemble was writable)
        (root / Path(SERVING_PATH).relative_to("/pulsar")).write_text("1\n")
    return testing.Container(
        "pulsar",
        can_connect=can_connect,
        mounts={"pulsar": testing.Mount(location="/pulsar", source=root)},
        layers=layers,
        service_statuses=statuses,
        execs={
            testing.Exec(list(INIT_ARGV), return_code=init_rc, stdout="done"),
            # the tmp dirs backing storage are not owned by uid 10000: the charm chowns
            testing.Exec(["chown", "-R", "10000:0", "/pulsar/data"]),
        },
    )


def state(
    root: Path,
    *,
    leader: bool = True,
    config: dict[str, Any] | None = None,
    relations: list[Any] | None = None,
    secrets: list[testing.Secret] | None = None,
    **container_kwargs: Any,
) -> testing.State:
    return testing.State(
        leader=leader,
        model=testing.Model(name=MODEL),
        config=config or {},
        relations=relations or [],
        secrets=[*(secrets or []), INTERNAL],
        containers={container(root, **container_kwargs)},
    )


SECRET = zk_secret()


def full_state(root: Path, **kwargs: Any) -> testing.State:
    """Every dependency present (ZooKeeper credentials in SECRET); metadata exists by default."""
    relations = kwargs.pop("relations", None) or [zk_relation(SECRET), bk_relation(), peers()]
    return state(root, relations=relations, secrets=[SECRET], **kwargs)


def init_execs(ctx: testing.Context) -> list[list[str]]:
    history = ctx.exec_history.get("pulsar", [])
    return [list(e.command) for e in history if tuple(e.command[:2]) == INIT_ARGV]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


# -- waiting for each dependency ------------------------------------------------------------


def test_waits_for_the_container(ctx, root):
    out = ctx.run(ctx.on.update_status(), full_state(root, can_connect=False))
    assert out.unit_status == ops.WaitingStatus("waiting for the pulsar container (Pebble)")


def test_opens_the_broker_and_web_ports_on_the_service(ctx, root):
    # The cluster's service URLs name the application's Service: it must forward 6650 and 8080.
    out = ctx.run(ctx.on.update_status(), full_state(root, can_connect=False))
    assert out.opened_ports == {testing.TCPPort(6650), testing.TCPPort(8080)}


def test_waits_for_a_zookeeper_relation(ctx, root):
    out = ctx.run(ctx.on.update_status(), state(root, relations=[bk_relation(), peers()]))
    assert out.unit_status == ops.WaitingStatus("waiting for a zookeeper relation")


def test_requests_the_pulsar_chroot_and_waits_for_credentials(ctx, root):
    # bookies of a revision that shares no ZooKeeper identity: the brokers ask for the tree
    relation = testing.Relation("zookeeper", remote_app_name="pulsar-zookeeper-k8s")
    relations = [relation, bk_relation(), peers()]
    out = ctx.run(ctx.on.relation_joined(relation), state(root, relations=relations))
    assert out.unit_status == ops.WaitingStatus("waiting for zookeeper credentials for /pulsar")
    sent = out.get_relation(relation.id).local_app_data
    assert sent["database"] == "/pulsar"
    assert json.loads(sent["requested-secrets"]) == [
        "username",
        "password",
        "tls",
        "tls-ca",
        "uris",
    ]


def test_missing_secret_reads_as_waiting_not_an_error(ctx, root):
    relation = zk_relation(None, **{"secret-user": "secret:doesnotexist0000000000"})
    out = ctx.run(ctx.on.update_status(), state(root, relations=[relation, bk_relation()]))
    assert out.unit_status == ops.WaitingStatus("waiting for zookeeper credentials for /pulsar")


def test_waits_for_a_bookkeeper_relation(ctx, root):
    secret = SECRET
    out = ctx.run(
        ctx.on.update_status(),
        state(root, relations=[zk_relation(secret), peers()], secrets=[secret]),
    )
    assert out.unit_status == ops.WaitingStatus("waiting for a bookkeeper relation")


def test_malformed_bookkeeper_data_reads_as_waiting(ctx, root):
    secret = SECRET
    broken = testing.Relation(
        "bookkeeper",
        remote_app_data={"metadata-service-uri": BK_URI, "bookies": "{not json"},
    )
    out = ctx.run(
        ctx.on.relation_changed(broken),
        state(root, relations=[zk_relation(secret), broken, peers()], secrets=[secret]),
    )
    assert out.unit_status == ops.WaitingStatus(
        "waiting for bookkeeper to publish its metadata service"
    )


def test_non_leader_waits_for_the_leader_to_initialise(ctx, root, calls):
    secret = SECRET
    relations = [zk_relation(secret), bk_relation(), peers(initialised=None)]
    out = ctx.run(ctx.on.update_status(), full_state(root, leader=False, relations=relations))
    assert out.unit_status == ops.WaitingStatus(
        "waiting for the leader to initialise the cluster metadata"
    )
    assert init_execs(ctx) == []
    assert calls.names() == []


# -- cluster metadata -----------------------------------------------------------------------


def test_leader_initialises_the_metadata_once_then_starts(ctx, root, calls):
    secret = SECRET
    peer = peers(initialised=None)
    out = ctx.run(
        ctx.on.config_changed(),
        full_state(root, relations=[zk_relation(secret), bk_relation(), peer]),
    )
    store = f"zk:{ZK_HOSTS}/pulsar"
    assert init_execs(ctx) == [
        [
            "/pulsar/bin/pulsar",
            "initialize-cluster-metadata",
            "--cluster",
            "pulsar",
            "--metadata-store",
            store,
            "--configuration-metadata-store",
            store,
            "--web-service-url",
            "http://pulsar-k8s.pulsar.svc.cluster.local:8080",
            "--broker-service-url",
            "pulsar://pulsar-k8s.pulsar.svc.cluster.local:6650",
            "--existing-bk-metadata-service-uri",
            BK_URI,
            "--initial-num-stream-storage-containers",
            "0",
        ]
    ]
    exec_env = next(
        e.environment for e in ctx.exec_history["pulsar"] if tuple(e.command[:2]) == INIT_ARGV
    )
    assert exec_env["PULSAR_MEM"] == "-Xmx128m -XX:TieredStopAtLevel=1"
    assert f"-Djava.security.auth.login.config={JAAS_CONF_PATH}" in exec_env["PULSAR_EXTRA_OPTS"]
    app_data = out.get_relation(peer.id).local_app_data
    assert app_data[METADATA_INITIALISED_KEY] == "true"
    assert app_data[METADATA_CLUSTER_NAME_KEY] == "pulsar"
    assert out.get_container("pulsar").service_statuses[SERVICE_NAME] == (
        pebble.ServiceStatus.ACTIVE
    )
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")

    # The next event (even a leader change) finds the flag and execs nothing.
    ctx.exec_history.clear()
    ctx.run(ctx.on.leader_elected(), out)
    assert init_execs(ctx) == []


def test_new_leader_with_the_flag_never_reinitialises(ctx, root):
    out = ctx.run(ctx.on.leader_elected(), full_state(root))
    assert init_execs(ctx) == []
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


def test_failed_initialisation_waits_records_nothing_and_starts_nothing(ctx, root):
    secret = SECRET
    peer = peers(initialised=None)
    out = ctx.run(
        ctx.on.config_changed(),
        full_state(root, relations=[zk_relation(secret), bk_relation(), peer], init_rc=1),
    )
    assert out.unit_status == ops.WaitingStatus("cluster metadata initialisation failed; retrying")
    assert METADATA_INITIALISED_KEY not in out.get_relation(peer.id).local_app_data
    assert SERVICE_NAME not in out.get_container("pulsar").service_statuses


def test_cluster_name_change_after_initialisation_blocks_and_touches_nothing(ctx, root, calls):
    out = ctx.run(ctx.on.config_changed(), full_state(root, config={"cluster-name": "other"}))
    assert out.unit_status == ops.BlockedStatus(
        "cluster-name: fixed to 'pulsar' since the cluster metadata exists; "
        "set it back to 'pulsar'"
    )
    assert calls.names() == []
    assert not (root / "conf" / "broker.conf").exists()


# -- quorum versus bookies ------------------------------------------------------------------


def test_ensemble_larger_than_the_bookkeeper_cluster_blocks(ctx, root, calls):
    secret = SECRET
    relations = [zk_relation(secret), bk_relation(total=2), peers()]
    config = {
        "managed-ledger-ensemble-size": 3,
        "managed-ledger-write-quorum": 2,
        "managed-ledger-ack-quorum": 2,
    }
    out = ctx.run(ctx.on.config_changed(), full_state(root, config=config, relations=relations))
    assert out.unit_status == ops.BlockedStatus(
        "managed-ledger-ensemble-size=3 needs 3 bookies; bookkeeper has 2"
    )
    assert "start_broker" not in calls.names()
    # The bookies learn the ensemble size (they refuse a removal below it), even while blocked.
    assert out.get_relation(relations[1].id).local_app_data["ensemble-size"] == "3"


def test_only_the_leader_publishes_the_ensemble_size(ctx, root):
    relations = [zk_relation(SECRET), bk_relation(total=2), peers()]
    out = ctx.run(ctx.on.config_changed(), full_state(root, relations=relations, leader=False))
    assert "ensemble-size" not in out.get_relation(relations[1].id).local_app_data


def test_too_few_writable_bookies_waits_with_numbers(ctx, root, calls):
    secret = SECRET
    relations = [zk_relation(secret), bk_relation(total=3, ready=2), peers()]
    config = {"managed-ledger-ensemble-size": 3}
    out = ctx.run(ctx.on.config_changed(), full_state(root, config=config, relations=relations))
    assert out.unit_status == ops.WaitingStatus("2/3 bookies writable, ensemble needs 3")
    # The JVM starts while the bookies come up; its readiness gate stays shut.
    assert "start_broker" in calls.names()
    assert SERVING_PATH not in _pushed_paths(calls)


def _pushed_paths(calls) -> set[str]:
    return {path for name, args in calls.log if name == "push" for path in args[0]}


def test_the_serving_gate_opens_once_the_ensemble_is_writable(ctx, root, calls):
    relations = [zk_relation(SECRET), bk_relation(total=3, ready=3), peers()]
    config = {"managed-ledger-ensemble-size": 3}
    out = ctx.run(ctx.on.config_changed(), full_state(root, config=config, relations=relations))
    assert isinstance(out.unit_status, ops.ActiveStatus)
    assert SERVING_PATH in _pushed_paths(calls)
    # the gate is a level-ready check of the view layer (outside the restart inputs)
    layer = view_layer(unit_fqdn("pulsar-k8s/0", "pulsar-k8s", "testing"))
    gate = layer["checks"][SERVING_CHECK]
    assert gate["level"] == "ready" and gate["threshold"] == 1
    assert SERVING_PATH in gate["exec"]["command"]


# -- bad config -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"managed-ledger-write-quorum": 3}, "managed-ledger-write-quorum"),
        ({"managed-ledger-ack-quorum": 0}, "managed-ledger-ack-quorum"),
        ({"managed-ledger-ensemble-size": 0}, "managed-ledger-ensemble-size"),
        ({"log-level": "loud"}, "log-level"),
        ({"heap-mb": 16}, "heap-mb"),
        ({"cluster-name": "no spaces"}, "cluster-name"),
        ({"default-retention-size-mb": -5}, "default-retention-size-mb"),
    ],
)
def test_bad_config_blocks_naming_the_option_and_touches_nothing(ctx, root, calls, config, option):
    out = ctx.run(ctx.on.config_changed(), full_state(root, config=config))
    assert isinstance(out.unit_status, ops.BlockedStatus)
    assert out.unit_status.message.startswith(f"{option}: ")
    assert calls.names() == []


# -- first start ----------------------------------------------------------------------------


def test_first_start_pushes_files_and_status_file_then_starts(ctx, root):
    before = full_state(root)
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    conf = (root / "conf" / "broker.conf").read_text()
    assert conf == expected_files()[BROKER_CONF_PATH]
    jaas = root / "conf" / "zookeeper-jaas.conf"
    assert f'password="{PASSWORD}"' in jaas.read_text()
    assert (root / "status").exists()
    assert (root / "data").is_dir()
    plan = out.get_container("pulsar").plan.to_dict()
    broker = plan["services"][SERVICE_NAME]
    command = shlex.split(broker["command"])
    # the broker, started behind its watcher (which wakes the charm once it is ready)
    assert command[:2] == ["/bin/bash", "-c"]
    assert command[2].endswith("& exec /pulsar/bin/pulsar broker")
    assert "/charm/bin/pebble notify charmhub.io/pulsar-k8s/view" in command[2]
    assert (broker["user-id"], broker["group"]) == (10000, "root")
    assert plan["checks"]["broker-alive"]["http"]["url"] == (
        f"http://{UNIT_ADDRESS}:8080/status.html"
    )
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


def test_started_but_not_ready_is_waiting(ctx, root, fake_broker):
    fake_broker.ready = False
    before = full_state(root)
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    assert out.unit_status == ops.WaitingStatus(
        "broker started; waiting for /admin/v2/brokers/ready"
    )


# -- converged: nothing to do ---------------------------------------------------------------


def test_unchanged_reconcile_writes_nothing(ctx, root, calls):
    before = full_state(root, running=True, files=expected_files())
    out = ctx.run(ctx.on.config_changed(), before)
    assert calls.names() == []
    peer = out.get_relation(next(r.id for r in before.relations if r.endpoint == "cluster"))
    assert REQUEST_KEY not in peer.local_unit_data
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


def test_config_rendering_identical_files_restarts_nothing(ctx, root, calls):
    # cluster-name given explicitly with its default value: same files, no restart.
    before = full_state(
        root, running=True, files=expected_files(), config={"cluster-name": "pulsar"}
    )
    ctx.run(ctx.on.config_changed(), before)
    assert calls.names() == []


# -- rolling restart ------------------------------------------------------------------------


def _running_with_change(root: Path, *, leader: bool, peer: testing.PeerRelation):
    secret = SECRET
    return full_state(
        root,
        leader=leader,
        running=True,
        files=expected_files(),
        config={"log-level": "debug"},
        relations=[zk_relation(secret), bk_relation(), peer],
    )


def test_changed_config_waits_for_the_lock_without_restarting(ctx, root, calls):
    peer = peers(app_data={GRANTED_KEY: f"{APP}/1"}, peer_units={1: {REQUEST_KEY: "abc"}})
    out = ctx.run(ctx.on.config_changed(), _running_with_change(root, leader=False, peer=peer))
    assert out.unit_status == ops.WaitingStatus(
        "configuration changed; waiting for the rolling-restart lock"
    )
    assert out.get_relation(peer.id).local_unit_data[REQUEST_KEY]
    assert calls.names() == []


def test_granted_unit_drains_then_restarts_and_releases(ctx, root, calls, monkeypatch, no_sleep):
    seen_status_file_at_stop: list[bool] = []
    original_stop = PulsarWorkload.stop_draining

    def stop_draining(self):
        original_stop(self)
        seen_status_file_at_stop.append((root / "status").exists())

    monkeypatch.setattr(PulsarWorkload, "stop_draining", stop_draining)
    peer = peers(
        app_data={GRANTED_KEY: f"{APP}/0"},
        unit_data={REQUEST_KEY: "pending"},
    )
    out = ctx.run(ctx.on.config_changed(), _running_with_change(root, leader=False, peer=peer))

    assert seen_status_file_at_stop == [False]  # removed before the broker was stopped
    assert 5.0 in no_sleep  # the bounded drain period
    assert calls.names() == [
        "stop_draining",
        "push",
        "add_broker_layer",
        "start_broker",
        "create_status_file",
        "push",
    ]
    assert (root / "status").exists()  # recreated before the start
    env = out.get_container("pulsar").plan.services[SERVICE_NAME].environment
    assert env["PULSAR_LOG_LEVEL"] == "debug"
    assert out.get_relation(peer.id).local_unit_data.get(REQUEST_KEY, "") == ""
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


def test_single_leader_grants_itself_in_the_same_hook(ctx, root):
    peer = peers()
    out = ctx.run(ctx.on.config_changed(), _running_with_change(root, leader=True, peer=peer))
    assert out.get_relation(peer.id).local_app_data[GRANTED_KEY] == f"{APP}/0"
    env = out.get_container("pulsar").plan.services[SERVICE_NAME].environment
    assert env["PULSAR_LOG_LEVEL"] == "debug"
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


def test_restart_not_ready_keeps_the_lock(ctx, root, fake_broker):
    fake_broker.ready = False
    peer = peers(app_data={GRANTED_KEY: f"{APP}/0"}, unit_data={REQUEST_KEY: "pending"})
    out = ctx.run(ctx.on.config_changed(), _running_with_change(root, leader=False, peer=peer))
    assert out.get_relation(peer.id).local_unit_data[REQUEST_KEY]
    assert out.unit_status == ops.WaitingStatus(
        "broker started; waiting for /admin/v2/brokers/ready"
    )


def test_secret_rotation_rewrites_jaas_through_the_lock(ctx, root, calls):
    peer = peers(app_data={GRANTED_KEY: f"{APP}/1"}, peer_units={1: {REQUEST_KEY: "x"}})
    secret = testing.Secret(
        tracked_content={"username": USERNAME, "password": "rotated", "uris": ZK_HOSTS}
    )
    before = state(
        root,
        leader=False,
        running=True,
        files=expected_files(),
        relations=[zk_relation(secret), bk_relation(), peer],
        secrets=[secret],
    )
    out = ctx.run(ctx.on.secret_changed(secret), before)
    assert out.get_relation(peer.id).local_unit_data[REQUEST_KEY]
    assert calls.names() == []  # not granted yet: the old password stays in place


def test_pebble_unreachable_mid_hook_is_waiting(ctx, root, monkeypatch):
    def boom(self):
        raise pebble.ConnectionError("socket gone")

    monkeypatch.setattr(PulsarWorkload, "ensure_data_dir_owned", boom)
    out = ctx.run(ctx.on.update_status(), full_state(root))
    assert out.unit_status == ops.WaitingStatus(
        "waiting for the pulsar container (Pebble) (retrying)"
    )


def test_status_file_path_is_outside_storage():
    assert not STATUS_FILE_PATH.startswith("/pulsar/data")


# -- waking up: the broker-view check and every bookie's own report ---------------------------


def test_start_returns_at_once_and_the_view_check_event_reports_ready(
    ctx, root, fake_broker, no_sleep
):
    """No hook waits for the JVM; the check that fails when readiness changes wakes the unit."""
    fake_broker.ready = False
    started = ctx.run(
        ctx.on.pebble_ready((before := full_state(root)).get_container("pulsar")), before
    )
    assert started.unit_status == ops.WaitingStatus(
        "broker started; waiting for /admin/v2/brokers/ready"
    )
    assert no_sleep == [] and fake_broker.polls == 1
    assert (root / "logs/charm-view/broker-state").read_text().split()[0] == "down"
    assert VIEW_CHECK in started.get_container("pulsar").plan.checks

    fake_broker.ready = True  # the view check now fails: live "ready", recorded "down"
    check = testing.CheckInfo(VIEW_CHECK, status=pebble.CheckStatus.DOWN, failures=1, threshold=1)
    running = dataclasses.replace(
        started.get_container("pulsar"),
        service_statuses={SERVICE_NAME: pebble.ServiceStatus.ACTIVE},
        check_infos={check},
    )
    woken = ctx.run(
        ctx.on.pebble_check_failed(running, check),
        dataclasses.replace(started, containers={running}),
    )
    assert woken.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")
    assert (root / "logs/charm-view/broker-state").read_text().split()[0] == "ready"


def test_bookie_reports_outvote_a_stale_leader_aggregate(ctx, root):
    """The bookkeeper leader's ready-bookies said 0 (its own bookie frozen); two bookies say
    writable themselves: the broker counts what each bookie reports."""
    bk = testing.Relation(
        "bookkeeper",
        remote_app_name="bookkeeper-k8s",
        remote_app_data={
            "metadata-service-uri": BK_URI,
            "bookies": json.dumps([bookie(n) for n in range(3)]),
            "ready-bookies": "[]",
        },
        remote_units_data={
            0: {"bookie-id": bookie(0), "bookie-state": "down"},
            1: {"bookie-id": bookie(1), "bookie-state": "writable"},
            2: {"bookie-id": bookie(2), "bookie-state": "writable"},
        },
    )
    relations = [zk_relation(SECRET), bk, peers()]
    out = ctx.run(
        ctx.on.relation_changed(bk, remote_unit=1), full_state(root, relations=relations)
    )
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)")


def test_a_bookie_reporting_read_only_is_not_counted(ctx, root):
    bk = testing.Relation(
        "bookkeeper",
        remote_app_name="bookkeeper-k8s",
        remote_app_data={
            "metadata-service-uri": BK_URI,
            "bookies": json.dumps([bookie(n) for n in range(2)]),
            "ready-bookies": json.dumps([bookie(0), bookie(1)]),  # stale aggregate
        },
        remote_units_data={1: {"bookie-id": bookie(1), "bookie-state": "read-only"}},
    )
    relations = [zk_relation(SECRET), bk, peers()]
    out = ctx.run(
        ctx.on.relation_changed(bk, remote_unit=1), full_state(root, relations=relations)
    )
    assert out.unit_status == ops.WaitingStatus("1/2 bookies writable, ensemble needs 2")
