"""The typed peer state of bookkeeper-k8s: valid databags parse back, garbage only refuses."""

from __future__ import annotations

import bookkeeper_peer_state as peer_state
from bookkeeper_peer_state import BOOKIE_STATE_KEY, BOOKIE_STATES, INITIALISED_KEY
from charms.pulsar_k8s.v0.validation import InvalidField
from hypothesis import given
from hypothesis import strategies as st

UNIT_NAMES = st.integers(0, 20).map(lambda n: f"bookkeeper-k8s/{n}")
DATABAG = st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=4)


@given(
    initialised=st.booleans(),
    states=st.dictionaries(UNIT_NAMES, st.sampled_from(BOOKIE_STATES), max_size=5),
)
def test_valid_databags_parse_back_exactly(initialised, states):
    app = {INITIALISED_KEY: "true"} if initialised else {}
    units = {name: {BOOKIE_STATE_KEY: state} for name, state in states.items()}
    parsed = peer_state.parse(app, units)
    assert parsed == peer_state.BookKeeperPeerState(initialised, states)


@given(
    app=DATABAG,
    flag=st.one_of(st.none(), st.text(max_size=10)),
    units=st.dictionaries(UNIT_NAMES, DATABAG, max_size=4),
    state=st.text(max_size=12),
)
def test_garbage_only_ever_refuses_with_invalid_field(app, flag, units, state):
    if flag is not None:
        app = {**app, INITIALISED_KEY: flag}
    units = {name: {**data, BOOKIE_STATE_KEY: state} for name, data in units.items()}
    try:
        parsed = peer_state.parse(app, units)
    except InvalidField as exc:
        assert (exc.source, exc.field) == ("cluster", INITIALISED_KEY)
        return
    # An unknown bookie state is no report at all, never passed on.
    assert set(parsed.bookie_states.values()) <= set(BOOKIE_STATES)
