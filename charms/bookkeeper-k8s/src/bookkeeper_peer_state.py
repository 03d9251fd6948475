"""The typed view of the ``cluster`` peer relation: the only place its databags are read.

app  ``bookkeeper-initialised``  ``"true"`` once the leader created the BookKeeper metadata
unit ``bookie-state``  what that unit's bookie reports: writable, read-only or down
unit ``bookie-tls``    ``true``/``false``: the running bookie was started serving TLS or not
unit ``tls-cas``, ``trusted-cas``  the unit's trust during a CA rotation: written and read by
     the core ``tls`` library (``ReloadingTrust``, ``parse_peer_trust``), shared with the brokers
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bookkeeper_view import DOWN, READ_ONLY, WRITABLE
from charms.pulsar_k8s.v0.validation import InvalidField

PEER = "cluster"
INITIALISED_KEY = "bookkeeper-initialised"
BOOKIE_STATE_KEY = "bookie-state"
BOOKIE_TLS_KEY = "bookie-tls"
BOOKIE_STATES = (WRITABLE, READ_ONLY, DOWN)


@dataclass(frozen=True)
class BookKeeperPeerState:
    initialised: bool = False
    # unit name -> the state its bookie reported (units that reported nothing usable are absent)
    bookie_states: Mapping[str, str] = field(default_factory=dict)
    # unit name -> whether its running bookie serves TLS (units that reported nothing: absent)
    bookie_tls: Mapping[str, bool] = field(default_factory=dict)


def parse(app: Mapping[str, str], units: Mapping[str, Mapping[str, str]]) -> BookKeeperPeerState:
    """Read the peer databags (``units``: unit name -> unit databag); InvalidField if refused."""
    flag = app.get(INITIALISED_KEY, "")
    # Refused, not read as absent: the leader only ever writes "true", so anything else was
    # written by hand and the operator should see it (deleting the key makes the leader
    # re-check the metadata, which is idempotent).
    if flag not in ("", "true"):
        raise InvalidField(PEER, INITIALISED_KEY, 'is not "true"')
    # A state outside the three is read as no report: it only ever counts a bookie as not
    # writable, which is what an unreported bookie is too.
    states = {
        name: data[BOOKIE_STATE_KEY]
        for name, data in units.items()
        if data.get(BOOKIE_STATE_KEY) in BOOKIE_STATES
    }
    # Anything but the two values reads as no report (a unit that has not started yet).
    tls = {
        name: data[BOOKIE_TLS_KEY] == "true"
        for name, data in units.items()
        if data.get(BOOKIE_TLS_KEY) in ("true", "false")
    }
    return BookKeeperPeerState(initialised=flag == "true", bookie_states=states, bookie_tls=tls)
