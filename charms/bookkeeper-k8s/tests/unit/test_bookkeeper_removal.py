"""Safe bookie removal (ops.testing): decommission on removal, never on a pod restart, refuse
below the brokers' ensemble, and no hook error on a failed or timed-out decommission.

The leaving unit is unit 3 (Kubernetes removes the highest ordinal; ops.testing also reads a
``departing_unit`` of 0 as unset).
"""

from __future__ import annotations

import dataclasses
import json

import ops
import pytest
from bookkeeper_charm import BookKeeperCharm
from bookkeeper_removal import (
    DECOMMISSION,
    DECOMMISSION_TIMEOUT_S,
    REFUSED,
    decide,
    short_of_bookies,
)
from bookkeeper_workload import BookieWorkload
from charms.pulsar_k8s.v0.workload import ExecResult
from conftest import CHARM_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops import testing
from test_bookkeeper_charm import (
    APP,
    PASSWORD,
    container,
    executed,
    peers,
    state,
    unit_id,
)

DECOMMISSION_CMD = (
    "/pulsar/bin/bookkeeper",
    "shell",
    "decommissionbookie",
    "-bookieid",
    unit_id(3),
)
LISTBOOKIES = ("/pulsar/bin/bookkeeper", "shell", "listbookies", "-a")
READ_ONLY_PUT = ("/api/v1/bookie/state/readonly", json.dumps({"readOnly": True}))


def brokers(ensemble: str | None = "3") -> testing.Relation:
    data = {"ensemble-size": ensemble} if ensemble is not None else {}
    return testing.Relation("bookkeeper", remote_app_name="pulsar-k8s", remote_app_data=data)


def listed(*numbers: int) -> str:
    lines = [f"BookieID:{unit_id(n)}, IP:127.0.0.1, Port:3181" for n in numbers]
    return "\n".join(["INFO  All Bookies :", *lines])


def execs(decommission_rc: int = 0, listing: str | None = None) -> tuple[testing.Exec, ...]:
    return (
        testing.Exec(DECOMMISSION_CMD, return_code=decommission_rc, stdout="decommission log"),
        testing.Exec(LISTBOOKIES, stdout=listed(0, 1, 2) if listing is None else listing),
    )


