"""The issue's scenarios that stay in the default run (1, 2 and 4), plus the standalone baseline.

One model for the module, brought up from nothing by scenario 1; scenario 4 kills a bookie on
it, then scenario 2 moves leadership, loses the leaders' pods and refreshes the charms, and
checks that the one-off initialisation ran once in the whole history. Figures are printed and
recorded (:mod:`tests.cluster.figures`).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time

import pytest

from tests.cluster import workload
from tests.cluster.cpu_figures import CpuMeter
from tests.cluster.figures import record
from tests.cluster.hook_figures import longest_hooks, update_status_count
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, SERVICES, ZOOKEEPER, deploy_bundle
from tests.cluster.rig_juju import Model, RigEnv
from tests.cluster.timeline import LOST, TimelineRecorder, four_letter_word

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
BULK = 10_000
STANDALONE_RUNS = 3
WINDOW = 500


def test_standalone_baseline(rig_env: RigEnv):
    """``bin/pulsar standalone`` from the same distribution: the time to its first message.

    Runs before this module's cluster exists (its embedded bookie and ZooKeeper use their own
    ports, but nothing else of the rig must be listening while it runs)."""
    # One start varies by half its length on a shared 2-CPU machine: the median of three is
    # the baseline the cluster's figures are divided by (each run is recorded too).
    runs = [
        workload.standalone_first_message(rig_env.image.distribution, rig_env.image.pristine_conf)
        for _ in range(STANDALONE_RUNS)
    ]
    record("standalone.runs_s", [round(run.first_message_s, 2) for run in runs])
    record(
        "standalone.first_message_s", round(statistics.median(r.first_message_s for r in runs), 2)
    )
    record("standalone.cpu_s", round(statistics.median(run.cpu_s for run in runs), 2))


@pytest.fixture(scope="module")
def cluster(module_model: Model) -> Model:
    return module_model


def test_bundle_from_nothing_serves_10k_messages(cluster: Model):
    """Scenario 1: empty model -> bundle shape -> active, metadata, bookies -> 10,000 messages."""
    started = time.monotonic()
    cpu = CpuMeter.start()
    timeline = TimelineRecorder(cluster, "cold-deploy").start()
    deploy_bundle(cluster)
    try:
        settled = cluster.settle(timeout=SETTLE)
    except Exception:
        timeline.stop()
        print(cluster.report())
        raise
    workload.Operator.of(cluster)
    workload.round_trip([b"first message"])
    timeline.mark("first consumed message")
    timeline.stop()
    record("bundle.cpu", cpu.figures(cluster, timeline.cpu_s))
    record("bundle.settle_s", settled)
    record("bundle.first_message_s", time.monotonic() - started)
    record("bundle.update_status_interval_s", cluster.update_status_interval)
    record("bundle.update_status_hooks", update_status_count(cluster))
    record("bundle.longest_hook", longest_hooks(cluster))

    assert cluster.all_active(), cluster.status_table()
    assert [len(cluster.units(a)) for a in (ZOOKEEPER, BOOKKEEPER, BROKER)] == [3, 3, 1]

    broker = cluster.env.plan.address(BROKER, 0)
    clusters = workload.http_get(f"http://{broker}:8080/admin/v2/clusters")
    assert clusters is not None and "pulsar" in json.loads(clusters), clusters

    rel = cluster.relations_of(BROKER, "bookkeeper")[0]
    ready = json.loads(cluster.app_data(rel.id, BOOKKEEPER).get("ready-bookies", "[]"))
    record("bundle.ready_bookies", len(ready))
    assert len(ready) == 3, cluster.app_data(rel.id, BOOKKEEPER)
    bookie = cluster.env.plan.address(BOOKKEEPER, 0)
    listed = workload.http_get(f"http://{bookie}:8000/api/v1/bookie/list_bookies?type=rw")
    assert listed is not None and len(json.loads(listed)) == 3, listed

    payloads = [i.to_bytes(4, "big") + os.urandom(96) for i in range(BULK)]
    client = workload.client()
    try:
        import threading

        import pulsar

        topic = workload.new_topic("bulk")
        consumer = client.subscribe(topic, "bulk", receiver_queue_size=1000)
        producer = client.create_producer(
            topic, max_pending_messages=WINDOW, block_if_queue_full=True, batching_enabled=True
        )
        window = threading.Semaphore(WINDOW)
        errors: list[str] = []

        def done(result, _msg_id) -> None:
            if result != pulsar.Result.Ok:
                errors.append(str(result))
            window.release()

        t0 = time.monotonic()
        for p in payloads:
            window.acquire()
            producer.send_async(p, done)
        producer.flush()
        for _ in range(WINDOW):  # every callback has run
            window.acquire()
        produce_s = time.monotonic() - t0
        assert errors == [], errors[:5]
        record("bulk.produced", len(payloads))
        record("bulk.produce_s", produce_s)
        record("bulk.msgs_per_s", len(payloads) / produce_s)
        received = []
        for _ in payloads:
            message = consumer.receive(timeout_millis=60_000)
            received.append(message.data())
            consumer.acknowledge(message)
        record("bulk.consumed", len(received))
        assert received == payloads
    finally:
        client.close()


def all_pids(model: Model) -> dict[str, int | None]:
    return {u.name: u.pod.service_pid(SERVICES[u.app.name]) for u in model.units()}


def record_restarts(key: str, before: dict[str, int | None], after: dict[str, int | None]) -> None:
    """Restarts per unit (service PID changed between two samples: 0 or 1 here)."""
    record(key, {u: int(before.get(u) != after.get(u)) for u in sorted(after)})


def bookie_ready(address: str) -> bool:
    return workload.http_get(f"http://{address}:8000/api/v1/bookie/is_ready", 2) is not None


def test_killed_bookie_loses_no_acknowledged_message(cluster: Model):
    """Scenario 4: kill -9 of a bookie under a producer; Pebble brings it back; nothing lost."""
    assert cluster.all_active(), cluster.status_table()
    unit = f"{BOOKKEEPER}/1"
    pod, address = cluster.pod(unit), cluster.env.plan.address(BOOKKEEPER, 1)
    pids_before = all_pids(cluster)
    producer = workload.BackgroundProducer().start()
    try:
        producer.wait_acks(100)
        killed_at = time.monotonic()
        pid = cluster.kill_service(unit, "bookie")
        cluster.settle(
            until=lambda: pod.service_pid("bookie") not in (None, pid) and bookie_ready(address),
            timeout=180,
        )
        back = time.monotonic() - killed_at
        new_pid = pod.service_pid("bookie")
        acked_at_kill = len(producer.acked)
        producer.wait_acks(acked_at_kill + 200)
        cluster.settle(timeout=300)
    finally:
        producer.stop()
    record_restarts("bookie_kill.restarts", pids_before, all_pids(cluster))
    record("bookie_kill.back_s", back)
    record("bookie_kill.longest_gap_s", producer.longest_gap(since=killed_at))
    record("bookie_kill.acked", len(producer.acked))
    record("bookie_kill.acked_after_kill", producer.acked_after(killed_at))
    record("bookie_kill.send_failures", producer.failures)
    assert new_pid not in (None, pid)
    assert producer.acked_after(killed_at) >= 200
    read = producer.check_nothing_lost()
    record("bookie_kill.read", read)


def test_one_off_initialisation_exactly_once(cluster: Model):
    """Scenario 2: leader changes, loss of the leaders' pods, refresh: one init of each kind."""
    started = time.monotonic()
    pids_before = all_pids(cluster)
    for unit in (f"{BOOKKEEPER}/1", f"{BROKER}/0"):
        cluster.set_leader(unit)
    cluster.settle(timeout=300)
    for app in (BOOKKEEPER, BROKER):
        leader = cluster.app(app).leader
        assert leader is not None
        cluster.lose_pod(leader.name)
    cluster.run_for(10)
    cluster.settle(timeout=600)
    for app in (BOOKKEEPER, BROKER):
        cluster.upgrade_charm(app)
    cluster.settle(timeout=900)
    record("init.settle_s", time.monotonic() - started)
    record_restarts("init.restarts", pids_before, all_pids(cluster))
    workload.round_trip([b"after leader changes, pod losses and a refresh"])

    inits = cluster.execs(contains="initnewcluster")
    metadata = cluster.execs(contains="initialize-cluster-metadata")
    probes = cluster.execs(contains="whatisinstanceid")
    record("init.initnewcluster", len(inits))
    record("init.initialize_cluster_metadata", len(metadata))
    record("init.whatisinstanceid", len(probes))
    assert len(inits) == 1, [str(c) for c in inits]
    assert inits[0].exit_code == 0, str(inits[0])
    assert len(metadata) == 1, [str(c) for c in metadata]
    assert metadata[0].exit_code == 0, str(metadata[0])


