"""The rolling-restart lock library (owned here, copied into the other charms)."""

from __future__ import annotations

import ops
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import (
    GRANTED_KEY,
    REQUEST_KEY,
    RollingRestart,
)
from ops import testing

META = {"name": "lock-test", "peers": {"cluster": {"interface": "lock"}}}


class LockCharm(ops.CharmBase):
    """Asks for the lock on every config-changed; records whether it holds it."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.lock = RollingRestart(self)
        framework.observe(self.on.config_changed, self._on_config_changed)

    def _on_config_changed(self, _: ops.EventBase) -> None:
        held = self.lock.acquire("token-1")
        self.unit.status = ops.ActiveStatus("held" if held else "waiting")


def run(leader: bool, app_data: dict[str, str] | None = None, peer_request: str = ""):
    peer = testing.PeerRelation(
        "cluster",
        local_app_data=app_data or {},
        peers_data={1: {REQUEST_KEY: peer_request} if peer_request else {}},
    )
    ctx = testing.Context(LockCharm, meta=META)
    out = ctx.run(ctx.on.config_changed(), testing.State(leader=leader, relations={peer}))
    return out, out.get_relation(peer.id)


def test_the_leader_grants_itself_the_free_lock_in_the_same_hook():
    out, peer = run(leader=True)
    assert out.unit_status == ops.ActiveStatus("held")
    assert peer.local_unit_data[REQUEST_KEY] == "token-1"
    assert peer.local_app_data[GRANTED_KEY] == "lock-test/0"


def test_a_non_leader_asks_and_waits_for_the_grant():
    out, peer = run(leader=False)
    assert out.unit_status == ops.ActiveStatus("waiting")
    assert peer.local_unit_data[REQUEST_KEY] == "token-1"


def test_a_lock_held_by_another_unit_is_not_taken():
    out, peer = run(leader=True, app_data={GRANTED_KEY: "lock-test/1"}, peer_request="t")
    assert out.unit_status == ops.ActiveStatus("waiting")
    assert peer.local_app_data[GRANTED_KEY] == "lock-test/1"