def leaving_state(
    storage, tmp_path, *, planned: int, ensemble: str | None = "3", me: int = 3, **kwargs
):
    """Unit ``me`` of four, its bookie running; ``planned``: the units Juju keeps."""
    cont = container(storage, tmp_path, running=True, execs=kwargs.pop("execs", execs()))
    others = tuple(n for n in range(4) if n != me)
    peer = peers(others=others)
    storages = (testing.Storage("journal"), testing.Storage("ledgers"))
    st = state(
        cont,
        peer=peer,
        extra=(brokers(ensemble),),
        leader=False,
        storages=storages,
        **kwargs,
    )
    return dataclasses.replace(st, planned_units=planned)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The workload's mutating calls, by name (nothing else records them)."""
    recorded: list[str] = []
    for name in ("push", "add_layer", "start_bookie", "restart_bookie", "ensure_owned"):
        original = getattr(BookieWorkload, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            recorded.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(BookieWorkload, name, spy)
    return recorded


@pytest.fixture
def ctx3(no_sleep) -> testing.Context:
    """The context of unit 3, the one Kubernetes removes first."""
    return testing.Context(BookKeeperCharm, charm_root=CHARM_ROOT, unit_id=3)


def departed(ctx, st: testing.State) -> testing.State:
    """Unit 3 sees itself depart the peer relation: the first event of its removal."""
    peer = next(r for r in st.relations if r.endpoint == "cluster")
    return ctx.run(ctx.on.relation_departed(peer, remote_unit=0, departing_unit=3), st)


def detaching(ctx, st: testing.State) -> testing.State:
    ledgers = next(s for s in st.storages if s.name == "ledgers")
    return ctx.run(ctx.on.storage_detaching(ledgers), st)


@pytest.fixture
def four_writable(fake_http):
    fake_http.writable = [unit_id(n) for n in range(4)]
    return fake_http


# --- the decision (pure) ------------------------------------------------------------------


def test_decide_decommissions_when_the_ensemble_still_fits():
    assert decide(3, 3, APP).plan == DECOMMISSION
    assert decide(1, None, APP).plan == DECOMMISSION  # nobody says: one other bookie remains


def test_decide_refuses_below_the_ensemble_naming_the_way_out():
    refused = decide(2, 3, APP)
    assert refused.plan == REFUSED
    assert "2 writable bookies would remain" in refused.reason
    assert "ensemble needs 3" in refused.reason
    assert f"scale {APP} back up to at least 3" in refused.reason
    assert decide(0, None, APP).plan == REFUSED  # the last bookie


def test_short_of_bookies_only_when_brokers_need_more():
    assert short_of_bookies(3, 3, APP) is None
    assert short_of_bookies(1, None, APP) is None
    assert f"scale {APP} to 3" in (short_of_bookies(2, 3, APP) or "")


# --- removal: decommission ----------------------------------------------------------------


def test_departing_unit_goes_read_only_and_runs_no_reconcile(
    ctx3, storage, tmp_path, calls, four_writable
):
    st = leaving_state(storage, tmp_path, planned=3)
    out = departed(ctx3, st)
    assert four_writable.puts == [READ_ONLY_PUT]
    assert out.unit_status == ops.MaintenanceStatus(
        "leaving: bookie read-only; decommissions when its storage detaches"
    )
    # Nothing pushed, started or run: the reconcile does not run on a leaving unit.
    assert calls == []
    assert executed(ctx3) == []


def test_storage_detaching_stops_decommissions_and_verifies(
    ctx3, storage, tmp_path, four_writable
):
    st = leaving_state(storage, tmp_path, planned=3)
    out = detaching(ctx3, departed(ctx3, st))
    assert executed(ctx3) == [DECOMMISSION_CMD, LISTBOOKIES]
    decommission = ctx3.exec_history["pulsar"][0]
    assert DECOMMISSION_TIMEOUT_S - 5 < decommission.timeout <= DECOMMISSION_TIMEOUT_S
    assert (decommission.user_id, decommission.group_id) == (10000, 0)
    bookie = out.get_container("pulsar").service_statuses["bookie"]
    assert bookie == ops.pebble.ServiceStatus.INACTIVE
    assert out.unit_status.name == "maintenance"
    assert "decommissioned in" in out.unit_status.message
    # Later teardown hooks (the other storage, stop, remove) do nothing more.
    ctx3.exec_history.clear()
    for event in (ctx3.on.stop(), ctx3.on.remove(), ctx3.on.update_status()):
        out = ctx3.run(event, out)
    assert executed(ctx3) == []
    assert out.get_container("pulsar").service_statuses["bookie"] == bookie
    assert out.unit_status == ops.MaintenanceStatus("decommissioned; waiting for the unit to go")


def test_storage_detaching_alone_is_a_removal(ctx3, storage, tmp_path, four_writable):
    """A unit in no relation with anyone still sees its storage detach."""
    st = leaving_state(storage, tmp_path, planned=3)
    out = detaching(ctx3, st)
    assert four_writable.puts == [READ_ONLY_PUT]
    assert executed(ctx3) == [DECOMMISSION_CMD, LISTBOOKIES]
    assert "decommissioned in" in out.unit_status.message


# --- not a removal ------------------------------------------------------------------------


def test_pod_restart_decommissions_nothing(ctx, storage, tmp_path, four_writable):
    """A pod restart: stop on the old pod, then the churn events on the new one."""
    st = leaving_state(storage, tmp_path, me=0, planned=4)
    out = st
    for event in (ctx.on.stop(), ctx.on.upgrade_charm(), ctx.on.start(), ctx.on.config_changed()):
        out = ctx.run(event, out)
    assert four_writable.puts == []
    assert all("decommissionbookie" not in cmd for cmd in executed(ctx))
    assert out.get_container("pulsar").service_statuses["bookie"] == (
        ops.pebble.ServiceStatus.ACTIVE
    )
    assert out.unit_status.name == "active"


def test_another_unit_departing_is_not_this_units_removal(ctx, storage, tmp_path, four_writable):
    st = leaving_state(storage, tmp_path, me=0, planned=3)
    peer = next(r for r in st.relations if r.endpoint == "cluster")
    out = ctx.run(ctx.on.relation_departed(peer, remote_unit=3, departing_unit=3), st)
    assert four_writable.puts == []
    assert executed(ctx) == []
    assert out.unit_status.name == "active"


# --- refusal ------------------------------------------------------------------------------


def test_removal_below_the_ensemble_is_refused_and_nothing_moves(
    ctx3, storage, tmp_path, calls, fake_http
):
    fake_http.writable = [unit_id(n) for n in range(3)]
    st = leaving_state(storage, tmp_path, planned=2)
    out = departed(ctx3, st)
    assert out.unit_status.name == "blocked"
    assert "removal refused: 2 writable bookies would remain" in out.unit_status.message
    assert f"scale {APP} back up to at least 3" in out.unit_status.message
    out = detaching(ctx3, out)
    out = ctx3.run(ctx3.on.stop(), out)
    assert fake_http.puts == []
    assert executed(ctx3) == []  # no decommission: data and cookie stay
    assert calls == []
    bookie = out.get_container("pulsar").service_statuses["bookie"]
    assert bookie == ops.pebble.ServiceStatus.ACTIVE
    assert out.unit_status.name == "blocked"


def test_fewer_writable_than_planned_also_refuses(ctx3, storage, tmp_path, fake_http):
    """Juju plans 3 units, but one of them is down: only 2 could take the ledgers."""
    fake_http.writable = [unit_id(n) for n in (0, 1, 3)]
    st = leaving_state(storage, tmp_path, planned=3)
    out = departed(ctx3, st)
    assert out.unit_status.name == "blocked"
    assert fake_http.puts == []


@pytest.mark.parametrize("ensemble", ["abc", "0", "-1", "99999999999", "3\n"])
def test_malformed_ensemble_size_is_ignored_not_raised(
    ctx3, storage, tmp_path, four_writable, ensemble
):
    st = leaving_state(storage, tmp_path, planned=1, ensemble=ensemble)
    out = departed(ctx3, st)
    # Nobody says a valid size: one other writable bookie must remain, and one does.
    assert out.unit_status.name == "maintenance"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ensemble=st.text(max_size=12), planned=st.integers(0, 4))
