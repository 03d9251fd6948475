"""Fuzz: random config, relation data, secrets, leadership, Pebble and events never break a hook.

For every case: no exception escapes the charm; no injected value reaches a pushed file, the
Pebble layer or an exec argument; a bad config value blocks with the option's name and touches
nothing; refused relation or secret data names the relation and the field.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pulsar_admin
import pulsar_replication
import pulsar_tokens
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from pulsar_charm import INTERNAL_SECRET_ID_KEY, INTERNAL_SECRET_LABEL, PulsarBrokerCharm
from pulsar_config import PulsarConfig

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
OPTIONS = {
    "cluster-name",
    "managed-ledger-ensemble-size",
    "managed-ledger-write-quorum",
    "managed-ledger-ack-quorum",
    "default-retention-time-minutes",
    "default-retention-size-mb",
    "backlog-quota-default-limit-mb",
    "heap-mb",
    "direct-memory-mb",
    "log-level",
    "functions-worker-enabled",
    "websocket-service-enabled",
    "replicated-namespaces",
}
SOURCES = {"zookeeper", "bookkeeper", "cluster", f"{INTERNAL_SECRET_LABEL} secret"}
ZK = "pulsar-zookeeper-k8s-{}.pulsar-zookeeper-k8s-endpoints.m.svc.cluster.local:2181"
BOOKIE = "bookkeeper-k8s-{}.bookkeeper-k8s-endpoints.m.svc.cluster.local:3181"
SIGNING_KEY = "c2lnbmluZy1rZXktZm9yLXRoZS11bml0LXRlc3RzLTAxMjM0NTY3"
ADMIN_TOKEN = pulsar_tokens.mint_token(SIGNING_KEY, "admin")
BROKER_TOKEN = pulsar_tokens.mint_token(SIGNING_KEY, "pulsar-broker")
# A signing-key rotation under way keeps the previous key and admin token in the secret.
OLD_SIGNING_KEY = "b2xkLXNpZ25pbmcta2V5LWZvci10aGUtZnV6ei10ZXN0cy0wMTIz"
OLD_ADMIN_TOKEN = pulsar_tokens.mint_token(OLD_SIGNING_KEY, "admin")
# Storage as Juju mounts it: owned by root, so the charm must chown it (exec may fail).
DATA_MOUNT = testing.Mount(location="/pulsar/data", source=tempfile.mkdtemp(prefix="fuzz-data-"))
JAVA_EDGES = [-2, -1, 0, 1, 2, 3, 2**31 - 1, 2**31, 2**63 // 2**20, 2**63 // 2**20 + 1, 2**62]

ints = st.one_of(st.sampled_from(JAVA_EDGES), st.integers(-5, 5000))
config_values: dict[str, st.SearchStrategy[Any]] = {
    "cluster-name": maybe_bad(st.sampled_from(["pulsar", "c1", "global", "-x", "a" * 65]), 3),
    "managed-ledger-ensemble-size": ints,
    "managed-ledger-write-quorum": ints,
    "managed-ledger-ack-quorum": ints,
    "default-retention-time-minutes": ints,
    "default-retention-size-mb": ints,
    "backlog-quota-default-limit-mb": ints,
    "heap-mb": st.sampled_from([64, 128, 512, 2**20, 2**20 + 1]),
    "direct-memory-mb": st.sampled_from([32, 64, 256, 2**21]),
    "log-level": maybe_bad(st.sampled_from(["info", "debug", "loud"]), 3),
    "functions-worker-enabled": st.booleans(),
    "websocket-service-enabled": st.booleans(),
    "replicated-namespaces": maybe_bad(st.sampled_from(["geo/orders", "a/b, c/d", ""]), 3),
}
valid_configs = st.sampled_from(
    [
        {},
        {"log-level": "debug", "websocket-service-enabled": False},
        {
            "managed-ledger-ensemble-size": 1,
            "managed-ledger-write-quorum": 1,
            "managed-ledger-ack-quorum": 1,
        },
        {"functions-worker-enabled": True, "default-retention-time-minutes": 2**31 - 1},
        {"backlog-quota-default-limit-mb": (2**63 - 1) // 2**20, "heap-mb": 256},
        {"replicated-namespaces": "geo/orders,geo/audit"},
    ]
)
configs = mostly(valid_configs, st.fixed_dictionaries({}, optional=config_values), 3)

zk_ids = [ZK.format(n) for n in range(3)]
hosts = st.lists(st.sampled_from(zk_ids), min_size=1, max_size=3, unique=True)
endpoints = mostly(maybe_bad(hosts.map(",".join)), st.just(f"{zk_ids[0]},{zk_ids[0]}"))
bookie_ids = [BOOKIE.format(n) for n in range(4)]
bookies = mostly(
    st.sampled_from([bookie_ids[:2], bookie_ids[:3], bookie_ids]),
    st.lists(maybe_bad(st.sampled_from(bookie_ids), 3), max_size=5),  # duplicates too
    4,
).map(json.dumps)
uris = mostly(
    st.sampled_from(
        [
            f"zk+hierarchical://{ZK.format(0)};{ZK.format(1)}/pulsar/ledgers",
            f"zk+hierarchical://{ZK.format(0)}/ledgers",
        ]
    ),
    st.sampled_from(["file:///tmp/ledgers", "zk+hierarchical://:2181/ledgers", ""]) | injected(),
)


def valid(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


zookeeper_secret = st.fixed_dictionaries(
    {
        "username": maybe_bad(valid("relation-3", "pulsar")),
        "password": maybe_bad(valid("s3cret-pw", "p4ss_w0rd-long-enough")),
        "uris": valid(f"{ZK.format(0)}/pulsar"),
    }
)
internal_secret = st.fixed_dictionaries(
    {
        "signing-key": maybe_bad(valid(SIGNING_KEY, "not*base64")),
        "admin-token": maybe_bad(valid(ADMIN_TOKEN)),
        "broker-token": maybe_bad(valid(BROKER_TOKEN)),
    },
    optional={
        "previous-signing-key": maybe_bad(valid(OLD_SIGNING_KEY, "not*base64")),
        "previous-admin-token": maybe_bad(valid(OLD_ADMIN_TOKEN)),
    },
)


replication_data = st.fixed_dictionaries(
    {
        "cluster-name": maybe_bad(valid("east", "pulsar"), 4),
        "broker-service-url": maybe_bad(valid("pulsar://east.m.svc.cluster.local:6650"), 6),
        "web-service-url": maybe_bad(valid("http://east.m.svc.cluster.local:8080"), 6),
    }
)


# What a proxy forwards on ``pulsar-proxy`` (client-requests): valid, refused, or unreadable.
forwarded_request = st.fixed_dictionaries(
    {"namespace": maybe_bad(valid("shop/orders", "nope"), 4)},
    optional={
        "extra-user-roles": maybe_bad(valid("produce", "root"), 4),
        "requested-secrets": maybe_bad(valid('["username", "token"]'), 4),
        "functions": valid("[]"),
    },
)
client_requests = mostly(
    st.dictionaries(valid("7", "8"), forwarded_request, max_size=2).map(json.dumps),
    valid("{", "[]", '{"x": {}}', '{"7": [1]}') | injected(),
    4,
)


class FakeReplicationAdmin:
    """Every admin call of the replication step answers ``status`` (0: not reachable)."""

    status = 204

    def __init__(self, *_args: Any, **_kwargs: Any):
        pass

    def __getattr__(self, _name: str) -> Any:
        status = self.status
        return lambda *_a, **_k: pulsar_admin.AdminResult(status, "{}" if status == 200 else "")


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "config": draw(configs),
        "leader": draw(st.booleans()),
        "can_connect": draw(mostly(st.just(True), st.just(False), 5)),
        "zookeeper": draw(
            mostly(
                st.fixed_dictionaries(
                    {
                        "database": maybe_bad(valid("/pulsar"), 8),
                        "endpoints": endpoints,
                        "tls": valid("disabled"),
                    }
                ),
                st.none(),
            )
        ),
        "zookeeper_secret": draw(mostly(zookeeper_secret, st.none())),
        "bookkeeper": draw(
            mostly(
                st.fixed_dictionaries(
                    {"metadata-service-uri": uris, "bookies": bookies, "ready-bookies": bookies}
                ),
                st.none(),
            )
        ),
        "peer": draw(mostly(st.just(True), st.just(False))),
        "initialised": draw(mostly(st.just("pulsar"), st.sampled_from([None, "c1"]) | injected())),
        "internal": draw(mostly(internal_secret, st.none())),
        "record_internal_id": draw(mostly(st.just("yes"), st.sampled_from(["no", "dangling"]))),
        "replication": draw(mostly(replication_data, st.none(), 2)),
        "proxy_requests": draw(mostly(client_requests, st.none(), 2)),
        "replication_token": draw(mostly(maybe_bad(valid("peer.token.x")), st.none())),
        "admin_status": draw(st.sampled_from([0, 200, 204, 404, 412, 500])),
        "storage_owned": draw(st.booleans()),
        "chown_rc": draw(st.sampled_from([0, 1])),
        "init_rc": draw(st.sampled_from([0, 1])),
        "events": draw(
            st.lists(
                st.sampled_from(
                    [
                        "config_changed",
                        "update_status",
                        "leader_elected",
                        "pebble_ready",
                        "zookeeper_changed",
                        "bookkeeper_changed",
                        "secret_changed",
                        "upgrade_charm",
                        "replication_changed",
                        "replication_broken",
                        "proxy_changed",
                        "proxy_broken",
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
    zk_secret = None
    if case["zookeeper_secret"] is not None:
        zk_secret = testing.Secret(tracked_content=case["zookeeper_secret"])
        secrets.append(zk_secret)
        handles["secret"] = zk_secret
    if case["zookeeper"] is not None:
        data = dict(case["zookeeper"])
        if zk_secret is not None:
            data["secret-user"] = zk_secret.id
        relation = testing.Relation(
            "zookeeper", remote_app_name="pulsar-zookeeper-k8s", remote_app_data=data
        )
        relations.append(relation)
        handles["zookeeper"] = relation
    if case["bookkeeper"] is not None:
        relation = testing.Relation(
            "bookkeeper", remote_app_name="bookkeeper-k8s", remote_app_data=case["bookkeeper"]
        )
        relations.append(relation)
        handles["bookkeeper"] = relation
    internal = None
    if case["internal"] is not None:
        internal = testing.Secret(
            tracked_content=case["internal"], owner="app", label=INTERNAL_SECRET_LABEL
        )
        secrets.append(internal)
    if case["replication"] is not None:
        data = dict(case["replication"])
        if case["replication_token"] is not None:
            token_secret = testing.Secret(tracked_content={"token": case["replication_token"]})
            secrets.append(token_secret)
            data["token-secret-id"] = token_secret.id
        relation = testing.Relation(
            "replication", remote_app_name="pulsar-east", remote_app_data=data
        )
        relations.append(relation)
        handles["replication"] = relation
    if case["proxy_requests"] is not None:
        relation = testing.Relation(
            "pulsar-proxy",
            remote_app_name="pulsar-proxy-k8s",
            remote_app_data={"client-requests": case["proxy_requests"]},
        )
        relations.append(relation)
        handles["proxy"] = relation
    if case["peer"]:
        app_data: dict[str, str] = {}
        if case["record_internal_id"] == "yes" and internal is not None:
            app_data[INTERNAL_SECRET_ID_KEY] = internal.id
        elif case["record_internal_id"] == "dangling":
            app_data[INTERNAL_SECRET_ID_KEY] = "secret:d0esn0texist0000000"
        if case["initialised"] is not None:
            app_data["cluster-metadata-initialised"] = "true"
            app_data["cluster-metadata-cluster-name"] = case["initialised"]
        relations.append(testing.PeerRelation("cluster", local_app_data=app_data))
    mounts = {} if case["storage_owned"] else {"data": DATA_MOUNT}
    container = testing.Container(
        "pulsar",
        can_connect=case["can_connect"],
        mounts=mounts,
        execs={
            testing.Exec(["chown"], return_code=case["chown_rc"]),
            testing.Exec(["/pulsar/bin/pulsar"], return_code=case["init_rc"], stdout="out"),
        },
    )
    handles["container"] = container
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
    if kind == "bookkeeper_changed" and "bookkeeper" in handles:
        return ctx.on.relation_changed(state.get_relation(handles["bookkeeper"].id))
    if kind == "replication_changed" and "replication" in handles:
        return ctx.on.relation_changed(state.get_relation(handles["replication"].id))
    if kind == "replication_broken" and "replication" in handles:
        return ctx.on.relation_broken(state.get_relation(handles["replication"].id))
    if kind == "proxy_changed" and "proxy" in handles:
        return ctx.on.relation_changed(state.get_relation(handles["proxy"].id))
    if kind == "proxy_broken" and "proxy" in handles:
        return ctx.on.relation_broken(state.get_relation(handles["proxy"].id))
    if kind == "secret_changed" and "secret" in handles:
        return ctx.on.secret_changed(state.get_secret(id=handles["secret"].id))
    if kind in ("leader_elected", "upgrade_charm", "update_status"):
        return getattr(ctx.on, kind)()
    return ctx.on.config_changed()


def config_is_valid(config: dict[str, Any]) -> bool:
    try:
        PulsarConfig(**{k.replace("-", "_"): v for k, v in config.items()})
    except (ValueError, TypeError):
        return False
    return True


@FUZZ_SETTINGS
@given(case=cases())
def test_no_input_breaks_a_hook_or_reaches_the_workload(case):
    ctx = testing.Context(PulsarBrokerCharm, charm_root=CHARM_ROOT)
    state, handles = build_state(case)
    FakeReplicationAdmin.status = case["admin_status"]
    fake_admin = mock.patch.object(pulsar_replication, "ReplicationAdmin", FakeReplicationAdmin)
    with recording() as recorder, fake_admin:
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
