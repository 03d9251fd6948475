"""Fuzz: random config, ZooKeeper data, secrets, leadership, Pebble and events never break a hook.

For every case: no exception escapes the charm; no injected value reaches a pushed file, the
Pebble layer or an exec argument; a bad config value blocks with the option's name and touches
nothing; refused relation or secret data names the relation and the field.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bookkeeper_charm import BookKeeperCharm
from bookkeeper_config import BookKeeperConfig
from bookkeeper_render import JOURNAL_DIR, LEDGERS_DIR
from hypothesis import given
from hypothesis import strategies as st
from ops import testing

from tests.fuzz_support import (
    FUZZ_SETTINGS,
    MARKER,
    maybe_bad,
    mostly,
    recording,
    refusal_problems,
)

CHARM_ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {
    "heap-mb",
    "direct-memory-mb",
    "journal-sync-data",
    "journal-max-group-wait-ms",
    "journal-max-size-mb",
    "write-cache-mb",
    "read-ahead-cache-mb",
    "minor-compaction-threshold",
    "minor-compaction-interval-s",
    "major-compaction-threshold",
    "major-compaction-interval-s",
    "gc-wait-time-ms",
    "log-level",
}
SOURCES = {"zookeeper"}
ZK = "pulsar-zookeeper-k8s-{}.pulsar-zookeeper-k8s-endpoints.m.svc.cluster.local:2181"
NO_CLUSTER = "BookKeeper metadata doesn't exist in zookeeper"
# Storage as Juju mounts it: owned by root, so the charm must chown it (exec may fail).
MOUNTS = {
    name: testing.Mount(location=location, source=tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    for name, location in (("journal", JOURNAL_DIR), ("ledgers", LEDGERS_DIR))
}

config_values: dict[str, st.SearchStrategy[Any]] = {
    "heap-mb": st.sampled_from([64, 128, 512, 2**31]),
    "direct-memory-mb": st.sampled_from([64, 512, 4096]),
    "journal-sync-data": st.booleans(),
    "journal-max-group-wait-ms": st.sampled_from([-1, 0, 1, 1001]),
    "write-cache-mb": st.sampled_from([8, 64, 1024]),
    "read-ahead-cache-mb": st.sampled_from([8, 64, 1024]),
    "minor-compaction-threshold": st.sampled_from([-0.5, 0.0, 0.2, 0.9, 1.5]),
    "major-compaction-threshold": st.sampled_from([0.0, 0.1, 0.5, 2.0]),
    "minor-compaction-interval-s": st.sampled_from([0, 10, 3600, 2**40]),
    "major-compaction-interval-s": st.sampled_from([0, 60, 86400]),
    "gc-wait-time-ms": st.sampled_from([0, 1000, 900000]),
    "log-level": maybe_bad(st.sampled_from(["info", "debug", "loud"]), 3),
}
valid_configs = st.sampled_from(
    [{}, {"heap-mb": 256, "log-level": "debug"}, {"journal-sync-data": False}]
)
configs = mostly(valid_configs, st.fixed_dictionaries({}, optional=config_values), 3)
zk_ids = [ZK.format(n) for n in range(3)]
hosts = st.lists(st.sampled_from(zk_ids), min_size=1, max_size=3, unique=True)
endpoints = mostly(maybe_bad(hosts.map(",".join)), st.sampled_from(["", "zk:99999", "a,,b"]))
zookeeper_secret = st.fixed_dictionaries(
    {
        "username": maybe_bad(st.sampled_from(["relation-7", "bookies"])),
        "password": maybe_bad(st.sampled_from(["s3cret-pw", "Zm9v_YmFy-LONG"])),
        "uris": st.just(f"{ZK.format(0)}/pulsar"),
    }
)
events = st.sampled_from(
    [
        "config_changed",
        "update_status",
        "leader_elected",
        "pebble_ready",
        "zookeeper_changed",
        "secret_changed",
        "upgrade_charm",
    ]
)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    zookeeper = st.fixed_dictionaries(
        {"database": maybe_bad(st.just("/pulsar")), "endpoints": endpoints}
    )
    return {
        "config": draw(configs),
        "leader": draw(st.booleans()),
        "can_connect": draw(mostly(st.just(True), st.just(False), 5)),
        "zookeeper": draw(mostly(zookeeper, st.none())),
        "zookeeper_secret": draw(mostly(zookeeper_secret, st.none())),
        "peer": draw(mostly(st.just(True), st.just(False))),
        "initialised": draw(st.booleans()),
        "storage_owned": draw(st.booleans()),
        "chown_rc": draw(st.sampled_from([0, 1])),
        "whatis": draw(st.sampled_from([(0, "InstanceId: 1"), (1, NO_CLUSTER), (1, "lost")])),
        "init_rc": draw(st.sampled_from([0, 1])),
        "events": draw(st.lists(events, min_size=1, max_size=2)),
    }


def build_state(case: dict[str, Any]) -> tuple[testing.State, dict[str, Any]]:
    secrets: list[testing.Secret] = []
    relations: list[Any] = []
    handles: dict[str, Any] = {}
    secret = None
    if case["zookeeper_secret"] is not None:
        secret = testing.Secret(tracked_content=case["zookeeper_secret"])
        secrets.append(secret)
        handles["secret"] = secret
    if case["zookeeper"] is not None:
        data = {**case["zookeeper"], "tls": "disabled"}
        if secret is not None:
            data["secret-user"] = secret.id
        relation = testing.Relation(
            "zookeeper", remote_app_name="pulsar-zookeeper-k8s", remote_app_data=data
        )
        relations.append(relation)
        handles["zookeeper"] = relation
    if case["peer"]:
        app_data = {"bookkeeper-initialised": "true"} if case["initialised"] else {}
        relations.append(testing.PeerRelation("cluster", local_app_data=app_data))
    whatis_rc, whatis_out = case["whatis"]
    container = testing.Container(
        "pulsar",
        can_connect=case["can_connect"],
        mounts={} if case["storage_owned"] else MOUNTS,
        execs={
            testing.Exec(["chown"], return_code=case["chown_rc"]),
            testing.Exec(
                ["/pulsar/bin/bookkeeper", "shell", "whatisinstanceid"],
                return_code=whatis_rc,
                stdout=whatis_out,
            ),
            testing.Exec(
                ["/pulsar/bin/bookkeeper", "shell", "initnewcluster"],
                return_code=case["init_rc"],
            ),
        },
    )
    state = testing.State(
        leader=case["leader"],
        model=testing.Model(name="m"),
        config=case["config"],
        relations=relations,
        secrets=secrets,
        containers={container},
    )
    return state, handles


def event_for(
    ctx: testing.Context, kind: str, handles: dict[str, Any], state: testing.State
) -> Any:
    """The event of ``kind`` on the objects of the current ``state`` (chained runs)."""
    if kind == "pebble_ready":
        return ctx.on.pebble_ready(state.get_container("pulsar"))
    if kind == "zookeeper_changed" and "zookeeper" in handles:
        return ctx.on.relation_changed(state.get_relation(handles["zookeeper"].id))
    if kind == "secret_changed" and "secret" in handles:
        return ctx.on.secret_changed(state.get_secret(id=handles["secret"].id))
    if kind in ("leader_elected", "upgrade_charm", "update_status"):
        return getattr(ctx.on, kind)()
    return ctx.on.config_changed()


def config_is_valid(config: dict[str, Any]) -> bool:
    try:
        BookKeeperConfig(**{k.replace("-", "_"): v for k, v in config.items()})
    except (ValueError, TypeError):
        return False
    return True


@FUZZ_SETTINGS
@given(case=cases())
def test_no_input_breaks_a_hook_or_reaches_the_workload(case):
    ctx = testing.Context(BookKeeperCharm, charm_root=CHARM_ROOT)
    state, handles = build_state(case)
    with recording() as recorder:
        for kind in case["events"]:
            # testing.Context raises UncaughtCharmError when the charm raises: the case fails.
            state = ctx.run(event_for(ctx, kind, handles, state), state)
            assert recorder.leaks() == [], case
            status = state.unit_status
            assert refusal_problems(status, OPTIONS, SOURCES) == []
            if not config_is_valid(case["config"]):
                assert status.name == "blocked"
                assert not recorder.touched()
    assert all(MARKER not in log.message for log in ctx.juju_log)
