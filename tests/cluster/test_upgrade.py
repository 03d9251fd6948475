"""Issue 12, item 1: ``juju refresh`` to the pinned Pulsar (``PULSAR_VERSION``) from the previous
patch release (``PULSAR_UPGRADE_FROM_VERSION``) under a producer and a consumer.

Slow (``tox -e cluster-slow``: it needs the older distribution, 245 MB, which only that env
fetches). The bundle's shape on the older release (ZooKeeper x3, bookies x3, brokers' ensemble 2,
so one bookie can restart; brokers x2), then each application refreshed to the new one in the
documented order (ZooKeeper, bookies, brokers), each after its ``pre-refresh-check`` passed:

- every unit restarts exactly once (one new service PID, one new pod), and never two units of
  one application are down at a time (service PIDs and readiness sampled every 0.25 s);
- no acknowledged message is lost (the consumer received every one, in order);
  the longest publish gap is recorded;
- afterwards every unit reports the new version (its workload version) and every JVM has only the
  new release's jars open (the inodes of its open jars, compared with both cached distributions);
- a pre-refresh check with a bookie down (``kill -9``) fails, naming the bookie.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ops import testing

from tests.cluster import rig_setup, workload
from tests.cluster.conftest import new_model
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, SERVICES, ZOOKEEPER, deploy_bundle
from tests.cluster.rig_juju import Model, RigEnv, RigUnit

pytestmark = pytest.mark.extended

FROM_VERSION = rig_setup.upgrade_from_version()
TO_VERSION = rig_setup.pulsar_version()
ORDER = (ZOOKEEPER, BOOKKEEPER, BROKER)
SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
_JAR_VERSION = re.compile(
    r"^org\.apache\.pulsar-pulsar-[a-z0-9-]+?-([0-9]+\.[0-9]+\.[0-9]+)\.jar$"
)


@pytest.fixture(scope="module")
def cluster(rig_env: RigEnv) -> Iterator[Model]:
    m = new_model(rig_env)
    try:
        deploy_bundle(m, brokers=2, pulsar_version=FROM_VERSION)
        m.settle(timeout=SETTLE)
        workload.Operator.of(m)
        yield m
    except Exception:
        print(f"\n===== rig report (upgrade) =====\n{m.report()}")
        raise
    finally:
        m.teardown()


@pytest.fixture
def report_on_failure(cluster: Model, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rig_report_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== rig report for {request.node.nodeid} =====\n{cluster.report()}")


# -- what "up" means for each application (seen from outside, as a client would) ------------


def _srvr(address: str) -> str:
    try:
        with socket.create_connection((address, 2181), timeout=1.0) as sock:
            sock.sendall(b"srvr")
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def serving(model: Model, unit: RigUnit) -> bool:
    address = model.env.plan.address(unit.app.name, unit.number)
    if unit.app.name == ZOOKEEPER:
        return "Mode:" in _srvr(address)
    if unit.app.name == BOOKKEEPER:
        body = workload.http_get(f"http://{address}:8000/api/v1/bookie/state", 1) or ""
        return '"running" : true' in body and '"readOnly" : false' in body
    return workload.http_get(f"http://{address}:8080/admin/v2/brokers/ready", 1) is not None


def brokers_url(model: Model) -> str:
    hosts = ",".join(
        f"{model.env.plan.address(BROKER, u.number)}:6650" for u in model.units(BROKER)
    )
    return f"pulsar://{hosts}"


def overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(x1, y1) - max(x0, y0)) for x0, x1 in a for y0, y1 in b)


def restart_window(watcher: workload.PidWatcher, name: str) -> tuple[float, float]:
    """From the first sample without the first PID to the first with a new PID, serving."""
    first = next(row[name][0] for _t, row in watcher.samples if row[name][0] is not None)
    start = next(t for t, row in watcher.samples if row[name][0] != first)
    end = next(
        t
        for t, row in watcher.samples
        if t > start and row[name][0] not in (None, first) and row[name][1]
    )
    return start, end


# -- what a JVM runs -------------------------------------------------------------------------


def jar_inodes(version: str) -> dict[tuple[int, int], str]:
    lib = rig_setup.distribution_dir(version) / "lib"
    return {(s.st_dev, s.st_ino): p.name for p in lib.glob("*.jar") if (s := p.stat())}


def open_jars(pid: int) -> list[tuple[tuple[int, int], str]]:
    """(device, inode) and name of every jar the process has open."""
    found = []
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
            if target.endswith(".jar"):
                st = fd.stat()
                found.append(((st.st_dev, st.st_ino), Path(target).name))
        except OSError:
            continue
    return found


def jvm_versions(pid: int, inodes: dict[str, dict[tuple[int, int], str]]) -> dict[str, int]:
    """Distribution version -> how many of its jars the JVM has open (``other``: neither)."""
    counts: dict[str, int] = {}
    for key, _name in open_jars(pid):
        version = next((v for v, known in inodes.items() if key in known), "other")
        counts[version] = counts.get(version, 0) + 1
    return counts


def pulsar_jar_versions(pid: int) -> set[str]:
    """The versions the open Pulsar jars' names carry."""
    return {m.group(1) for _k, name in open_jars(pid) if (m := _JAR_VERSION.match(name))}


