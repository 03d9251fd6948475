"""bookkeeper-k8s refreshes: the pre-refresh check, the readiness gate, the downgrade refusal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ops
import pytest
from bookkeeper_refresh import bookie_problems, underreplicated_problem
from bookkeeper_view import VIEW_PATH, WRITABLE_CHECK
from bookkeeper_workload import BookieWorkload
from charms.pulsar_k8s.v0.observability import WORKLOAD_VERSION_KEY
from charms.pulsar_k8s.v0.refresh import HIGHEST_VERSION_KEY
from charms.pulsar_k8s.v0.workload import unit_fqdn
from ops import testing
from test_bookkeeper_charm import APP, MODEL, container, state

LISTUR = ("/pulsar/bin/bookkeeper", "shell", "listunderreplicated", "-c")
JAR = "org.apache.pulsar-pulsar-broker-common-{}.jar"
WRITABLE_ANSWER = '{"running" : true, "readOnly" : false, "shuttingDown" : false}'
COUNT_ZERO = (
    "12:00:01.000 [main] INFO ListUnderReplicatedCommand - Under replicated ledger count: 0"
)


def count_exec(count: int, code: int = 0) -> testing.Exec:
    line = COUNT_ZERO.replace("count: 0", f"count: {count}")
    return testing.Exec(list(LISTUR), return_code=code, stdout=line + "\n")


def peer(app_data: dict[str, str] | None = None, versions: dict[int, str] | None = None):
    versions = versions or {}
    return testing.PeerRelation(
        "cluster",
        local_app_data={"bookkeeper-initialised": "true", **(app_data or {})},
        local_unit_data={WORKLOAD_VERSION_KEY: versions[0]} if 0 in versions else {},
        peers_data={
            n: {
                "bookie-state": "writable",
                **({WORKLOAD_VERSION_KEY: versions[n]} if n in versions else {}),
            }
            for n in (1, 2)
        },
    )


def with_jar(cont: testing.Container, tmp_path: Path, version: str) -> testing.Container:
    lib = tmp_path / "lib"
    lib.mkdir(exist_ok=True)
    (lib / JAR.format(version)).write_text("")
    mounts = {**cont.mounts, "lib": testing.Mount(location="/pulsar/lib", source=lib)}
    return dataclasses.replace(cont, mounts=mounts)


@pytest.fixture
def bookie_answers(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """Host -> what its GET /api/v1/bookie/state answers (default: writable)."""
    answers: dict[str, str | None] = {}

    def get(self: BookieWorkload, path: str, timeout: float = 0, host: str | None = None):
        return answers.get(host or self._address, WRITABLE_ANSWER)

    monkeypatch.setattr(BookieWorkload, "_http_get", get)
    return answers


def address(n: int) -> str:
    return unit_fqdn(f"{APP}/{n}", APP, MODEL)


# -- the pure parts ---------------------------------------------------------------------------


def test_bookie_problems_name_each_bookie_not_writable() -> None:
    states = {"bk/0": "writable", "bk/1": "down", "bk/2": "read-only"}
    assert bookie_problems(states) == ["bk/1 bookie down", "bk/2 bookie read-only"]


@pytest.mark.parametrize(
    ("ok", "output", "expected"),
    [
        (True, COUNT_ZERO, None),
        (True, COUNT_ZERO.replace("count: 0", "count: 7"), "7 under-replicated ledger(s)"),
        (True, "some log line without a count", "cannot count under-replicated ledgers"),
        (False, COUNT_ZERO, "cannot count under-replicated ledgers"),
    ],
)
def test_underreplicated_count_is_read_from_the_tool(ok, output, expected) -> None:
    problem = underreplicated_problem(ok, output)
    assert (problem is None) if expected is None else problem.startswith(expected)  # type: ignore[union-attr]


# -- the action -------------------------------------------------------------------------------


def test_pre_refresh_check_passes_on_a_healthy_cluster(ctx, storage, tmp_path, bookie_answers):
    cont = container(storage, tmp_path, running=True, execs=(count_exec(0),))
    ctx.run(ctx.on.action("pre-refresh-check"), state(cont, peer=peer()))
    assert ctx.action_results is not None
    assert ctx.action_results["result"] == "healthy: ready to refresh"
    assert ctx.exec_history["pulsar"][-1].command == list(LISTUR)


def test_pre_refresh_check_fails_naming_a_down_bookie_and_underreplication(
    ctx, storage, tmp_path, bookie_answers
):
    bookie_answers[address(2)] = None  # killed: its HTTP API does not answer
    cont = container(storage, tmp_path, running=True, execs=(count_exec(3),))
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("pre-refresh-check"), state(cont, peer=peer()))
    assert failed.value.message == (
        "pre-refresh check failed: bookkeeper-k8s/2 bookie down; 3 under-replicated ledger(s)"
    )


# -- the reconcile ----------------------------------------------------------------------------


def test_downgrade_across_a_minor_version_is_refused_and_starts_nothing(
    ctx, storage, tmp_path, bookie_answers
):
    cont = with_jar(container(storage, tmp_path), tmp_path, "4.1.8")
    before = state(cont, peer=peer(app_data={HIGHEST_VERSION_KEY: "4.2.0"}))
    out = ctx.run(ctx.on.pebble_ready(cont), before)
    assert out.unit_status == ops.BlockedStatus(
        "refresh refused: Pulsar 4.1.8 is older than 4.2.0, which this application has run "
        "(downgrades across minor versions are not supported)"
    )
    assert "bookie" not in out.get_container("pulsar").plan.services
    # and its pod never turns ready: Kubernetes replaces no further pod
    assert (
        out.get_container("pulsar").plan.checks["refresh-refused"].level
        == ops.pebble.CheckLevel.READY
    )


def test_rollback_within_the_minor_version_starts(ctx, storage, tmp_path, bookie_answers):
    cont = with_jar(container(storage, tmp_path), tmp_path, "4.1.6")
    out = ctx.run(
        ctx.on.pebble_ready(cont), state(cont, peer=peer({HIGHEST_VERSION_KEY: "4.1.8"}))
    )
    assert out.unit_status.name != "blocked"
    assert "bookie" in out.get_container("pulsar").plan.services


def test_mixed_versions_show_the_refresh_in_progress(ctx, storage, tmp_path, bookie_answers):
    cont = with_jar(container(storage, tmp_path, running=True), tmp_path, "4.1.8")
    rel = peer(versions={0: "4.1.8", 1: "4.1.6", 2: "4.1.6"})
    out = ctx.run(ctx.on.update_status(), state(cont, peer=rel))
    assert out.unit_status == ops.ActiveStatus(
        "refresh in progress: 1/3 units on 4.1.8; bookie writable (3/3 writable)"
    )
    assert out.get_relation(rel.id).local_app_data[HIGHEST_VERSION_KEY] == "4.1.8"


def test_one_version_everywhere_is_plain_active(ctx, storage, tmp_path, bookie_answers):
    cont = with_jar(container(storage, tmp_path, running=True), tmp_path, "4.1.8")
    rel = peer(versions={0: "4.1.8", 1: "4.1.8", 2: "4.1.8"})
    out = ctx.run(ctx.on.update_status(), state(cont, peer=rel))
    assert out.unit_status == ops.ActiveStatus("bookie writable (3/3 writable)")


def test_view_layer_carries_a_readiness_gate_on_the_recorded_view(ctx, storage, tmp_path):
    out = ctx.run(ctx.on.pebble_ready(cont := container(storage, tmp_path)), state(cont))
    gate = out.get_container("pulsar").plan.checks[WRITABLE_CHECK]
    assert gate.level == ops.pebble.CheckLevel.READY
    assert gate.threshold == 1
    assert VIEW_PATH in gate.exec["command"]  # type: ignore[index]