def test_any_ensemble_size_and_planned_units_never_break_a_removal(
    ctx3, storage, tmp_path, four_writable, ensemble, planned
):
    st_ = leaving_state(storage, tmp_path, planned=planned, ensemble=ensemble)
    out = detaching(ctx3, departed(ctx3, st_))
    assert out.unit_status.name in ("maintenance", "blocked")
    if out.unit_status.name == "blocked":
        assert "removal refused" in out.unit_status.message


def test_remaining_units_block_when_fewer_bookies_than_the_ensemble(
    ctx, storage, tmp_path, four_writable
):
    st = leaving_state(storage, tmp_path, me=0, planned=2)
    out = ctx.run(ctx.on.update_status(), st)
    assert out.unit_status == ops.BlockedStatus(
        f"2 bookie units, the brokers' ensemble needs 3: scale {APP} to 3 "
        "(a bookie removed below it was not decommissioned)"
    )
    bk = next(r for r in st.relations if r.endpoint == "bookkeeper")
    assert out.get_relation(bk.id).local_unit_data["bookie-state"] == "writable"


# --- failure ------------------------------------------------------------------------------


def test_failed_decommission_blocks_and_the_next_teardown_hook_retries(
    ctx3, storage, tmp_path, four_writable
):
    st = leaving_state(storage, tmp_path, planned=3, execs=execs(decommission_rc=1))
    out = detaching(ctx3, departed(ctx3, st))
    assert out.unit_status == ops.BlockedStatus(
        "decommission failed (decommissionbookie did not finish); "
        "retrying in the next teardown hook"
    )
    ok = container(storage, tmp_path, running=True, execs=execs())
    out = dataclasses.replace(out, containers={ok})
    ctx3.exec_history.clear()
    out = ctx3.run(ctx3.on.stop(), out)
    assert executed(ctx3) == [DECOMMISSION_CMD, LISTBOOKIES]
    assert "decommissioned in" in out.unit_status.message