# -- a consumer beside the producer ----------------------------------------------------------


class BackgroundConsumer:
    """Receives and acknowledges every message of a topic (subscribed before the producer
    sends, from the earliest); records the payloads it got."""

    def __init__(self, topic: str, url: str):
        import pulsar

        self.got: list[bytes] = []
        self.errors: list[str] = []
        self._client = workload.client(url)
        self._consumer = self._client.subscribe(
            topic,
            "upgrade",
            initial_position=pulsar.InitialPosition.Earliest,
            receiver_queue_size=1000,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rig-consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._consumer.receive(timeout_millis=500)
            except Exception as exc:  # timeout, or a broker going away (the client reconnects)
                if "Timeout" not in type(exc).__name__ and "TimeOut" not in str(exc):
                    self.errors.append(f"{time.monotonic():.1f} {exc!r}")
                continue
            self.got.append(message.data())
            try:
                self._consumer.acknowledge(message)
            except Exception as exc:
                self.errors.append(f"{time.monotonic():.1f} ack {exc!r}")

    def drain(self, wanted: list[bytes], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not set(wanted) <= set(self.got) and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with contextlib.suppress(Exception):
            self._client.close()


# -- the scenario ----------------------------------------------------------------------------


def test_refresh_to_the_pinned_release_under_traffic(cluster: Model, report_on_failure):
    assert cluster.all_active(), cluster.status_table()
    assert {u.name: u.workload_version for u in cluster.units()} == {
        u.name: FROM_VERSION for u in cluster.units()
    }
    generations = {u.name: u.pod.generation for u in cluster.units()}
    watcher = workload.PidWatcher(
        {
            u.name: (u.pod, SERVICES[u.app.name], lambda u=u: serving(cluster, u))
            for u in cluster.units()
        }
    ).start()
    producer = workload.BackgroundProducer(url=brokers_url(cluster), send_timeout_ms=60_000)
    consumer = BackgroundConsumer(producer.topic, brokers_url(cluster))
    producer.start()
    windows: dict[str, tuple[float, float]] = {}
    try:
        producer.wait_acks(200)
        started = time.monotonic()
        for app in ORDER:
            leader = cluster.app(app).leader
            assert leader is not None
            results = cluster.run_action(leader.name, "pre-refresh-check")
            assert results["result"] == "healthy: ready to refresh", results
            assert results["workload-version"] == FROM_VERSION
            began = time.monotonic()
            cluster.refresh(app, pulsar_version=TO_VERSION)

            def refreshed(app: str = app) -> bool:
                units = cluster.units(app)
                return cluster.all_active() and all(
                    u.workload_version == TO_VERSION and u.pod.image.pulsar_version() == TO_VERSION
                    for u in units
                )

            cluster.settle(until=refreshed, timeout=900)
            windows[app] = (began, time.monotonic())
            record(f"upgrade.{app}.refresh_s", windows[app][1] - began)
            record(f"upgrade.{app}.longest_gap_s", producer.longest_gap(began, windows[app][1]))
            acked = len(producer.acked)
            producer.wait_acks(acked + 50)
        record("upgrade.total_s", time.monotonic() - started)
        record("upgrade.longest_gap_s", producer.longest_gap(since=started))
    finally:
        producer.stop()
        watcher.stop()
    consumer.drain(producer.acked)
    consumer.stop()

    # Every unit restarted exactly once: one new pod, one new service PID.
    for unit in cluster.units():
        record(f"upgrade.restarts.{unit.name}", len(watcher.pids(unit.name)) - 1)
    assert {u.name: u.pod.generation - generations[u.name] for u in cluster.units()} == {
        u.name: 1 for u in cluster.units()
    }
    assert {u.name: len(watcher.pids(u.name)) for u in cluster.units()} == {
        u.name: 2 for u in cluster.units()
    }, {u.name: watcher.pids(u.name) for u in cluster.units()}

    # Never two units of one application restarting at a time: a unit's restart runs from its
    # process going away until its new process serves. (A ZooKeeper leader leaving makes the
    # others hold an election, a second or so of "not serving" without any restart: recorded,
    # not counted as a unit down.)
    for app, (began, ended) in windows.items():
        names = [u.name for u in cluster.units(app)]
        restarts = {n: restart_window(watcher, n) for n in names}
        both = sum(
            overlap([restarts[a]], [restarts[b]])
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        )
        not_serving = {
            n: [(max(a, began), min(b, ended)) for a, b in watcher.down_intervals(n) if b > began]
            for n in names
        }
        blips = sum(
            overlap(not_serving[a], not_serving[b])
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        )
        for name, (start, end) in restarts.items():
            record(f"upgrade.restart_s.{name}", end - start)
        record(f"upgrade.{app}.two_restarting_s", both)
        record(f"upgrade.{app}.two_not_serving_s", blips)
        assert both == 0.0, restarts

    # Every unit reports the new version, and every JVM runs the new release's jars only.
    assert {u.name: u.workload_version for u in cluster.units()} == {
        u.name: TO_VERSION for u in cluster.units()
    }
    inodes = {v: jar_inodes(v) for v in (FROM_VERSION, TO_VERSION)}
    for unit in cluster.units():
        pid = unit.pod.service_pid(SERVICES[unit.app.name])
        assert pid is not None, unit.name
        counts = jvm_versions(pid, inodes)
        names = pulsar_jar_versions(pid)
        print(f"{unit.name}: pid {pid} open jars {counts}, Pulsar jar names {sorted(names)}")
        assert counts.get(TO_VERSION, 0) > 0 and FROM_VERSION not in counts, (unit.name, counts)
        assert names <= {TO_VERSION}, (unit.name, names)
        assert unit.unit_status.message.find("refresh in progress") < 0, unit.unit_status

    # Nothing acknowledged lost: the consumer (subscribed from the earliest before the first
    # send) received every acknowledged message, in order. (Its acknowledgements let the broker
    # delete what it consumed, so a reader from the earliest afterwards sees only the rest.)
    record("upgrade.acked", len(producer.acked))
    record("upgrade.send_failures", producer.failures)
    record("upgrade.consumed", len(consumer.got))
    in_order, index = workload.is_subsequence(producer.acked, consumer.got)
    missing = set(producer.acked) - set(consumer.got)
    assert not missing, f"{len(missing)} acknowledged messages never consumed"
    assert in_order, f"acknowledged message #{index} consumed out of order"


def test_pre_refresh_check_fails_with_a_bookie_down(cluster: Model, report_on_failure):
    assert cluster.all_active(), cluster.status_table()
    victim = f"{BOOKKEEPER}/2"
    cluster.kill_service(victim, "bookie")
    with pytest.raises(testing.ActionFailed) as failed:
        cluster.run_action(f"{BOOKKEEPER}/0", "pre-refresh-check")
    message = failed.value.message
    print(f"pre-refresh-check with {victim} killed: {message}")
    assert message.startswith("pre-refresh check failed: ")
    assert f"{victim} bookie down" in message
    # Pebble restarts the bookie; the check passes again once it is writable and autorecovery
    # (on in the bookies, lostBookieRecoveryDelay 0) has no under-replicated ledger left.
    killed_at = time.monotonic()
    cluster.settle(
        until=lambda: cluster.all_active() and serving(cluster, cluster.unit(victim)),
        timeout=300,
    )
    last = ""
    while time.monotonic() - killed_at < 300:
        try:
            results = cluster.run_action(f"{BOOKKEEPER}/0", "pre-refresh-check")
            break
        except testing.ActionFailed as exc:
            last = exc.message
            cluster.run_for(5)
    else:
        pytest.fail(f"pre-refresh-check still failing 300 s after the bookie restart: {last}")
    record("upgrade.precheck_passes_again_s", time.monotonic() - killed_at)
    assert results["result"] == "healthy: ready to refresh"