# -- issue 7: converging at Juju's pace (update-status every 300 s) -----------------------------


def zookeeper_leader(model: Model) -> str:
    for unit in model.units(ZOOKEEPER):
        address = model.env.plan.address(ZOOKEEPER, unit.number)
        if "Mode: leader" in four_letter_word(address, 2181, "srvr"):
            return unit.name
    raise AssertionError("no ZooKeeper member leads")


def not_active(model: Model) -> set[str]:
    return {u.name for u in model.units() if u.unit_status.name != "active"}


def hooks_that_made_active(model: Model, since: float, units: set[str]) -> dict[str, str]:
    """For each of ``units`` (not active at ``since``): the event of the hook that made it
    active again."""
    made: dict[str, str] = {}
    for hook in model.events():
        if (
            hook.started >= since
            and hook.unit in units
            and hook.unit not in made
            and hook.status.startswith("active")
        ):
            made[hook.unit] = hook.event
    return made


def no_update_status_for(model: Model, seconds: float) -> None:
    """Every unit agent's update-status timer happens not to fire for ``seconds`` (Juju's next
    tick is up to 360 s away anyway): whatever converges meanwhile did so on real events."""
    for unit in model.units():
        unit.next_update_status = max(unit.next_update_status, time.monotonic() + seconds)


