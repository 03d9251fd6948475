"""Hook durations from the rig's event record: the longest hook per charm (issue 7).

One-off initialisation (BookKeeper metadata, cluster metadata) may take its real time; every
other hook must not wait for a JVM. The rig records each hook's duration and the Pebble calls
made under each event name, so the hooks that ran one-off init execs are set aside: for each
(unit, event) that ran one, its longest hook of that name is counted as init.
"""

from __future__ import annotations

from collections import defaultdict

from tests.cluster.rig_juju import EventRecord, Model

INIT_WORDS = ("initnewcluster", "whatisinstanceid", "initialize-cluster-metadata")


def _app(unit: str) -> str:
    return unit.rsplit("/", 1)[0]


def init_hooks(model: Model) -> set[int]:
    """Seq numbers of the hooks counted as one-off initialisation."""
    wanted = {
        (call.unit, call.event)
        for call in model.execs()
        if any(word in arg for word in INIT_WORDS for arg in call.command)
    }
    by_pair: dict[tuple[str, str], list[EventRecord]] = defaultdict(list)
    for record in model.events():
        if (record.unit, record.event) in wanted:
            by_pair[(record.unit, record.event)].append(record)
    return {max(records, key=lambda r: r.duration).seq for records in by_pair.values()}


def longest_hooks(model: Model) -> dict[str, dict[str, object]]:
    """Per application: the longest hook outside one-off init (seconds, unit, event)."""
    skipped = init_hooks(model)
    longest: dict[str, EventRecord] = {}
    for record in model.events():
        if record.seq in skipped:
            continue
        app = _app(record.unit)
        if app not in longest or record.duration > longest[app].duration:
            longest[app] = record
    return {
        app: {"s": round(r.duration, 2), "unit": r.unit, "event": r.event}
        for app, r in sorted(longest.items())
    }


def update_status_count(model: Model) -> int:
    return len(model.events(kind="update_status"))
