"""Safe bookie scale-down (issue 12, item 2), marked slow (``tox -e cluster-slow``).

Four bookies, brokers writing at ensemble/write quorum 3/3 and ack quorum 2, topics written
(one of them under a producer during the removal):

- 4 -> 3: the removed unit turns its bookie read-only, stops it and runs
  ``decommissionbookie`` in its storage-detaching hook; once the unit is gone every message is
  readable, ``listunderreplicated`` lists nothing and ``listbookies -a`` no longer lists it.
- 3 -> 2: fewer writable bookies than the ensemble would remain: the removed unit refuses
  (Blocked, nothing decommissioned), the remaining bookies say how to get out (Blocked: scale
  back to 3), and every message is still readable.

Figures: ``scaledown.decommission_s`` (the storage-detaching hook), ``scaledown.ledgers_moved``
(ledgers that had a copy on the removed bookie), ``scaledown.publish_gap_s``.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, deploy_bundle
from tests.cluster.rig_juju import Model

pytestmark = pytest.mark.extended

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
QUORUMS = {
    "managed-ledger-ensemble-size": 3,
    "managed-ledger-write-quorum": 3,
    "managed-ledger-ack-quorum": 2,
}
MESSAGES_PER_TOPIC = 200
SUBSCRIPTION = "keep"  # a durable subscription keeps each topic (and its backlog) alive


def shell(model: Model, unit: str, *args: str) -> str:
    """``bin/bookkeeper shell <args>`` in ``unit``'s pod, as the charm runs its tools."""
    from bookkeeper_config import BookKeeperConfig  # type: ignore[import-not-found]
    from bookkeeper_render import BOOKKEEPER_SCRIPT, tool_env  # type: ignore[import-not-found]

    env = {**tool_env(BookKeeperConfig()), "PULSAR_LOG_LEVEL": "info"}
    env["PULSAR_LOG_ROOT_LEVEL"] = "info"
    stdout, stderr = model.pod(unit).run([BOOKKEEPER_SCRIPT, "shell", *args], environment=env)
    return stdout + stderr


def bookie_id(model: Model, number: int) -> str:
    return f"{model.env.plan.fqdn(BOOKKEEPER, number)}:3181"


def write_topics(count: int) -> dict[str, list[bytes]]:
    """Topics with a durable subscription, each holding MESSAGES_PER_TOPIC acked messages."""
    c = workload.client()
    written: dict[str, list[bytes]] = {}
    try:
        for _ in range(count):
            topic = workload.new_topic("scaledown")
            c.subscribe(topic, SUBSCRIPTION).close()
            producer = c.create_producer(topic, batching_enabled=False)
            payloads = [f"{topic}:{n:05d}".encode() for n in range(MESSAGES_PER_TOPIC)]
            for payload in payloads:
                producer.send(payload)
            producer.close()
            written[topic] = payloads
    finally:
        c.close()
    return written


def assert_all_readable(written: dict[str, list[bytes]]) -> None:
    for topic, payloads in written.items():
        got = workload.read_all(topic, expected=len(payloads))
        assert got == payloads, f"{topic}: {len(got)} of {len(payloads)} read back"


def bookie_units(model: Model) -> list[str]:
    return [u.name for u in model.units(BOOKKEEPER)]


def last_status(model: Model, unit: str) -> str:
    statuses = [e.status for e in model.events(unit=unit) if e.status]
    return statuses[-1] if statuses else ""


def test_bookies_4_to_3_decommissions_then_3_to_2_is_refused(model: Model):
    # One ZooKeeper server: the scenario is about bookies (two fewer JVMs on the rig).
    deploy_bundle(model, zookeepers=1, bookies=4, config={BROKER: QUORUMS})
    model.settle(timeout=SETTLE)
    workload.Operator.of(model)
    written = write_topics(3)
    leaving = f"{BOOKKEEPER}/3"
    leaving_id = bookie_id(model, 3)
    ledgers = shell(model, leaving, "listledgers", "-bookieid", leaving_id)
    held = set(re.findall(r"ledgerID: (\d+)", ledgers))

    # --- 4 -> 3 under a producer --------------------------------------------------------
    producer_topic = workload.new_topic("scaledown-live")
    c = workload.client()
    c.subscribe(producer_topic, SUBSCRIPTION).close()
    c.close()
    producer = workload.BackgroundProducer(topic=producer_topic).start()
    producer.wait_acks(50)
    since = len(model.recorder.calls)
    removed_at = time.monotonic()
    model.remove_unit(BOOKKEEPER)
    model.settle(
        until=lambda: leaving not in bookie_units(model) and model.all_active(), timeout=SETTLE
    )
    producer.wait_acks(len(producer.acked) + 50)
    producer.stop()
    record("scaledown.publish_gap_s", round(producer.longest_gap(since=removed_at), 1))

    decommissions = model.execs(unit=leaving, contains="decommissionbookie", since=since)
    # Earlier attempts may meet the stopped bookie still registered (its ZooKeeper session
    # outlives a kill at the end of Pebble's kill-delay): the charm tries again in the hook.
    codes = [c.exit_code for c in decommissions]
    assert codes and codes[-1] == 0, [str(c) for c in decommissions]
    record("scaledown.decommission_attempts", len(codes))
    hook = next(e for e in model.events(unit=leaving) if e.event.startswith("storage_detaching"))
    assert "decommissioned in" in hook.status, hook
    record("scaledown.decommission_s", round(hook.duration, 1))
    record("scaledown.ledgers_moved", len(held))
    print(f"ledgers listed on {leaving} before its removal: {sorted(held)}")

    remaining = bookie_units(model)[0]
    assert_all_readable(written)
    assert producer.check_nothing_lost() >= len(producer.acked)
    underreplicated = shell(model, remaining, "listunderreplicated", "-c")
    assert "Under replicated ledger count: 0" in underreplicated, underreplicated
    listed = shell(model, remaining, "listbookies", "-a")
    assert bookie_id(model, 0) in listed, listed  # the listing is there...
    assert leaving_id not in listed, listed  # ...without the removed bookie

    # --- 3 -> 2: refused ----------------------------------------------------------------
    refused = f"{BOOKKEEPER}/2"
    since = len(model.recorder.calls)
    model.remove_unit(BOOKKEEPER, destroy_storage=False)

    def refused_and_blocked() -> bool:
        units = model.units(BOOKKEEPER)
        return refused not in bookie_units(model) and all(
            u.unit_status.name == "blocked" for u in units
        )

    model.settle(until=refused_and_blocked, timeout=SETTLE)
    assert "removal refused" in last_status(model, refused), last_status(model, refused)
    assert model.execs(unit=refused, contains="decommissionbookie", since=since) == []
    for unit in model.units(BOOKKEEPER):
        assert f"scale {BOOKKEEPER} to 3" in unit.unit_status.message, model.status_table()
    assert_all_readable(written)
    print(model.status_table())
