"""The typed peer state of pulsar-k8s: valid databags parse back, garbage only refuses."""

from __future__ import annotations

import json

import pulsar_peer_state as peer_state
from charms.pulsar_k8s.v0.validation import InvalidField
from hypothesis import given
from hypothesis import strategies as st
from pulsar_peer_state import (
    CLIENTS_KEY,
    METADATA_CLUSTER_NAME_KEY,
    METADATA_INITIALISED_KEY,
    PulsarPeerState,
    encode_served_clients,
)

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda name: name != "global"
)
ROLES = st.integers(0, 10_000).map(lambda n: f"relation-{n}")
NAMESPACES = st.tuples(NAMES, NAMES).map("/".join)
KEYS = (METADATA_INITIALISED_KEY, METADATA_CLUSTER_NAME_KEY, CLIENTS_KEY)


@given(
    cluster_name=st.one_of(st.none(), NAMES),
    served=st.dictionaries(ROLES, NAMESPACES, max_size=5),
)
def test_valid_databags_parse_back_exactly(cluster_name, served):
    app: dict[str, str] = {}
    if cluster_name is not None:
        app = {METADATA_INITIALISED_KEY: "true", METADATA_CLUSTER_NAME_KEY: cluster_name}
    encoded = encode_served_clients(served)
    if encoded is not None:
        app[CLIENTS_KEY] = encoded
    assert peer_state.parse(app) == PulsarPeerState(cluster_name, served)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@given(
    values=st.fixed_dictionaries(
        {},
        optional={
            key: st.one_of(st.text(max_size=20), JSON_VALUES.map(json.dumps)) for key in KEYS
        },
    )
)
def test_garbage_only_ever_refuses_with_invalid_field(values):
    try:
        parsed = peer_state.parse(values)
    except InvalidField as exc:
        assert exc.source == "cluster" and exc.field in KEYS
        return
    assert all(isinstance(v, str) for v in parsed.served_clients.values())


def test_a_flag_other_than_true_reads_as_not_initialised():
    app = {METADATA_INITIALISED_KEY: "yes", METADATA_CLUSTER_NAME_KEY: "pulsar"}
    assert peer_state.parse(app).metadata_cluster_name is None
