"""pulsar-zookeeper-k8s refreshes: pre-refresh check, readiness gate, downgrade refusal."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ops
import pytest
import zookeeper_ensemble
from charms.pulsar_k8s.v0.observability import WORKLOAD_VERSION_KEY
from charms.pulsar_k8s.v0.refresh import HIGHEST_VERSION_KEY
from ops import testing
from test_zookeeper_charm import _running, address, container, internal_secret, members_json
from zookeeper_refresh import mode, refresh_problems
from zookeeper_view import SERVING_CHECK

JAR = "org.apache.pulsar-pulsar-broker-common-{}.jar"


def with_jar(cont: testing.Container, tmp_path: Path, version: str) -> testing.Container:
    lib = tmp_path / "lib"
    lib.mkdir(exist_ok=True)
    (lib / JAR.format(version)).write_text("")
    mounts = {**cont.mounts, "lib": testing.Mount(location="/pulsar/lib", source=lib)}
    return dataclasses.replace(cont, mounts=mounts)


def three_units(app_data: dict[str, str] | None = None, versions: dict[int, str] | None = None):
    versions = versions or {}
    peers = {
        n: {
            "address": address(n),
            "server-id": str(n + 1),
            "started": "true",
            **({WORKLOAD_VERSION_KEY: versions[n]} if n in versions else {}),
        }
        for n in (1, 2)
    }
    return testing.PeerRelation(
        "cluster",
        local_app_data={"members": members_json(0, 1, 2), **(app_data or {})},
        local_unit_data={WORKLOAD_VERSION_KEY: versions[0]} if 0 in versions else {},
        peers_data=peers,
    )


def state(tmp_path: Path, peer: testing.PeerRelation, jar: str | None = None) -> testing.State:
    cont = container(tmp_path)
    if jar:
        cont = with_jar(cont, tmp_path, jar)
    return testing.State(
        leader=True,
        relations={peer},
        secrets={internal_secret()},
        containers={cont},
        model=testing.Model(name="testing"),
    )


# -- the pure check ---------------------------------------------------------------------------


LEADER = '{"is_leader" : true, "zabstate" : "broadcast", "command" : "zabstate", "error" : null}'
FOLLOWER = '{"is_leader" : false, "zabstate" : "broadcast", "error" : null}'
SYNCING = '{"is_leader" : false, "zabstate" : "synchronization", "error" : null}'
NOT_SERVING = '{"voting" : false, "zabstate" : "", "command" : "zabstate", "error" : null}'


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (LEADER, "leader"),
        (FOLLOWER, "follower"),
        (SYNCING, None),
        (NOT_SERVING, None),
        ("", None),
        ("[]", None),
    ],
)
def test_mode_of_a_zabstate_answer(answer: str, expected: str | None) -> None:
    assert mode(answer) == expected


def test_refresh_problems_name_each_unhealthy_unit() -> None:
    units = {"zk/0": "a0", "zk/1": "a1", "zk/2": "a2"}
    answers = {"a0": LEADER, "a1": "", "a2": FOLLOWER}
    members = {1: "a0", 2: "a1"}
    assert refresh_problems(units, members, answers.__getitem__) == [
        "zk/1 is not serving (no quorum)",
        "zk/2 is not an ensemble member",
    ]
    assert refresh_problems(units, {1: "a0", 2: "a1", 3: "a2"}, lambda _a: FOLLOWER) == []


# -- the action -------------------------------------------------------------------------------


def test_pre_refresh_check_passes_when_every_member_serves(ctx, tmp_path, ensemble) -> None:
    ctx.run(ctx.on.action("pre-refresh-check"), state(tmp_path, three_units()))
    assert ctx.action_results is not None
    assert ctx.action_results["result"] == "healthy: ready to refresh"


def test_pre_refresh_check_fails_naming_a_server_out_of_quorum(
    ctx, tmp_path, ensemble, monkeypatch
) -> None:
    def zabstate(host: str, command: str, **_: object) -> str:
        return "" if host == address(2) else FOLLOWER

    monkeypatch.setattr(zookeeper_ensemble, "admin_command", zabstate)
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("pre-refresh-check"), state(tmp_path, three_units()))
    assert failed.value.message == (
        "pre-refresh check failed: pulsar-zookeeper-k8s/2 is not serving (no quorum)"
    )


def test_pre_refresh_check_fails_while_a_refresh_is_in_progress(ctx, tmp_path, ensemble) -> None:
    peer = three_units(versions={0: "4.1.6", 1: "4.1.6", 2: "4.1.8"})
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("pre-refresh-check"), state(tmp_path, peer))
    assert "refresh in progress: 1/3 units on 4.1.8" in failed.value.message


# -- the reconcile ----------------------------------------------------------------------------


def test_downgrade_across_a_minor_version_is_refused_and_starts_nothing(
    ctx, tmp_path, ensemble, pebble_calls
) -> None:
    peer = three_units(app_data={HIGHEST_VERSION_KEY: "4.2.0"})
    before = state(tmp_path, peer, jar="4.1.8")
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    assert out.unit_status == ops.BlockedStatus(
        "refresh refused: Pulsar 4.1.8 is older than 4.2.0, which this application has run "
        "(downgrades across minor versions are not supported)"
    )
    assert pebble_calls.starts == 0
    assert "zookeeper" not in out.get_container("pulsar").plan.services
    # and its pod never turns ready: Kubernetes replaces no further pod
    assert (
        out.get_container("pulsar").plan.checks["refresh-refused"].level
        == ops.pebble.CheckLevel.READY
    )


def test_rollback_within_the_minor_version_starts(ctx, tmp_path, ensemble) -> None:
    peer = three_units(app_data={HIGHEST_VERSION_KEY: "4.1.8"})
    before = state(tmp_path, peer, jar="4.1.6")
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    assert out.unit_status.name != "blocked"
    assert "zookeeper" in out.get_container("pulsar").plan.services
    assert out.get_relation(peer.id).local_app_data[HIGHEST_VERSION_KEY] == "4.1.8"


def test_mixed_versions_show_the_refresh_in_progress_and_leader_records_the_highest(
    ctx, tmp_path, ensemble
) -> None:
    peer = three_units(versions={1: "4.1.6", 2: "4.1.8"})
    first = ctx.run(ctx.on.config_changed(), state(tmp_path, peer, jar="4.1.6"))
    out = ctx.run(ctx.on.update_status(), _running(first))
    assert out.unit_status.name == "active"
    assert out.unit_status.message.startswith("refresh in progress: 1/3 units on 4.1.8; ")
    assert out.get_relation(peer.id).local_app_data[HIGHEST_VERSION_KEY] == "4.1.8"


def test_view_layer_carries_a_readiness_gate_on_serving(ctx, tmp_path, ensemble) -> None:
    first = ctx.run(ctx.on.config_changed(), state(tmp_path, three_units()))
    out = ctx.run(ctx.on.update_status(), _running(first))
    gate = out.get_container("pulsar").plan.checks[SERVING_CHECK]
    assert gate.level == ops.pebble.CheckLevel.READY
    assert gate.threshold == 1
