"""State-transition tests of the pulsar-zookeeper-k8s reconcile (ops.testing)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import ops
import pytest
from charms.pulsar_k8s.v0.view_check import GRACE_S
from charms.pulsar_k8s.v0.workload import unit_fqdn
from ops import testing
from zookeeper_charm import RETRY_AFTER_S
from zookeeper_render import CONF_PATH, DYNAMIC_CONF_PATH, JAAS_PATH, SERVICE
from zookeeper_view import VIEW_CHECK, VIEW_PATH

APP = "pulsar-zookeeper-k8s"


def address(unit_number: int) -> str:
    return unit_fqdn(f"{APP}/{unit_number}", APP, "testing")


def internal_secret() -> testing.Secret:
    return testing.Secret(
        {"super-password": "super-pw", "quorum-password": "quorum-pw"},
        label="zookeeper-internal",
        owner="app",
    )


def container(tmp_path: Path) -> testing.Container:
    for sub in ("data", "conf", "logs"):
        (tmp_path / sub).mkdir(exist_ok=True)
    return testing.Container(
        "pulsar",
        can_connect=True,
        mounts={
            "data": testing.Mount(location="/pulsar/data", source=tmp_path / "data"),
            "conf": testing.Mount(location="/pulsar/conf", source=tmp_path / "conf"),
            # the view file; ops.testing wipes unmounted paths between runs
            "logs": testing.Mount(location="/pulsar/logs", source=tmp_path / "logs"),
        },
        execs={testing.Exec(["chown"])},
    )


def members_json(*unit_numbers: int) -> str:
    return json.dumps({str(n + 1): address(n) for n in unit_numbers})


def peer_unit(unit_number: int, *, started: bool = True, users: list[str] | None = None):
    return {
        "address": address(unit_number),
        "server-id": str(unit_number + 1),
        "started": "true" if started else "false",
        "users": json.dumps(users or []),
    }


def _fs(tmp_path: Path, path: str) -> Path:
    """Where a container path lives: /pulsar/conf and /pulsar/data are mounted from tmp_path
    (ops.testing wipes the unmounted container filesystem between runs)."""
    return tmp_path / path.removeprefix("/pulsar/")


def _running(state: testing.State) -> testing.State:
    """Mark the service active, as Pebble would after a start."""
    c = state.get_container("pulsar")
    c2 = dataclasses.replace(c, service_statuses={SERVICE: ops.pebble.ServiceStatus.ACTIVE})
    return dataclasses.replace(state, containers={c2})


def test_bootstrap_waits_for_every_planned_unit(ctx, tmp_path, ensemble, pebble_calls):
    peer = testing.PeerRelation("cluster", peers_data={1: {"address": address(1)}})
    state = testing.State(
        leader=True,
        planned_units=3,
        relations={peer},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus(
        "waiting for units to publish their address (2/3)"
    )
    assert "members" not in out.get_relation(peer.id).local_app_data
    assert pebble_calls.pushes == [] and pebble_calls.starts == 0
    # the unit always publishes its own identity
    unit_data = out.get_relation(peer.id).local_unit_data
    assert unit_data["address"] == address(0) and unit_data["server-id"] == "1"
    # clients reach the ensemble through the application's Service
    assert out.opened_ports == {testing.TCPPort(2181)}


def test_members_committed_once_every_planned_unit_has_an_address(
    ctx, tmp_path, ensemble, pebble_calls
):
    peer = testing.PeerRelation(
        "cluster", peers_data={1: {"address": address(1)}, 2: {"address": address(2)}}
    )
    state = testing.State(
        leader=True,
        planned_units=3,
        relations={peer},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.get_relation(peer.id).local_app_data["members"] == members_json(0, 1, 2)
    # the leader starts its own server with the committed ensemble
    dynamic = _fs(tmp_path, DYNAMIC_CONF_PATH).read_text()
    assert dynamic.count("server.") == 3 and f"server.1={address(0)}:2888:3888" in dynamic
    assert pebble_calls.starts == 1
    assert out.get_relation(peer.id).local_unit_data["started"] == "true"
    assert [s for s in out.secrets if s.label == "zookeeper-internal"]


def test_non_leader_does_not_start_before_members(ctx, tmp_path, ensemble, pebble_calls):
    peer = testing.PeerRelation("cluster", peers_data={1: {"address": address(1)}})
    state = testing.State(
        leader=False,
        relations={peer},
        secrets={internal_secret()},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus(
        "waiting for the leader to commit the ensemble"
    )
    assert pebble_calls.starts == 0 and pebble_calls.pushes == []


def test_scale_up_unit_starts_with_members_plus_itself(ctx, tmp_path, ensemble, pebble_calls):
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(1, 2, 3)},
        peers_data={n: peer_unit(n) for n in (1, 2, 3)},
    )
    state = testing.State(
        leader=False,
        relations={peer},
        secrets={internal_secret()},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    dynamic = _fs(tmp_path, DYNAMIC_CONF_PATH).read_text()
    assert dynamic.count("server.") == 4
    assert out.unit_status == testing.WaitingStatus("waiting to be added to the ensemble")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("tick-time", 5),
        ("heap-mb", 10),
        ("log-level", "verbose"),
        ("autopurge-snap-retain-count", 1),
    ],
)
def test_bad_config_blocks_naming_the_option_and_touches_nothing(
    ctx, tmp_path, ensemble, pebble_calls, option, value
):
    peer = testing.PeerRelation("cluster", local_app_data={"members": members_json(0)})
    state = testing.State(
        leader=True,
        config={option: value},
        relations={peer},
        secrets={internal_secret()},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(out.unit_status, testing.BlockedStatus)
    assert out.unit_status.message.startswith(f"{option}: ")
    assert pebble_calls.pushes == [] and pebble_calls.layers == 0
    assert ensemble.calls == []


def _started_single(ctx, tmp_path, ensemble, **state_kwargs) -> testing.State:
    """A one-unit ensemble after its first reconcile (service running)."""
    peer = testing.PeerRelation("cluster", local_app_data={"members": members_json(0)})
    state = testing.State(
        leader=True,
        relations={peer},
        secrets={internal_secret()},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
        **state_kwargs,
    )
    return _running(ctx.run(ctx.on.config_changed(), state))


def test_unchanged_reconcile_pushes_nothing_adds_no_layer_restarts_nothing(
    ctx, tmp_path, ensemble, pebble_calls
):
    first = _started_single(ctx, tmp_path, ensemble)
    assert pebble_calls.starts == 1 and pebble_calls.layers == 2  # service + view check
    before = dataclasses.replace(pebble_calls)
    ensemble.calls.clear()
    out = ctx.run(ctx.on.update_status(), first)
    assert pebble_calls.pushes == before.pushes
    assert (pebble_calls.layers, pebble_calls.starts, pebble_calls.restarts) == (2, 1, 0)
    assert ensemble.calls == []
    assert out.unit_status == testing.ActiveStatus("1 members, quorum ok; clients: none")


def test_zookeeper_rewriting_its_config_is_not_fought(ctx, tmp_path, ensemble, pebble_calls):
    first = _started_single(ctx, tmp_path, ensemble)
    # what ZooKeeper does on reconfig: rewrite the static file, write a versioned dynamic file
    _fs(tmp_path, CONF_PATH).write_text("dynamicConfigFile=/pulsar/conf/x.dynamic.100000010\n")
    pushes = list(pebble_calls.pushes)
    ctx.run(ctx.on.update_status(), first)
    assert pebble_calls.pushes == pushes and pebble_calls.restarts == 0


def test_config_change_on_a_running_server_waits_for_the_restart_lock(
    ctx, make_ctx, tmp_path, ensemble, pebble_calls
):
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1, 2)},
        peers_data={0: peer_unit(0), 2: peer_unit(2)},
    )
    state = testing.State(
        leader=False,
        relations={peer},
        secrets={internal_secret()},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
    )
    ctx_unit1 = make_ctx(unit_id=1)
    running = _running(ctx_unit1.run(ctx_unit1.on.config_changed(), state))
    assert pebble_calls.starts == 1

    changed = dataclasses.replace(running, config={"heap-mb": 1024})
    out = ctx_unit1.run(ctx_unit1.on.config_changed(), changed)
    unit_data = out.get_relation(peer.id).local_unit_data
    assert unit_data["restart-request"]
    assert pebble_calls.restarts == 0
    assert out.unit_status == testing.WaitingStatus("waiting for the rolling-restart lock")

    relation = out.get_relation(peer.id)
    granted = dataclasses.replace(
        relation,
        local_app_data={**relation.local_app_data, "restart-granted": "pulsar-zookeeper-k8s/1"},
    )
    out2 = ctx_unit1.run(
        ctx_unit1.on.relation_changed(granted), dataclasses.replace(out, relations={granted})
    )
    assert pebble_calls.restarts == 1
    assert "restart-request" not in out2.get_relation(peer.id).local_unit_data  # released
    layer_env = out2.get_container("pulsar").plan.services[SERVICE].environment
    assert "-Xmx1024m" in layer_env["PULSAR_MEM"]


def test_leader_reconfig_removes_departed_before_adding_new(ctx, tmp_path, ensemble, pebble_calls):
    # unit 3 (server 4) is gone; unit 4 (server 5) started as a non-member
    ensemble.view = {n + 1: address(n) for n in (0, 1, 2, 3)}
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1, 2, 3)},
        peers_data={1: peer_unit(1), 2: peer_unit(2), 4: peer_unit(4)},
    )
    state = _running_leader_state(ctx, tmp_path, peer, planned_units=5)
    out = ctx.run(ctx.on.relation_departed(peer, remote_unit=3, departing_unit=3), state)
    ops_only = [c for c in ensemble.calls if c[0] in ("remove", "add")]
    assert ops_only == [
        ("remove", [4]),
        ("add", [f"server.5={address(4)}:2888:3888:participant;{address(4)}:2181"]),
    ]
    assert out.get_relation(peer.id).local_app_data["members"] == members_json(0, 1, 2, 4)
    assert pebble_calls.restarts == 0


def test_scale_down_removes_units_beyond_planned_and_restarts_nobody(
    ctx, tmp_path, ensemble, pebble_calls
):
    ensemble.view = {n + 1: address(n) for n in range(5)}
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1, 2, 3, 4)},
        peers_data={n: peer_unit(n) for n in (1, 2, 3, 4)},
    )
    state = _running_leader_state(ctx, tmp_path, peer, planned_units=3)
    starts_before = pebble_calls.starts
    out = ctx.run(ctx.on.update_status(), state)
    assert [c for c in ensemble.calls if c[0] in ("remove", "add")] == [("remove", [4, 5])]
    assert out.get_relation(peer.id).local_app_data["members"] == members_json(0, 1, 2)
    assert pebble_calls.restarts == 0 and pebble_calls.starts == starts_before


def _running_leader_state(ctx, tmp_path, peer, **kwargs) -> testing.State:
    """A leader whose server already runs with the current files (started earlier)."""
    base = testing.State(
        leader=True,
        relations={peer},
        secrets={internal_secret()},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
        **kwargs,
    )
    # first reconcile in a throwaway run lays down files + state, then the service "runs"
    booted = _running(ctx.run(ctx.on.update_status(), base))
    return dataclasses.replace(booted, relations={peer})


def test_unreachable_ensemble_is_waiting_not_an_error(ctx, tmp_path, ensemble):
    ensemble.unreachable = True
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1, 2)},
        peers_data={1: peer_unit(1), 2: peer_unit(2), 3: peer_unit(3)},
    )
    state = testing.State(
        leader=True,
        planned_units=4,
        relations={peer},
        secrets={internal_secret()},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
    )
    out = ctx.run(ctx.on.update_status(), state)
    assert isinstance(out.unit_status, testing.WaitingStatus)
    assert "connection refused" in out.unit_status.message


def test_pebble_unreachable_is_waiting(ctx, tmp_path, ensemble):
    peer = testing.PeerRelation("cluster", local_app_data={"members": members_json(0)})
    state = testing.State(
        leader=True,
        relations={peer},
        secrets={internal_secret()},
        containers={testing.Container("pulsar", can_connect=False)},
        model=testing.Model(name="testing"),
    )
    out = ctx.run(ctx.on.update_status(), state)
    assert out.unit_status == testing.WaitingStatus("waiting for the pulsar container (Pebble)")


def test_even_member_count_is_active_but_says_so(ctx, tmp_path, ensemble):
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1)},
        peers_data={1: peer_unit(1)},
    )
    state = _running_leader_state(ctx, tmp_path, peer, planned_units=2)
    out = ctx.run(ctx.on.update_status(), state)
    assert isinstance(out.unit_status, testing.ActiveStatus)
    assert out.unit_status.message.startswith("2 members, quorum ok (even count")


def test_dynamic_file_written_only_at_start(ctx, tmp_path, ensemble, pebble_calls):
    _started_single(ctx, tmp_path, ensemble)
    assert DYNAMIC_CONF_PATH in pebble_calls.pushes
    assert _fs(tmp_path, JAAS_PATH).stat().st_mode & 0o777 == 0o600
    json.loads(_fs(tmp_path, "/pulsar/conf/zookeeper-charm-state.json").read_text())


# ---- waking up: the view check --------------------------------------------------------------


def test_frozen_then_resumed_server_is_published_on_the_view_check_event(
    ctx, tmp_path, ensemble, pebble_calls
):
    """No update-status: the check event that follows a resume makes every fact true again."""
    running = _started_single(ctx, tmp_path, ensemble)
    view_file = tmp_path / "logs" / "charm-view" / "zookeeper-state"
    assert view_file.read_text().split()[0] == "serving"

    ensemble.is_ok = False  # frozen: no answer to ruok
    check = testing.CheckInfo(
        VIEW_CHECK, status=ops.pebble.CheckStatus.DOWN, failures=1, threshold=1
    )
    c = dataclasses.replace(running.get_container("pulsar"), check_infos={check})
    frozen = ctx.run(
        ctx.on.pebble_check_failed(c, check), dataclasses.replace(running, containers={c})
    )
    peer = frozen.get_relation(next(iter(frozen.relations)).id)
    assert peer.local_unit_data["started"] == "false"
    assert view_file.read_text().split()[0] == "down"
    assert frozen.unit_status == testing.WaitingStatus("waiting for ZooKeeper to answer ruok")

    ensemble.is_ok = True  # resumed: the check fails again (view "down", live "serving")
    c = dataclasses.replace(frozen.get_container("pulsar"), check_infos={check})
    resumed = ctx.run(
        ctx.on.pebble_check_failed(c, check), dataclasses.replace(frozen, containers={c})
    )
    peer = resumed.get_relation(next(iter(resumed.relations)).id)
    assert peer.local_unit_data["started"] == "true"
    assert view_file.read_text().split()[0] == "serving"
    assert resumed.unit_status.name == "active"
    assert pebble_calls.restarts == 0


def test_no_hook_sleeps(ctx, tmp_path, ensemble, monkeypatch):
    """A server that does not answer yet leaves the hook at once (the view check wakes it)."""
    ensemble.is_ok = False

    def forbidden(seconds: float) -> None:
        raise AssertionError(f"a hook slept {seconds}s")

    monkeypatch.setattr("time.sleep", forbidden)
    out = _started_single(ctx, tmp_path, ensemble)
    assert out.unit_status == testing.WaitingStatus("waiting for ZooKeeper to answer ruok")


# ---- the peer state ------------------------------------------------------------------------


def test_corrupt_members_waits_naming_cluster_and_field(ctx, tmp_path, ensemble, pebble_calls):
    # Read as empty, a corrupt record would make the leader bootstrap a second ensemble.
    peer = testing.PeerRelation("cluster", local_app_data={"members": "{not json"})
    state = testing.State(
        leader=True,
        relations={peer},
        secrets={internal_secret()},
        containers={container(tmp_path)},
        model=testing.Model(name="testing"),
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == testing.WaitingStatus(
        "cluster relation: members is not JSON; waiting for valid data"
    )
    assert out.get_relation(peer.id).local_app_data["members"] == "{not json"
    assert pebble_calls.starts == 0 and ensemble.calls == []


def test_no_ensemble_session_while_no_member_serves(ctx, tmp_path, ensemble):
    """After a full restart every peer still says `started` (stale): the leader must not hold its
    hook on a kazoo session that can only time out. A member entering the quorum wakes it."""
    ensemble.is_serving = False
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1, 2)},
        peers_data={1: peer_unit(1), 2: peer_unit(2), 3: peer_unit(3)},
    )
    state = _running_leader_state(ctx, tmp_path, peer, planned_units=4)
    ensemble.calls.clear()
    out = ctx.run(ctx.on.update_status(), state)
    assert ensemble.calls == []
    assert out.unit_status == testing.WaitingStatus("waiting for quorum")


def test_failed_ensemble_operation_with_quorum_schedules_its_retry(ctx, tmp_path, ensemble):
    """A kazoo operation that fails while the quorum serves is retried on a real event: the
    leader records a retry view, so its view check fails once the retry is due."""
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1, 2)},
        peers_data={1: peer_unit(1), 2: peer_unit(2), 3: peer_unit(3)},
    )
    state = _running_leader_state(ctx, tmp_path, peer, planned_units=4)
    ensemble.unreachable = True
    out = ctx.run(ctx.on.update_status(), state)
    assert isinstance(out.unit_status, testing.WaitingStatus)
    assert "connection refused" in out.unit_status.message
    view = _fs(tmp_path, VIEW_PATH).read_text()
    assert view.startswith("retry:serving ")
    due = int(view.split()[1]) + GRACE_S
    assert time.time() < due <= time.time() + RETRY_AFTER_S + 1
    # the check event's reconcile records the live view again and retries the operation
    ensemble.unreachable = False
    ensemble.calls.clear()
    out = ctx.run(ctx.on.update_status(), out)
    assert ensemble.calls[0][:1] == ("connect",)
    assert _fs(tmp_path, VIEW_PATH).read_text().startswith("serving ")


def test_ensemble_session_is_offered_only_serving_members(ctx, tmp_path, ensemble, monkeypatch):
    """A member that answers but is not in the quorum (restarting) is left out of the session's
    hosts: kazoo could spend its whole timeout on it."""
    import zookeeper_ensemble

    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1, 2)},
        peers_data={1: peer_unit(1), 2: peer_unit(2), 3: peer_unit(3)},
    )
    state = _running_leader_state(ctx, tmp_path, peer, planned_units=4)

    def zabstate(host: str, command: str, **_: object) -> str:
        state = "synchronization" if host == address(1) else "broadcast"
        return f'{{"is_leader" : false, "zabstate" : "{state}", "error" : null}}'

    monkeypatch.setattr(zookeeper_ensemble, "admin_command", zabstate)
    ensemble.calls.clear()
    ctx.run(ctx.on.update_status(), state)
    assert ensemble.calls[0] == ("connect", (address(0), address(2)))
