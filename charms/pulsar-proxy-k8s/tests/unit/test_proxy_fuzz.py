"""Fuzz: random config, broker offers, secrets, leadership, Pebble and events never break a hook.

Client relations too: random ``pulsar`` requests, brokers' ``client-answers`` and token secrets
(whatever the brokers or the client write, the proxy relays or refuses without a hook error).

For every case: no exception escapes the charm; no injected value reaches a pushed file, the
Pebble layer or an exec argument; a bad config value blocks with the option's name and touches
nothing; refused relation or secret data names the relation (or the secret) and the field.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from proxy_charm import PulsarProxyCharm
from proxy_config import ProxyConfig

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
    "heap-mb",
    "direct-memory-mb",
    "websocket-service-enabled",
    "max-concurrent-inbound-connections",
    "log-level",
    "tls-plaintext-enabled",
    "tls-extra-sans",
}
SOURCES = {"pulsar-proxy", "pulsar-proxy secret"}
BROKERS = "pulsar-k8s.m.svc.cluster.local"
ZK = "pulsar-zookeeper-k8s-{}.pulsar-zookeeper-k8s-endpoints.m.svc.cluster.local:2181"
KEY = base64.b64encode(b"k" * 32).decode()

config_values: dict[str, st.SearchStrategy[Any]] = {
    "heap-mb": st.sampled_from([64, 128, 512, 2**31]),
    "direct-memory-mb": st.sampled_from([32, 64, 512]),
    "websocket-service-enabled": st.booleans(),
    "max-concurrent-inbound-connections": st.sampled_from([0, 1, 10000, 10**7]),
    "log-level": maybe_bad(st.sampled_from(["info", "debug", "loud"]), 3),
    "tls-plaintext-enabled": st.booleans(),
    "tls-extra-sans": maybe_bad(st.sampled_from(["", "proxy.example.com", "10.0.0.1"]), 3),
}
CA = "-----BEGIN CERTIFICATE-----\n" + "QUJD" * 16 + "\n-----END CERTIFICATE-----\n"
valid_configs = st.sampled_from([{}, {"heap-mb": 256, "log-level": "debug"}])
configs = mostly(valid_configs, st.fixed_dictionaries({}, optional=config_values), 3)
stores = st.lists(st.sampled_from([ZK.format(n) for n in range(3)]), min_size=1, unique=True)
offer_data = st.fixed_dictionaries(
    {
        "cluster-name": maybe_bad(st.sampled_from(["pulsar", "east-1"])),
        "broker-service-url": maybe_bad(st.just(f"pulsar://{BROKERS}:6650")),
        "web-service-url": maybe_bad(st.just(f"http://{BROKERS}:8080")),
        "metadata-store": maybe_bad(stores.map(lambda h: f"zk:{','.join(h)}/pulsar")),
    },
    # The brokers' TLS (LIBPATCH 4): all three, some, or none.
    optional={
        "broker-service-url-tls": maybe_bad(st.just(f"pulsar+ssl://{BROKERS}:6651")),
        "web-service-url-tls": maybe_bad(st.just(f"https://{BROKERS}:8443")),
        "tls-ca": maybe_bad(st.just(CA)),
    },
)
secret_content = st.fixed_dictionaries(
    {
        "token": maybe_bad(st.just("aGVhZA.cGF5bG9hZA.c2ln")),
        "token-key": maybe_bad(st.sampled_from([KEY, "c2hvcnQ="])),
        "zookeeper-username": maybe_bad(st.just("relation-4")),
        "zookeeper-password": maybe_bad(st.just("zk-s3cret")),
    }
)
client_request = st.fixed_dictionaries(
    {"namespace": maybe_bad(st.sampled_from(["shop/orders", "a/b", "nope", "../x"]), 4)},
    optional={
        "extra-user-roles": maybe_bad(st.sampled_from(["produce", "consume,admin", "root"]), 4),
        "requested-secrets": maybe_bad(st.just('["username", "token"]'), 4),
        "functions": st.sampled_from(["[]", '[{"name": "f"}]', "{"]),
        "topic": st.just("x"),
    },
)
answer_status = st.fixed_dictionaries(
    {
        "code": st.sampled_from([4001, 5002, 0, "x"]),
        "message": maybe_bad(st.just("why"), 3),
        "resolution": st.just("fix"),
    }
)
answer_entry = st.fixed_dictionaries(
    {},
    optional={
        "namespace": maybe_bad(st.sampled_from(["shop/orders", "a/b"]), 4),
        "secret-user": st.sampled_from(["SECRET", "secret:nope", "not a uri"]),
        "status": st.lists(answer_status, max_size=2) | st.just("x"),  # type: ignore[operator]
    },
)
client_token = st.fixed_dictionaries(
    {
        "username": maybe_bad(st.sampled_from(["proxy-3-relation-7", "relation-1"]), 4),
        "token": maybe_bad(st.just("aGVhZA.cGF5bG9hZA.c2ln"), 4),
    }
)
events = st.sampled_from(
    [
        "client_changed",
        "client_broken",
        "config_changed",
        "update_status",
        "leader_elected",
        "pebble_ready",
        "proxy_changed",
        "secret_changed",
        "upgrade_charm",
    ]
)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "config": draw(configs),
        "leader": draw(st.booleans()),
        "can_connect": draw(mostly(st.just(True), st.just(False), 5)),
        "offer": draw(mostly(offer_data, st.none())),
        "secret": draw(mostly(secret_content, st.none())),
        "peer": draw(mostly(st.just(True), st.just(False))),
        "events": draw(st.lists(events, min_size=1, max_size=2)),
        "client": draw(mostly(client_request, st.none(), 3)),
        "answers": draw(
            mostly(
                st.lists(answer_entry, max_size=1),
                st.sampled_from(["{", "[]", '{"x": {}}']) | injected(),
                4,
            )
        ),
        "client_token": draw(mostly(client_token, st.none(), 4)),
    }


def build_state(case: dict[str, Any]) -> tuple[testing.State, dict[str, Any]]:
    secrets: list[testing.Secret] = []
    relations: list[Any] = []
    handles: dict[str, Any] = {}
    secret = None
    if case["secret"] is not None:
        secret = testing.Secret(tracked_content=case["secret"])
        secrets.append(secret)
        handles["secret"] = secret
    client = None
    if case["client"] is not None:
        client = testing.Relation("pulsar", remote_app_name="shop", remote_app_data=case["client"])
        relations.append(client)
        handles["client"] = client
    token_secret = None
    if case["client_token"] is not None:
        token_secret = testing.Secret(tracked_content=case["client_token"])
        secrets.append(token_secret)
    if case["offer"] is not None:
        data = dict(case["offer"])
        if secret is not None:
            data["secret-proxy"] = secret.id
        answers = case["answers"]
        if isinstance(answers, list):
            uri = token_secret.id if token_secret else "secret:gone"
            entries = [
                {k: (uri if v == "SECRET" else v) for k, v in entry.items()} for entry in answers
            ]
            key = str(client.id) if client else "7"
            answers = json.dumps({key: entries[0]} if entries else {})
        data["client-answers"] = answers
        relation = testing.Relation(
            "pulsar-proxy", remote_app_name="pulsar-k8s", remote_app_data=data
        )
        relations.append(relation)
        handles["relation"] = relation
    if case["peer"]:
        relations.append(testing.PeerRelation("cluster"))
    container = testing.Container("pulsar", can_connect=case["can_connect"])
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
    if kind == "pebble_ready":
        return ctx.on.pebble_ready(state.get_container("pulsar"))
    if kind == "client_changed" and "client" in handles:
        return ctx.on.relation_changed(state.get_relation(handles["client"].id))
    if kind == "client_broken" and "client" in handles:
        return ctx.on.relation_broken(state.get_relation(handles["client"].id))
    if kind == "proxy_changed" and "relation" in handles:
        return ctx.on.relation_changed(state.get_relation(handles["relation"].id))
    if kind == "secret_changed" and "secret" in handles:
        return ctx.on.secret_changed(state.get_secret(id=handles["secret"].id))
    if kind in ("leader_elected", "upgrade_charm", "update_status"):
        return getattr(ctx.on, kind)()
    return ctx.on.config_changed()


def config_is_valid(config: dict[str, Any]) -> bool:
    try:
        ProxyConfig(**{k.replace("-", "_"): v for k, v in config.items()})
    except (ValueError, TypeError):
        return False
    return True


@FUZZ_SETTINGS
@given(case=cases())
def test_no_input_breaks_a_hook_or_reaches_the_workload(case, fake_http):
    ctx = testing.Context(PulsarProxyCharm, charm_root=CHARM_ROOT)
    state, handles = build_state(case)
    with recording() as recorder:
        for kind in case["events"]:
            state = ctx.run(event_for(ctx, kind, handles, state), state)
            assert recorder.leaks() == [], case
            status = state.unit_status
            assert refusal_problems(status, OPTIONS, SOURCES) == []
            if not config_is_valid(case["config"]):
                assert status.name == "blocked"
                assert not recorder.touched()
    assert all(MARKER not in log.message for log in ctx.juju_log)