def test_a_bookie_still_registered_is_tried_again_in_the_same_hook(
    ctx3, storage, tmp_path, four_writable, monkeypatch
):
    answers = [
        ExecResult(False, "exit code 255: ERROR Bookie: x:3181 is not shutdown yet"),
        ExecResult(True, "decommissioned"),
        ExecResult(True, listed(0, 1, 2)),
    ]
    commands: list[tuple[str, ...]] = []

    def run(_self, argv, environment, timeout, working_dir="/pulsar"):
        commands.append(tuple(argv))
        assert 0 < timeout <= DECOMMISSION_TIMEOUT_S
        return answers.pop(0)

    monkeypatch.setattr(BookieWorkload, "run", run)
    st = leaving_state(storage, tmp_path, planned=3)
    out = detaching(ctx3, departed(ctx3, st))
    assert commands == [DECOMMISSION_CMD, DECOMMISSION_CMD, LISTBOOKIES]
    assert "decommissioned in" in out.unit_status.message


def test_a_bookie_still_registered_is_tried_for_its_session_time_not_a_count(
    ctx3, storage, tmp_path, four_writable, monkeypatch
):
    """Fast tool runs (a quiet machine) must still cover the stopped bookie's ZooKeeper session:
    the retries are bounded by STILL_REGISTERED_WINDOW_S, then the hook reports the failure."""
    import bookkeeper_charm

    clock = [1000.0]
    monkeypatch.setattr(bookkeeper_charm.time, "monotonic", lambda: clock[0])
    commands: list[tuple[str, ...]] = []

    def run(_self, argv, environment, timeout, working_dir="/pulsar"):
        commands.append(tuple(argv))
        clock[0] += 1.0  # one tool run: a second
        return ExecResult(False, "exit code 255: ERROR Bookie: x:3181 is not shutdown yet")

    monkeypatch.setattr(BookieWorkload, "run", run)
    st = leaving_state(storage, tmp_path, planned=3)
    out = detaching(ctx3, departed(ctx3, st))
    attempts = commands.count(DECOMMISSION_CMD)
    assert attempts > bookkeeper_charm.STILL_REGISTERED_WINDOW_S - 2, attempts  # ~30 tries
    assert attempts < bookkeeper_charm.STILL_REGISTERED_WINDOW_S + 3, attempts  # and then stop
    assert out.unit_status == ops.BlockedStatus(
        "decommission failed (decommissionbookie did not finish); "
        "retrying in the next teardown hook"
    )


def test_still_listed_after_decommission_is_a_failure(ctx3, storage, tmp_path, four_writable):
    st = leaving_state(storage, tmp_path, planned=3, execs=execs(listing=listed(0, 1, 2, 3)))
    out = detaching(ctx3, departed(ctx3, st))
    assert out.unit_status.name == "blocked"
    assert "the bookie is still listed" in out.unit_status.message


def test_timeout_in_the_last_hook_says_the_unit_goes_without_it(
    ctx3, storage, tmp_path, four_writable, monkeypatch, caplog
):
    def timed_out(_self, argv, environment, timeout, working_dir="/pulsar"):
        return ExecResult(False, f"TimeoutError: timed out after {timeout}s; pw {PASSWORD}")

    monkeypatch.setattr(BookieWorkload, "run", timed_out)
    st = leaving_state(storage, tmp_path, planned=3)
    out = departed(ctx3, st)
    out = ctx3.run(ctx3.on.remove(), out)
    assert out.unit_status == ops.BlockedStatus(
        "decommission failed (decommissionbookie did not finish); "
        "the unit goes without it: see docs/how-to/scale.md"
    )
    assert PASSWORD not in caplog.text  # the tool's output is redacted (JAAS file password)


def test_pebble_gone_during_decommission_blocks_without_raising(
    ctx3, storage, tmp_path, four_writable
):
    st = leaving_state(storage, tmp_path, planned=3)
    out = departed(ctx3, st)
    cont = out.get_container("pulsar")
    out = dataclasses.replace(out, containers={dataclasses.replace(cont, can_connect=False)})
    out = detaching(ctx3, out)
    assert out.unit_status.name == "blocked"
    assert "cannot stop the bookie" in out.unit_status.message
