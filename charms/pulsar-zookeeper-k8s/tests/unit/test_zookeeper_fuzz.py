"""Fuzz: random config, peer data, secrets, client requests, leadership, Pebble and events.

For every case: no exception escapes the charm; no injected value reaches a pushed file (the
JAAS file, the static or dynamic config), the Pebble layer or an exec argument, nor a
``server.N=`` line handed to ZooKeeper; a bad config value blocks with the option's name and
touches nothing; refused peer or secret data names the relation and the field.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from zookeeper_charm import INTERNAL_SECRET_ID_KEY, INTERNAL_SECRET_LABEL, ZooKeeperCharm
from zookeeper_config import ZooKeeperConfig

from tests.fuzz_support import (
    FUZZ_SETTINGS,
    MARKER,
    injected,
    maybe_bad,
    mostly,
    recording,
    refusal_problems,
)

CHARM_ROOT = Path(__file__).resolve().parents[2]
META = yaml.safe_load((CHARM_ROOT / "charmcraft.yaml").read_text())
APP = "pulsar-zookeeper-k8s"
OPTIONS = {
    "tick-time",
    "init-limit",
    "sync-limit",
    "max-client-connections",
    "autopurge-snap-retain-count",
    "autopurge-purge-interval",
    "heap-mb",
    "log-level",
    "acl-policy",
    "tls-plaintext-enabled",
}
SOURCES = {"cluster", f"{INTERNAL_SECRET_LABEL} secret"}
REQUEST = {
    "database": "/pulsar",
    "requested-secrets": json.dumps(["username", "password", "uris"]),
    "extra-user-roles": "cdrwa",
}
# Storage as Juju mounts it: owned by root, so the charm must chown it (exec may fail).
DATA_MOUNT = testing.Mount(location="/pulsar/data", source=tempfile.mkdtemp(prefix="fuzz-zk-"))


def address(n: int) -> str:
    return f"{APP}-{n}.{APP}-endpoints.m.svc.cluster.local"


config_values: dict[str, st.SearchStrategy[Any]] = {
    "tick-time": st.sampled_from([50, 2000, 60001]),
    "init-limit": st.sampled_from([0, 10, 1001]),
    "sync-limit": st.sampled_from([0, 5]),
    "max-client-connections": st.sampled_from([-1, 60]),
    "autopurge-snap-retain-count": st.sampled_from([2, 3]),
    "autopurge-purge-interval": st.sampled_from([0, 1, 8761]),
    "heap-mb": st.sampled_from([64, 512]),
    "log-level": maybe_bad(st.sampled_from(["info", "loud"]), 3),
    "acl-policy": maybe_bad(st.sampled_from(["exclusive", "shared", "open"]), 3),
    "tls-plaintext-enabled": st.booleans(),
}
valid_configs = st.sampled_from([{}, {"tick-time": 3000}, {"heap-mb": 256, "log-level": "debug"}])
configs = mostly(valid_configs, st.fixed_dictionaries({}, optional=config_values), 3)
passwords = maybe_bad(st.sampled_from(["super-pw", "Zm9v_YmFy-LONG"]))


def peer_unit(n: int) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {
            "address": maybe_bad(st.just(address(n))),
            "server-id": st.just(str(n + 1)),
            "started": st.sampled_from(["true", "false"]),
            "users": st.sampled_from(["[]", '["relation-9"]', "not json"]),
            "plain-clients": maybe_bad(st.sampled_from(["", "0", "3"])),
        }
    )


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    members = {str(n + 1): address(n) for n in range(draw(st.integers(0, 3)))}
    if members and draw(mostly(st.just(False), st.just(True))):
        members["2"] = draw(injected())
    return {
        "config": draw(configs),
        "leader": draw(st.booleans()),
        "can_connect": draw(mostly(st.just(True), st.just(False), 5)),
        "peer": draw(mostly(st.just(True), st.just(False), 12)),
        "members": members,
        "plain_client_port": draw(mostly(st.none(), st.sampled_from(["open", "closed", "ajar"]))),
        "peers": {n: draw(peer_unit(n)) for n in range(1, draw(st.integers(0, 2)) + 1)},
        "internal": draw(
            mostly(
                st.fixed_dictionaries({"super-password": passwords, "quorum-password": passwords}),
                st.none(),
            )
        ),
        "record_internal_id": draw(mostly(st.just("yes"), st.sampled_from(["no", "dangling"]))),
        "client": draw(st.booleans()),
        "client_password": draw(mostly(passwords, st.none())),
        "storage_owned": draw(st.booleans()),
        "chown_rc": draw(st.sampled_from([0, 1])),
        "running": draw(st.booleans()),
        "events": draw(
            st.lists(
                st.sampled_from(
                    [
                        "config_changed",
                        "update_status",
                        "leader_elected",
                        "pebble_ready",
                        "peer_changed",
                        "client_changed",
                        "upgrade_charm",
                    ]
                ),
                min_size=1,
                max_size=2,
            )
        ),
    }


def build_state(case: dict[str, Any]) -> tuple[testing.State, dict[str, Any]]:
    secrets: list[testing.Secret] = []
    relations: list[Any] = []
    handles: dict[str, Any] = {}
    internal = None
    if case["internal"] is not None:
        internal = testing.Secret(
            tracked_content=case["internal"], owner="app", label=INTERNAL_SECRET_LABEL
        )
        secrets.append(internal)
    if case["client"]:
        client = testing.Relation("zookeeper", remote_app_name="pulsar", remote_app_data=REQUEST)
        relations.append(client)
        handles["client"] = client
        if case["client_password"] is not None:
            content = {"username": f"relation-{client.id}", "password": case["client_password"]}
            label = f"zookeeper-client-{client.id}"
            secrets.append(testing.Secret(tracked_content=content, owner="app", label=label))
    if case["peer"]:
        app_data = {"members": json.dumps(case["members"])} if case["members"] else {}
        if case["plain_client_port"] is not None:
            app_data["plain-client-port"] = case["plain_client_port"]
        if case["record_internal_id"] == "yes" and internal is not None:
            app_data[INTERNAL_SECRET_ID_KEY] = internal.id
        elif case["record_internal_id"] == "dangling":
            app_data[INTERNAL_SECRET_ID_KEY] = "secret:d0esn0texist0000000"
        peer = testing.PeerRelation("cluster", local_app_data=app_data, peers_data=case["peers"])
        relations.append(peer)
        handles["peer"] = peer
    container = testing.Container(
        "pulsar",
        can_connect=case["can_connect"],
        mounts={} if case["storage_owned"] else {"data": DATA_MOUNT},
        execs={testing.Exec(["chown"], return_code=case["chown_rc"])},
        service_statuses={"zookeeper": testing.pebble.ServiceStatus.ACTIVE}
        if case["running"]
        else {},
    )
    state = testing.State(
        leader=case["leader"],
        model=testing.Model(name="m"),
        config=case["config"],
        relations=relations,
        secrets=secrets,
        containers={container},
        planned_units=1 + len(case["peers"]),
    )
    return state, handles


def event_for(
    ctx: testing.Context, kind: str, handles: dict[str, Any], state: testing.State
) -> Any:
    """The event of ``kind`` on the objects of the current ``state`` (chained runs)."""
    if kind == "pebble_ready":
        return ctx.on.pebble_ready(state.get_container("pulsar"))
    if kind == "peer_changed" and "peer" in handles:
        peer = state.get_relation(handles["peer"].id)
        assert isinstance(peer, testing.PeerRelation)
        if peer.peers_data:
            return ctx.on.relation_changed(peer, remote_unit=min(peer.peers_data))
    if kind == "client_changed" and "client" in handles:
        return ctx.on.relation_changed(state.get_relation(handles["client"].id))
    if kind in ("leader_elected", "upgrade_charm", "update_status"):
        return getattr(ctx.on, kind)()
    return ctx.on.config_changed()


def config_is_valid(config: dict[str, Any]) -> bool:
    try:
        ZooKeeperConfig(**{k.replace("-", "_"): v for k, v in config.items()})
    except (ValueError, TypeError):
        return False
    return True


@FUZZ_SETTINGS
@given(case=cases())
def test_no_input_breaks_a_hook_or_reaches_the_workload(case, ensemble):
    ensemble.view.clear()
    ensemble.calls.clear()
    ctx = testing.Context(ZooKeeperCharm, meta=META, app_name=APP, charm_root=CHARM_ROOT)
    state, handles = build_state(case)
    with recording() as recorder:
        for kind in case["events"]:
            # testing.Context raises UncaughtCharmError when the charm raises: the case fails.
            state = ctx.run(event_for(ctx, kind, handles, state), state)
            assert recorder.leaks() == [], case
            assert not any(MARKER in json.dumps(call) for call in ensemble.calls)
            status = state.unit_status
            assert refusal_problems(status, OPTIONS, SOURCES) == []
            if not config_is_valid(case["config"]):
                assert status.name == "blocked"
                assert not recorder.touched()
    assert all(MARKER not in log.message for log in ctx.juju_log)
