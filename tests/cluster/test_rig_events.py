"""The rig's event queue: units take turns, each unit's own order is kept (no root, no JVM)."""

from __future__ import annotations

from tests.cluster.rig_events import EventQueue, QueuedEvent, RigAction


def _drain(queue: EventQueue) -> list[tuple[str, str]]:
    taken = []
    while queue:
        item = queue.take_next()
        taken.append((item.unit, getattr(item, "kind", None) or getattr(item, "what", "")))
    return taken


def test_a_unit_queued_behind_a_burst_gets_its_turn():
    queue = EventQueue()
    for n in range(3):
        queue.push(QueuedEvent("zk/0", "relation_changed", relation_id=n))
    queue.push(QueuedEvent("broker/0", "relation_created", relation_id=9))
    queue.push(QueuedEvent("zk/1", "relation_changed", relation_id=0))
    taken = _drain(queue)
    assert taken[:3] == [
        ("zk/0", "relation_changed"),
        ("broker/0", "relation_created"),
        ("zk/1", "relation_changed"),
    ]
    assert len(taken) == 5


def test_each_unit_keeps_its_own_order():
    queue = EventQueue()
    kinds = ["install", "leader_elected", "config_changed", "start", "pebble_ready"]
    for kind in kinds:
        queue.push(QueuedEvent("a/0", kind))
        queue.push(QueuedEvent("b/0", kind))
    queue.push(RigAction("a/0", "pod lost", lambda: None))
    taken = _drain(queue)
    assert [k for u, k in taken if u == "a/0"] == [*kinds, "pod lost"]
    assert [k for u, k in taken if u == "b/0"] == kinds


def test_the_unit_that_waited_longest_goes_next():
    queue = EventQueue()
    queue.push(QueuedEvent("a/0", "install"))
    queue.push(QueuedEvent("b/0", "install"))
    assert queue.take_next().unit == "a/0"
    queue.push(QueuedEvent("a/0", "start"))
    assert queue.take_next().unit == "b/0"  # never served yet
    queue.push(QueuedEvent("b/0", "start"))
    assert queue.take_next().unit == "a/0"  # served before b/0
    assert queue.take_next().unit == "b/0"
    assert not queue


def test_identical_pending_events_still_coalesce():
    queue = EventQueue()
    queue.push(QueuedEvent("a/0", "config_changed"))
    queue.push(QueuedEvent("a/0", "config_changed"))
    assert len(queue) == 1


def test_a_barrier_keeps_the_order_around_it():
    queue = EventQueue()
    queue.push(QueuedEvent("a/0", "relation_broken", relation_id=1))
    queue.push(QueuedEvent("a/0", "config_changed"))
    queue.push(QueuedEvent("b/0", "relation_broken", relation_id=1))
    queue.push(RigAction("", "drop relation 1", lambda: None, barrier=True))
    queue.push(QueuedEvent("c/0", "install"))
    taken = _drain(queue)
    assert taken.index(("", "drop relation 1")) == 3
    assert taken[-1] == ("c/0", "install")
