"""The typed peer state of pulsar-zookeeper-k8s: valid databags parse back, garbage refuses."""

from __future__ import annotations

import json

import zookeeper_peer_state as peer_state
from charms.pulsar_k8s.v0.validation import InvalidField
from hypothesis import given
from hypothesis import strategies as st
from zookeeper_peer_state import (
    ADDRESS_KEY,
    CLIENTS_KEY,
    MEMBERS_KEY,
    SERVER_ID_KEY,
    STARTED_KEY,
    USERS_KEY,
    Peer,
    ZooKeeperPeerState,
)

APP = "pulsar-zookeeper-k8s"
LABELS = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
HOSTS = st.lists(LABELS, min_size=1, max_size=4).map(".".join)
USERNAMES = st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True)
CHROOTS = st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True), min_size=1).map(
    lambda parts: "/" + "/".join(parts)
)
PEERS = st.builds(
    Peer,
    unit_number=st.integers(0, 50),
    address=HOSTS,
    started=st.booleans(),
    users=st.frozensets(USERNAMES, max_size=3),
)


@given(
    members=st.dictionaries(st.integers(1, 255), HOSTS, max_size=5),
    clients=st.dictionaries(USERNAMES, CHROOTS, max_size=4),
    peers=st.lists(PEERS, max_size=4, unique_by=lambda p: p.unit_number),
)
def test_valid_databags_parse_back_exactly(members, clients, peers):
    app = {
        MEMBERS_KEY: json.dumps({str(sid): address for sid, address in members.items()}),
        CLIENTS_KEY: json.dumps(clients),
    }
    units = {
        f"{APP}/{p.unit_number}": {
            ADDRESS_KEY: p.address,
            SERVER_ID_KEY: str(p.server_id),
            STARTED_KEY: "true" if p.started else "false",
            USERS_KEY: json.dumps(sorted(p.users)),
        }
        for p in peers
    }
    expected = ZooKeeperPeerState(members, clients, {p.server_id: p for p in peers})
    assert peer_state.parse(app, units) == expected


JSON_TEXT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
).map(json.dumps)
VALUES = st.one_of(st.text(max_size=20), JSON_TEXT)
APP_KEYS = (MEMBERS_KEY, CLIENTS_KEY)
UNIT_KEYS = (ADDRESS_KEY, SERVER_ID_KEY, STARTED_KEY, USERS_KEY)


@given(
    app=st.fixed_dictionaries({}, optional={key: VALUES for key in APP_KEYS}),
    units=st.dictionaries(
        st.one_of(st.integers(0, 9).map(lambda n: f"{APP}/{n}"), st.text(max_size=8)),
        st.fixed_dictionaries({}, optional={key: VALUES for key in UNIT_KEYS}),
        max_size=3,
    ),
)
def test_garbage_only_ever_refuses_with_invalid_field(app, units):
    try:
        parsed = peer_state.parse(app, units)
    except InvalidField as exc:
        assert exc.source == "cluster"
        assert exc.field.split("[")[0] in APP_KEYS or exc.field.endswith(f" {ADDRESS_KEY}")
        return
    assert all(isinstance(u, str) for p in parsed.peers.values() for u in p.users)


def test_unreadable_users_and_started_read_as_nothing_loaded_and_not_started():
    units = {f"{APP}/1": {ADDRESS_KEY: "zk-1.example", STARTED_KEY: "yes", USERS_KEY: "[1,"}}
    (peer,) = peer_state.parse({}, units).peers.values()
    assert (peer.started, peer.users) == (False, frozenset())
