"""Closing the plain-text client port 2181 (``tls-plaintext-enabled=false``): the pure rules,
the reconfig lines, and the reconcile that moves the listeners without restarting a server."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ops
import pytest
from charms.pulsar_k8s.v0.validation import InvalidField
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from test_zookeeper_clients import address, running
from test_zookeeper_tls import answered, certificates, single
from zookeeper_peer_state import Peer, ZooKeeperPeerState, parse
from zookeeper_plain_port import (
    CLOSED,
    OPEN,
    PLAIN_CLIENTS_CHECK,
    client_moves,
    plain_connection_count,
    plan_plain_port,
)
from zookeeper_render import DYNAMIC_CONF_PATH, render_dynamic_config, server_line

APP = "pulsar-zookeeper-k8s"

# ---- the rule ---------------------------------------------------------------------------------

counts = st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=5)


@given(
    current=st.sampled_from([OPEN, CLOSED]),
    allowed=st.booleans(),
    everywhere=st.booleans(),
    tls_only=st.booleans(),
    plain=counts,
)
def test_2181_closes_only_when_nobody_needs_it_and_stays_closed(
    current: str, allowed: bool, everywhere: bool, tls_only: bool, plain: list[int | None]
):
    target = plan_plain_port(
        current,
        plaintext_allowed=allowed,
        tls_everywhere=everywhere,
        tls_only_quorum=tls_only,
        plain_clients=plain,
    )
    if allowed or not everywhere:
        # the option, or a member without TLS (certificates removed, a new unit): open
        assert target == OPEN
    elif current == CLOSED:
        # a client still trying 2181 afterwards is refused, not a reason to reopen
        assert target == CLOSED
    else:
        # closing waits for the TLS-only quorum and for every member to count no plain client
        nobody = bool(plain) and all(count == 0 for count in plain)
        assert (target == CLOSED) == (tls_only and nobody)


def test_closed_listeners_move_to_the_pods_loopback_one_port_per_server():
    assert server_line(1, "zk-0.x") == "server.1=zk-0.x:2888:3888:participant;zk-0.x:2181"
    assert server_line(3, "zk-2.x", plain_open=False) == (
        "server.3=zk-2.x:2888:3888:participant;127.0.0.1:21813"
    )
    assert render_dynamic_config({1: "zk-0.x"}, plain_open=False) == (
        "server.1=zk-0.x:2888:3888:participant;127.0.0.1:21811\n"
    )


MEMBERS = {1: "zk-0.x", 2: "zk-1.x", 3: "zk-2.x"}


@given(start=st.sampled_from([OPEN, CLOSED]), target=st.sampled_from([OPEN, CLOSED]))
def test_the_reconfig_lines_move_exactly_the_members_not_yet_where_wanted(start, target):
    config = render_dynamic_config(MEMBERS, start == OPEN) + "version=100000004\n"
    moves = client_moves(config, MEMBERS, target)
    assert len(moves) == (0 if start == target else 3)
    # after the reconfig the config is where wanted: nothing more to move
    assert client_moves(render_dynamic_config(MEMBERS, target == OPEN), MEMBERS, target) == []


def test_a_member_half_moved_by_an_interrupted_hook_is_moved_alone():
    config = (
        render_dynamic_config({1: "zk-0.x", 2: "zk-1.x"}, plain_open=False)
        + render_dynamic_config({3: "zk-2.x"}, plain_open=True)
        + "version=100000004\n"
    )
    assert client_moves(config, MEMBERS, CLOSED) == [server_line(3, "zk-2.x", plain_open=False)]


@pytest.mark.parametrize(
    ("answer", "count"),
    [
        ('{"connections" : [ ], "secure_connections" : [ {} ], "error" : null}', 0),
        ('{"connections" : [ {}, {} ], "secure_connections" : [ ], "error" : null}', 2),
        ('{"command" : "connections", "error" : "not currently serving requests"}', None),
        ("", None),
        ("[1]", None),
        ('{"connections" : 3, "error" : null}', None),
    ],
)
def test_only_a_real_connections_answer_counts(answer: str, count: int | None):
    assert plain_connection_count(answer) == count


def test_a_bad_plain_port_record_is_refused_and_a_bad_count_reads_as_uncounted():
    with pytest.raises(InvalidField, match="plain-client-port"):
        parse({"plain-client-port": "ajar"}, {})
    units = {f"{APP}/1": {"address": address(1), "plain-clients": "-1"}}
    state = parse({}, units)
    assert state.plain_client_port == OPEN
    assert state.peers[2].plain_clients is None


# ---- the reconcile ------------------------------------------------------------------------


def peer_of(state: testing.State) -> testing.PeerRelation:
    peer = next(r for r in state.relations if r.endpoint == "cluster")
    assert isinstance(peer, testing.PeerRelation)
    return peer


def granted(state: testing.State) -> testing.State:
    """The lock of a one-unit application: grant what it asks."""
    peer = peer_of(state)
    if not peer.local_unit_data.get("restart-request"):
        return state
    app = {**peer.local_app_data, "restart-granted": f"{APP}/0"}
    others = {r for r in state.relations if r.id != peer.id}
    return dataclasses.replace(
        state, relations={*others, dataclasses.replace(peer, local_app_data=app)}
    )


def on_tls(ctx, tmp_path: Path, **config: object) -> testing.State:
    """A single TLS member walked to the TLS-only quorum (tls-plaintext-enabled as given)."""
    state = answered(ctx, single(tmp_path, certificates()))
    state = dataclasses.replace(state, config=dict(config))
    out = running(ctx.run(ctx.on.config_changed(), state))
    for _ in range(6):
        out = granted(running(ctx.run(ctx.on.update_status(), out)))
    return out


def plain_clients_check(state: testing.State) -> str:
    checks = state.get_container("pulsar").plan.checks
    return str(checks[PLAIN_CLIENTS_CHECK].exec["command"])  # type: ignore[index]


def test_tls_everywhere_and_no_plain_client_closes_2181_without_a_restart(
    ctx, tmp_path, ensemble, pebble_calls
):
    out = on_tls(ctx, tmp_path)
    peer = peer_of(out)
    assert peer.local_app_data["quorum-tls-stage"] == "tls"
    assert ("move-client-addresses", CLOSED) in ensemble.calls
    assert peer.local_app_data["plain-client-port"] == CLOSED
    # the Kubernetes Service offers 2182 only; the leader's session went over TLS
    assert {p.port for p in out.opened_ports} == {2182}
    assert all(ensemble.tls_cas)
    assert isinstance(out.unit_status, ops.ActiveStatus), out.unit_status
    # closed: nothing counts plain clients any more, and nothing changes again
    assert peer.local_unit_data.get("plain-clients", "") == ""
    assert "exit 0" in plain_clients_check(out)
    pushes, restarts = list(pebble_calls.pushes), pebble_calls.restarts
    calls = len(ensemble.calls)
    again = running(ctx.run(ctx.on.update_status(), out))
    assert (pebble_calls.pushes, pebble_calls.restarts) == (pushes, restarts)
    assert not [c for c in ensemble.calls[calls:] if c[0] == "move-client-addresses"]
    assert again.unit_status == out.unit_status


def test_plain_clients_keep_2181_open_and_say_so_until_they_leave(
    ctx, tmp_path, ensemble, pebble_calls
):
    ensemble.plain_connections = 2  # a client not yet restarted onto 2182
    out = on_tls(ctx, tmp_path)
    peer = peer_of(out)
    assert peer.local_app_data.get("plain-client-port", OPEN) == OPEN
    assert not any(c[0] == "move-client-addresses" for c in ensemble.calls)
    assert peer.local_unit_data["plain-clients"] == "2"
    assert "2181 open until 2 plain-text client connection(s) leave" in out.unit_status.message
    # the check that wakes the unit when they leave is armed (it fails while they are there)
    assert "/commands/connections" in plain_clients_check(out)
    restarts = pebble_calls.restarts
    # the last one leaves: the check recovers, a real event
    ensemble.plain_connections = 0
    check = testing.CheckInfo(PLAIN_CLIENTS_CHECK, status=ops.pebble.CheckStatus.UP, threshold=1)
    container = dataclasses.replace(out.get_container("pulsar"), check_infos={check})
    out = ctx.run(
        ctx.on.pebble_check_recovered(container, check),
        dataclasses.replace(out, containers={container}),
    )
    assert peer_of(out).local_app_data["plain-client-port"] == CLOSED
    assert pebble_calls.restarts == restarts


def test_the_option_reopens_2181_without_a_restart(ctx, tmp_path, ensemble, pebble_calls):
    out = on_tls(ctx, tmp_path)
    restarts = pebble_calls.restarts
    ensemble.calls.clear()
    reopened = running(
        ctx.run(
            ctx.on.config_changed(),
            dataclasses.replace(out, config={"tls-plaintext-enabled": True}),
        )
    )
    assert ("move-client-addresses", OPEN) in ensemble.calls
    assert peer_of(reopened).local_app_data["plain-client-port"] == OPEN
    assert {p.port for p in reopened.opened_ports} == {2181, 2182}
    assert pebble_calls.restarts == restarts


def test_a_server_started_while_closed_binds_its_plain_listener_to_loopback(
    ctx, tmp_path, ensemble, pebble_calls
):
    out = on_tls(ctx, tmp_path)
    # the pod is replaced: a new container starts the server from the charm's files
    stopped = dataclasses.replace(
        out.get_container("pulsar"), service_statuses={}, layers={}, check_infos=frozenset()
    )
    ctx.run(ctx.on.pebble_ready(stopped), dataclasses.replace(out, containers={stopped}))
    dynamic = (tmp_path / DYNAMIC_CONF_PATH.removeprefix("/pulsar/")).read_text()
    assert dynamic == f"server.1={address(0)}:2888:3888:participant;127.0.0.1:21811\n"


def test_removing_the_certificates_reopens_2181_through_the_pod_local_listener(
    ctx, tmp_path, ensemble, pebble_calls
):
    out = on_tls(ctx, tmp_path)
    relation = next(r for r in out.relations if r.endpoint == "certificates")
    gone = dataclasses.replace(out, relations={r for r in out.relations if r.id != relation.id})
    ensemble.calls.clear()
    ensemble.tls_cas.clear()
    after = ctx.run(
        ctx.on.relation_broken(relation),
        dataclasses.replace(gone, relations={*gone.relations, relation}),
    )
    # no certificate: the super session is plain text, to its own pod's loopback only
    assert ("connect", ("127.0.0.1:21811",)) in ensemble.calls
    assert ("move-client-addresses", OPEN) in ensemble.calls
    assert ensemble.tls_cas and set(ensemble.tls_cas) == {""}
    assert peer_of(after).local_app_data["plain-client-port"] == OPEN
    assert {p.port for p in after.opened_ports} == {2181}


def test_a_failed_reconfig_records_nothing_and_waits(ctx, tmp_path, ensemble, pebble_calls):
    ensemble.unreachable = True  # the reconfig cannot be made: 2181 is not recorded closed
    out = on_tls(ctx, tmp_path)
    assert peer_of(out).local_app_data.get("plain-client-port", OPEN) == OPEN
    assert out.unit_status == ops.WaitingStatus("waiting for the ensemble: connection refused")


def test_clients_are_moved_to_2182_only_once_the_quorum_walk_is_done(
    ctx, tmp_path, ensemble, pebble_calls
):
    """A running plain member gets its certificate: the clients keep 2181 through the quorum's
    stages (so their own restarts do not overlap the servers' rolls), then get 2182."""
    from test_zookeeper_tls import KAFKA

    kafka = testing.Relation(
        "zookeeper", remote_app_name=KAFKA["application"], remote_app_data=KAFKA["app"]
    )
    plain = running(ctx.run(ctx.on.config_changed(), single(tmp_path, kafka)))
    for _ in range(3):
        plain = running(ctx.run(ctx.on.update_status(), plain))
    assert plain.get_relation(kafka.id).local_app_data["endpoints"] == f"{address(0)}:2181"
    relation = certificates()
    out = answered(ctx, dataclasses.replace(plain, relations={*plain.relations, relation}))
    seen = []
    for _ in range(8):
        out = granted(running(ctx.run(ctx.on.update_status(), out)))
        # the stage the leader set, and the one the member's running server started with
        stage = peer_of(out).local_app_data.get("quorum-tls-stage")
        running_stage = peer_of(out).local_unit_data.get("quorum-tls")
        endpoints = out.get_relation(kafka.id).local_app_data["endpoints"]
        seen.append((stage, running_stage, endpoints))
    walking = {endpoints for stage, running, endpoints in seen if (stage, running) != ("tls",) * 2}
    assert walking == {f"{address(0)}:2181"}
    assert seen[-1] == ("tls", "tls", f"{address(0)}:2182")


def test_the_walk_is_done_only_once_every_member_runs_the_tls_stage():
    from zookeeper_charm import _quorum_on_tls

    def state(stage: str, running: dict[int, str]) -> ZooKeeperPeerState:
        peers = {
            sid: Peer(sid - 1, f"zk-{sid - 1}.x", True, frozenset(), quorum_tls=stage_run)
            for sid, stage_run in running.items()
        }
        return ZooKeeperPeerState(members=MEMBERS, peers=peers, quorum_tls_stage=stage)

    assert _quorum_on_tls(state("tls", {1: "tls", 2: "tls", 3: "tls"}), MEMBERS)
    # the leader set the stage; member 3 has not restarted onto it yet
    assert not _quorum_on_tls(state("tls", {1: "tls", 2: "tls", 3: "tls-unified"}), MEMBERS)
    assert not _quorum_on_tls(state("tls", {1: "tls", 2: "tls"}), MEMBERS)  # 3 unknown
    assert not _quorum_on_tls(state("tls-unified", {1: "tls", 2: "tls", 3: "tls"}), MEMBERS)