def freeze_then_resume(model: Model, unit: str, service: str, seconds: float = 30) -> float:
    """SIGSTOP the unit's JVM for ``seconds`` (events flowing), SIGCONT; return the resume time."""
    model.kill_service(unit, service, signal.SIGSTOP)
    try:
        model.run_for(seconds)
    finally:
        model.kill_service(unit, service, signal.SIGCONT)
    return time.time()


def test_statuses_true_again_after_frozen_members_without_update_status(cluster: Model):
    """A frozen ZooKeeper leader, then the bookkeeper leader's bookie: once each resumes, every
    status is true again through check and relation events; while the bookie is frozen, the
    broker still counts the two writable bookies (each bookie reports itself)."""
    assert cluster.all_active(), cluster.status_table()
    no_update_status_for(cluster, 900)
    update_status_before = update_status_count(cluster)
    zk_leader = zookeeper_leader(cluster)
    resumed = freeze_then_resume(cluster, zk_leader, "zookeeper")
    stale = not_active(cluster)
    took = cluster.settle(timeout=120)
    record("faults.zookeeper_leader_frozen_30s.back_to_true_s", took)
    record("faults.zookeeper_leader_frozen_30s.units_not_active_at_resume", len(stale))
    made = hooks_that_made_active(cluster, resumed, stale)
    late = {u: e for u, e in made.items() if "update_status" in e}

    bk_leader = cluster.app(BOOKKEEPER).leader
    assert bk_leader is not None
    rel = cluster.relations_of(BROKER, "bookkeeper")[0]
    cluster.kill_service(bk_leader.name, "bookie", signal.SIGSTOP)
    try:
        # the frozen bookie's own unit reports it down; the others stay writable
        cluster.settle(
            until=lambda: cluster.unit_data(rel.id, bk_leader.name).get("bookie-state") == "down",
            timeout=60,
        )
        ready = json.loads(cluster.app_data(rel.id, BOOKKEEPER).get("ready-bookies", "[]"))
        reports = [
            cluster.unit_data(rel.id, u.name).get("bookie-state")
            for u in cluster.units(BOOKKEEPER)
        ]
        record("faults.bookkeeper_leader_frozen.ready_bookies", len(ready))
        record("faults.bookkeeper_leader_frozen.reports", sorted(str(r) for r in reports))
        cluster.run_for(20)
    finally:
        cluster.kill_service(bk_leader.name, "bookie", signal.SIGCONT)
    resumed_bookie = time.time()
    stale = not_active(cluster)
    took = cluster.settle(timeout=120)
    record("faults.bookkeeper_leader_bookie_frozen.back_to_true_s", took)
    made = hooks_that_made_active(cluster, resumed_bookie, stale)
    late.update({u: e for u, e in made.items() if "update_status" in e})
    assert update_status_count(cluster) == update_status_before
    assert len(ready) == 2, ready
    assert sorted(str(r) for r in reports) == ["down", "writable", "writable"], reports
    assert late == {}, late  # no status waited for update-status to become true again
    workload.round_trip([b"after the frozen members"])


