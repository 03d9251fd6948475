"""The issue's longest scenarios (3, 5, 6, 7), marked slow (``tox -e cluster-slow``).

One bundle with two brokers for the module: a broker config change under a producer (6), the
loss of a broker pod (5), relations removed and re-added (7), then ZooKeeper 3 -> 5 -> 3 under a
kazoo writer (3). Figures are printed and recorded (:mod:`tests.cluster.figures`).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator

import pytest

from tests.cluster import workload
from tests.cluster.conftest import new_model
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, SERVICES, ZOOKEEPER, deploy_bundle
from tests.cluster.rig_juju import Model, RigEnv

pytestmark = pytest.mark.slow

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))


@pytest.fixture(scope="module")
def cluster(rig_env: RigEnv) -> Iterator[Model]:
    m = new_model(rig_env)
    try:
        deploy_bundle(m, brokers=2)
        m.settle(timeout=SETTLE)
        workload.Operator.of(m)
        yield m
    except Exception:
        print(f"\n===== rig report (slow scenarios) =====\n{m.report()}")
        raise
    finally:
        m.teardown()


@pytest.fixture
def report_on_failure(cluster: Model, request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rig_report_call", None)
    if rep is not None and rep.failed:
        print(f"\n===== rig report for {request.node.nodeid} =====\n{cluster.report()}")


def brokers_url(model: Model) -> str:
    hosts = ",".join(
        f"{model.env.plan.address(BROKER, u.number)}:6650" for u in model.units(BROKER)
    )
    return f"pulsar://{hosts}"


def service_pids(model: Model, app: str) -> dict[str, int | None]:
    return {u.name: u.pod.service_pid(SERVICES[app]) for u in model.units(app)}


def broker_ready(model: Model, number: int) -> bool:
    address = model.env.plan.address(BROKER, number)
    return workload.http_get(f"http://{address}:8080/admin/v2/brokers/ready", 1) is not None


def overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(x1, y1) - max(x0, y0)) for x0, x1 in a for y0, y1 in b)


def test_broker_config_change_rolls_brokers_one_at_a_time(cluster: Model, report_on_failure):
    """Scenario 6: only brokers restart, one at a time, nothing acked lost; then a no-op."""
    assert cluster.all_active(), cluster.status_table()
    others = {a: service_pids(cluster, a) for a in (ZOOKEEPER, BOOKKEEPER)}
    brokers_before = service_pids(cluster, BROKER)
    watcher = workload.PidWatcher(
        {
            u.name: (u.pod, "broker", lambda n=u.number: broker_ready(cluster, n))
            for u in cluster.units(BROKER)
        }
    ).start()
    producer = workload.BackgroundProducer(url=brokers_url(cluster), send_timeout_ms=60_000)
    producer.start()
    try:
        producer.wait_acks(100)
        changed_at = time.monotonic()
        cluster.config(BROKER, **{"default-retention-time-minutes": 10})

        def rolled() -> bool:
            now = service_pids(cluster, BROKER)
            return cluster.all_active() and all(
                now[u] not in (None, brokers_before[u]) for u in now
            )

        cluster.settle(until=rolled, timeout=900)
        acked = len(producer.acked)
        producer.wait_acks(acked + 100)
    finally:
        producer.stop()
        watcher.stop()
    names = sorted(brokers_before)
    restarts = sum(len(watcher.pids(n)) - 1 for n in names)
    both_down = overlap(watcher.down_intervals(names[0]), watcher.down_intervals(names[1]))
    record("config.broker_restarts", restarts)
    record("config.both_brokers_down_s", both_down)
    record("config.longest_gap_s", producer.longest_gap(since=changed_at))
    record("config.acked", len(producer.acked))
    record("config.send_failures", producer.failures)
    other_after = {a: service_pids(cluster, a) for a in (ZOOKEEPER, BOOKKEEPER)}
    record(
        "config.other_restarts",
        sum(others[a][u] != other_after[a][u] for a in others for u in others[a]),
    )
    for name in names:
        record(f"config.restarts.{name}", len(watcher.pids(name)) - 1)
        record(f"config.down_intervals.{name}", len(watcher.down_intervals(name)))
    assert other_after == others, "ZooKeeper or a bookie restarted for a broker config change"
    assert all(len(watcher.pids(n)) == 2 for n in names), {n: watcher.pids(n) for n in names}
    assert both_down == 0.0, {n: watcher.down_intervals(n) for n in names}
    record("config.read", producer.check_nothing_lost())

    # A change that renders identical files: nothing pushed, nothing restarted.
    pushes = len(cluster.pebble_calls(op="push"))
    restarts_calls = len(cluster.pebble_calls(op="restart")) + len(cluster.pebble_calls(op="stop"))
    pids = {a: service_pids(cluster, a) for a in SERVICES}
    default_size = cluster.app(BROKER).config_options["options"]["default-retention-size-mb"]
    cluster.config(BROKER, **{"default-retention-time-minutes": 10})  # the value it has
    cluster.config(BROKER, **{"default-retention-size-mb": default_size.get("default", 0)})
    cluster.config(BROKER, **{"default-retention-size-mb": None})  # back to unset
    cluster.settle(timeout=300)
    cluster.run_for(15)
    cluster.settle(timeout=300)
    pushed = len(cluster.pebble_calls(op="push")) - pushes
    restarted = (
        len(cluster.pebble_calls(op="restart")) + len(cluster.pebble_calls(op="stop"))
    ) - restarts_calls
    record("config.identical_pushes", pushed)
    record("config.identical_restarts", restarted)
    assert {a: service_pids(cluster, a) for a in SERVICES} == pids
    assert pushed == 0, [str(c) for c in cluster.pebble_calls(op="push")[pushes:]]
    assert restarted == 0


def test_lost_broker_pod_keeps_acknowledged_messages(cluster: Model, report_on_failure):
    """Scenario 5: lose_pod(pulsar-k8s/0); the charm restores it; acked messages all there."""
    url = brokers_url(cluster)
    producer = workload.BackgroundProducer(url=url).start()
    try:
        producer.wait_acks(300)
    finally:
        producer.stop()
    record("broker_loss.acked", len(producer.acked))
    lost_at = time.monotonic()
    cluster.lose_pod(f"{BROKER}/0")
    cluster.run_for(5)
    cluster.settle(until=lambda: cluster.all_active() and broker_ready(cluster, 0), timeout=600)
    record("broker_loss.back_s", time.monotonic() - lost_at)
    assert cluster.unit(f"{BROKER}/0").unit_status.name == "active"
    record("broker_loss.read", producer.check_nothing_lost())
    workload.round_trip([b"after the broker pod loss"], url=url)


def test_relations_removed_and_re_added(cluster: Model, report_on_failure):
    """Scenario 7: zookeeper<->broker and bookkeeper<->broker, removed and re-added x3."""
    url = brokers_url(cluster)
    longest = 0.0
    cycles = 0
    for endpoint, other in (
        ("zookeeper", f"{ZOOKEEPER}:zookeeper"),
        ("bookkeeper", f"{BOOKKEEPER}:bookkeeper"),
    ):
        for cycle in range(3):
            started = time.monotonic()
            (rel,) = cluster.relations_of(BROKER, endpoint)
            cluster.remove_relation(rel.id)
            cluster.settle(until=lambda: True, timeout=300)
            statuses = {u.name: u.unit_status.name for u in cluster.units(BROKER)}
            print(f"{endpoint} relation removed (cycle {cycle + 1}): brokers {statuses}")
            cluster.integrate(other, f"{BROKER}:{endpoint}")
            cluster.settle(timeout=600)
            workload.round_trip(
                [f"{endpoint} cycle {cycle} #{i}".encode() for i in range(5)], url=url
            )
            took = time.monotonic() - started
            print(f"{endpoint} cycle {cycle + 1}: back to active and serving in {took:.0f}s")
            longest = max(longest, took)
            cycles += 1
    record("relations.cycles", cycles)
    record("relations.longest_cycle_s", longest)


class ZnodeWriter:
    """Writes znodes continuously as the super user; retries ConnectionLoss/SessionExpired."""

    def __init__(self, hosts: str, password: str, attempts: int = 30):
        from kazoo.client import KazooClient

        self.client = KazooClient(
            hosts=hosts,
            # ZooKeeper refuses sessions without a SASL login (enforce.auth.schemes=sasl)
            sasl_options={"mechanism": "DIGEST-MD5", "username": "super", "password": password},
            timeout=10,
        )
        self.attempts = attempts
        self.writes = 0
        self.retries = 0
        self.failed: list[str] = []
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rig-znodes")

    def start(self) -> ZnodeWriter:
        self.client.start(timeout=30)
        self.client.ensure_path("/rig-scale")
        self._thread.start()
        return self

    def _run(self) -> None:
        from kazoo.exceptions import ConnectionLoss, NodeExistsError, SessionExpiredError

        n = 0
        while not self._stop.is_set():
            path = f"/rig-scale/w-{n:08d}"
            for attempt in range(self.attempts):
                try:
                    self.client.create(path, str(n).encode())
                    break
                except NodeExistsError:
                    break  # an earlier attempt went through before the connection dropped
                except (ConnectionLoss, SessionExpiredError) as exc:
                    self.retries += 1
                    if attempt == self.attempts - 1:
                        self.failed.append(f"{path}: {exc!r}")
                    time.sleep(1)
                except Exception as exc:  # anything else is a failed write
                    self.failed.append(f"{path}: {exc!r}")
                    break
            else:
                n += 1
                continue
            self.writes += 1
            self.times.append(time.monotonic())
            n += 1
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=60)
        children = len(self.client.get_children("/rig-scale") or [])
        self.client.stop()
        self.client.close()
        return children

    def longest_gap(self) -> float:
        return max((b - a for a, b in itertools.pairwise(self.times)), default=0)


def test_zookeeper_scales_3_5_3_under_writes(cluster: Model, report_on_failure):
    """Scenario 3: ZooKeeper 3 -> 5 -> 3; no failed write, no staying member restarted."""
    staying = service_pids(cluster, ZOOKEEPER)
    assert len(staying) == 3 and None not in staying.values(), staying
    password = cluster.secret("zookeeper-internal", owner=ZOOKEEPER).content()["super-password"]
    hosts = ",".join(f"{cluster.env.plan.address(ZOOKEEPER, n)}:2181" for n in range(3))
    writer = ZnodeWriter(hosts, password).start()
    started = time.monotonic()
    try:
        time.sleep(3)
        cluster.add_unit(ZOOKEEPER, 2)
        cluster.settle(
            until=lambda: cluster.all_active() and len(cluster.units(ZOOKEEPER)) == 5,
            timeout=900,
        )
        five = {u.name: u.pod.service_pid("zookeeper") for u in cluster.units(ZOOKEEPER)}
        print(f"ZooKeeper at 5: {five}")
        cluster.run_for(10)
        cluster.remove_unit(ZOOKEEPER, 2)
        cluster.settle(
            until=lambda: cluster.all_active() and len(cluster.units(ZOOKEEPER)) == 3,
            timeout=900,
        )
        cluster.run_for(10)
        settle_s = time.monotonic() - started
    finally:
        children = writer.stop()
    after = service_pids(cluster, ZOOKEEPER)
    record("zk_scale.settle_s", settle_s)
    record("zk_scale.writes", writer.writes)
    record("zk_scale.retries", writer.retries)
    record("zk_scale.failed", len(writer.failed))
    record("zk_scale.longest_write_gap_s", writer.longest_gap())
    record("zk_scale.restarts_of_staying_members", sum(after[u] != staying[u] for u in staying))
    assert writer.failed == [], writer.failed[:5]
    assert children == writer.writes, (children, writer.writes)
    assert after == staying, f"a ZooKeeper member that stayed restarted: {staying} -> {after}"
    assert writer.writes > 100
    workload.round_trip([b"after ZooKeeper 3 -> 5 -> 3"], url=brokers_url(cluster))