class EarlyProducer:
    """From the restore on, try to get one message acknowledged by the broker, directly on its
    address (not through the charm's gate), every half second: what Pulsar does with a broker
    JVM that runs before the ensemble is writable."""

    def __init__(self, broker: str):
        self.url = f"pulsar://{broker}:6650"
        self.attempts: list[tuple[float, float, bool]] = []  # (start, end, acknowledged)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> EarlyProducer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def first_ack(self) -> float | None:
        return next((end for _, end, ok in self.attempts if ok), None)

    def _run(self) -> None:
        while not self._stop.is_set() and self.first_ack() is None:
            started = time.time()
            ok = False
            try:
                c = workload.client(self.url, timeout=3)
                try:
                    producer = c.create_producer(
                        workload.new_topic("early"), send_timeout_millis=3000
                    )
                    producer.send(b"early")
                    ok = True
                finally:
                    c.close()
            except Exception:  # refused, timed out: not acknowledged
                ok = False
            self.attempts.append((started, time.time(), ok))
            self._stop.wait(0.5)


def test_full_cluster_restart_serves_every_acknowledged_message(cluster: Model):
    """Every pod lost at once, then all restored: back to serving, every acknowledged message
    readable, no one-off initialisation run again, no hook waiting for update-status."""
    assert cluster.all_active(), cluster.status_table()
    topic = workload.new_topic("restart")
    client = workload.client()
    payloads = [i.to_bytes(4, "big") + os.urandom(60) for i in range(500)]
    try:
        producer = client.create_producer(topic)
        for p in payloads:
            producer.send(p)  # synchronous: each one acknowledged
    finally:
        client.close()
    inits_before = (
        len(cluster.execs(contains="initnewcluster")),
        len(cluster.execs(contains="initialize-cluster-metadata")),
    )
    timeline = TimelineRecorder(cluster, "full-restart").start()
    cpu = CpuMeter.start()
    lost_at = time.monotonic()
    lost_at_wall = time.time()
    timeline.mark(LOST)
    for unit in cluster.units():
        cluster.lose_pod(unit.name, restart=False)
    for unit in cluster.units():
        cluster.restore_pod(unit.name)
    early = EarlyProducer(cluster.env.plan.address(BROKER, 0)).start()
    no_update_status_for(cluster, 900)
    update_status_before = update_status_count(cluster)
    since = time.time()
    everyone = {u.name for u in cluster.units()}
    try:
        settled = cluster.settle(timeout=SETTLE)
    except Exception:
        early.stop()
        timeline.stop()
        print(cluster.report())
        raise
    workload.round_trip([b"after the full restart"])
    back = time.monotonic() - lost_at
    timeline.mark("first consumed message")
    early.stop()
    drawn = timeline.stop()
    record("restart.cpu", cpu.figures(cluster, timeline.cpu_s))
    got = workload.read_all(topic, expected=len(payloads))
    # No message is acknowledged before the ensemble (2 bookies) is writable: BookKeeper needs
    # the ack quorum of an ensemble for every entry. The bookies' state is sampled every 0.5 s,
    # so their writable time is known to within a second.
    writable = drawn.first(BOOKKEEPER, "serving", 2, lost_at_wall)
    first_ack = early.first_ack()
    refused = sum(1 for _, _, ok in early.attempts if not ok)
    record("restart.early_sends_refused", refused)
    record(
        "restart.first_ack_after_writable_s",
        None if not (writable and first_ack) else round(first_ack - writable, 2),
    )
    assert writable is not None
    assert first_ack is None or first_ack >= writable - 1.0, (first_ack, writable)
    inits_after = (
        len(cluster.execs(contains="initnewcluster")),
        len(cluster.execs(contains="initialize-cluster-metadata")),
    )
    record("restart.settle_s", settled)
    record("restart.first_message_s", back)
    record("restart.read_back", len(got))
    record("restart.longest_hook", longest_hooks(cluster))
    made_by_update_status = {
        u: e
        for u, e in hooks_that_made_active(cluster, since, everyone).items()
        if "update_status" in e
    }
    assert got == payloads
    assert inits_after == inits_before
    assert update_status_count(cluster) == update_status_before
    assert made_by_update_status == {}, made_by_update_status
