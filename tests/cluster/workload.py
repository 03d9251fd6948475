"""Real Pulsar traffic for the rig's scenarios: producers that record what was acknowledged,
readers that check it is all there, and the standalone baseline.

Everything here talks to the real processes over the rig's addresses (the test process is in
the rig's mount namespace, so the rig's names resolve).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cluster.rig_bundle import BROKER
from tests.cluster.rig_net import service_fqdn
from tests.cluster.rig_pods import process_group_cpu_s

SERVICE_URL = f"pulsar://{service_fqdn(BROKER)}:6650"


def new_topic(prefix: str = "rig") -> str:
    return f"persistent://public/default/{prefix}-{uuid.uuid4().hex[:8]}"


class Operator:
    """Who the scenarios act as: the operator, with the charm's admin token.

    Authentication is on from the brokers' first start, so every client and admin call carries
    the token the `get-admin-token` action returns (read here from the same Juju secret).
    """

    token: str | None = None

    @classmethod
    def of(cls, model) -> None:
        cls.token = model.secret("pulsar-internal", owner=BROKER).content()["admin-token"]


def client(
    url: str = SERVICE_URL,
    timeout: int = 90,
    token: str | Callable[[], str] | None = None,
    tls_ca_file: str | None = None,
):
    """A pulsar-client; ``token`` may be a function, called on every (re)connection.

    ``tls_ca_file``: for ``pulsar+ssl`` URLs, the PEM file of the CAs to trust (host names
    checked); the client reads it for each new connection, so rewriting it updates the trust.
    """
    import pulsar

    token = token or Operator.token
    tls: dict[str, Any] = {}
    if tls_ca_file:
        tls = {"tls_trust_certs_file_path": tls_ca_file, "tls_validate_hostname": True}
    return pulsar.Client(
        url,
        authentication=pulsar.AuthenticationToken(token) if token else None,
        operation_timeout_seconds=timeout,
        connection_timeout_ms=5000,
        **tls,
    )


def http_get(url: str, timeout: float = 5.0) -> str | None:
    headers = {"Authorization": f"Bearer {Operator.token}"} if Operator.token else {}
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read().decode()
    except Exception:
        return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def round_trip(payloads: list[bytes], url: str = SERVICE_URL, timeout: int = 90) -> None:
    """Produce ``payloads`` on a fresh topic and consume them back, identical and in order."""
    c = client(url, timeout)
    try:
        topic = new_topic()
        consumer = c.subscribe(topic, "rig")
        producer = c.create_producer(topic)
        for p in payloads:
            producer.send(p)
        for p in payloads:
            message = consumer.receive(timeout_millis=timeout * 1000)
            assert message.data() == p
            consumer.acknowledge(message)
    finally:
        c.close()


OPEN_WITHIN_S = 90.0
# One attempt to open a reader. The C++ client (under pulsar-client) can stay stuck on a broker
# that answered "bundle not served by this instance, redo the lookup" ("Ignoring reconnection
# request since we're already connected") until the operation times out: short attempts, each
# with a fresh client, get past the old owner's expiry instead of one 90 s wait.
OPEN_ATTEMPT_S = 15


def read_all(
    topic: str,
    expected: int | None = None,
    idle_ms: int = 15_000,
    url: str = SERVICE_URL,
    token: str | Callable[[], str] | None = None,
    tls_ca_file: str | None = None,
) -> list[bytes]:
    """Every message of ``topic`` from the earliest, until ``expected`` or ``idle_ms`` idle.

    Opening the reader is retried for up to ``OPEN_WITHIN_S``, as a client library's user
    would: right after a broker pod is lost, its topics move to a new owner only once its old
    ZooKeeper session expires (the broker's 30 s session timeout), and a lookup in between
    times out although every broker answers ready.
    """
    import pulsar

    deadline = time.monotonic() + OPEN_WITHIN_S
    while True:
        c = client(url, timeout=OPEN_ATTEMPT_S, token=token, tls_ca_file=tls_ca_file)
        try:
            reader = c.create_reader(topic, pulsar.MessageId.earliest, receiver_queue_size=2000)
            break
        except pulsar.Timeout:
            c.close()
            if time.monotonic() > deadline:
                raise
    try:
        got: list[bytes] = []
        while expected is None or len(got) < expected:
            try:
                got.append(reader.read_next(timeout_millis=idle_ms).data())
            except Exception:  # timeout: nothing more
                break
        return got
    finally:
        c.close()


def is_subsequence(wanted: list[bytes], got: list[bytes]) -> tuple[bool, int]:
    """Whether ``wanted`` appears in ``got`` in order (duplicates in ``got`` allowed);
    returns (ok, index of the first missing element or len(wanted))."""
    it = iter(got)
    for i, w in enumerate(wanted):
        for g in it:
            if g == w:
                break
        else:
            return False, i
    return True, len(wanted)


RETAIN_SUBSCRIPTION = "rig-retain"


@dataclass
class BackgroundProducer:
    """Sends numbered messages one by one, waiting for each ack; a failed send is retried with
    the same payload. Records each acknowledged payload and when it was acknowledged."""

    topic: str = field(default_factory=new_topic)
    url: str = SERVICE_URL
    interval: float = 0.02
    send_timeout_ms: int = 30_000
    acked: list[bytes] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    attempts: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    token: str | Callable[[], str] | None = None
    """None: the operator's admin token; a function is asked on every (re)connection."""
    tls_ca_file: str | None = None
    """For a ``pulsar+ssl`` URL: the CA file the client trusts (see ``client``)."""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rig-producer", daemon=True)
        self._client = client(self.url, token=self.token, tls_ca_file=self.tls_ca_file)
        # A durable subscription from before the first send keeps every message as backlog.
        # Without one, the brokers' default retention (none) lets a topic that moves to another
        # broker drop its closed ledger: Pulsar's policy for unread data, not a loss, but it
        # made "nothing acknowledged lost" fail on data nobody was meant to keep.
        self._client.subscribe(self.topic, RETAIN_SUBSCRIPTION).close()
        self._producer = self._client.create_producer(
            self.topic, send_timeout_millis=self.send_timeout_ms, batching_enabled=False
        )

    def start(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            payload = f"{self.topic}:{n:08d}".encode()
            self.attempts += 1
            try:
                self._producer.send(payload)
            except Exception as exc:
                self.failures += 1
                self.errors.append(f"{time.monotonic():.1f} {exc!r}")
                time.sleep(0.5)
                continue
            self.acked.append(payload)
            self.ack_times.append(time.monotonic())
            n += 1
            time.sleep(self.interval)

    def wait_acks(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(self.acked) >= count, f"only {len(self.acked)} acks; errors {self.errors[-5:]}"

    def acked_after(self, t: float) -> int:
        return sum(1 for a in self.ack_times if a > t)

    def longest_gap(self, since: float | None = None, until: float | None = None) -> float:
        times = [t for t in self.ack_times if (since is None or t >= since)]
        times = [t for t in times if until is None or t <= until]
        if since is not None:
            times = [since, *times]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.send_timeout_ms / 1000 + 30)
        try:
            self._producer.flush()
            self._client.close()
        except Exception:
            pass

    def check_nothing_lost(self) -> int:
        """Read the topic from the earliest: every acked payload is there, in order."""
        got = read_all(self.topic, url=self.url, token=self.token, tls_ca_file=self.tls_ca_file)
        ok, index = is_subsequence(self.acked, got)
        assert ok, (
            f"acknowledged message #{index} ({self.acked[index]!r}) missing or out of order; "
            f"{len(self.acked)} acked, {len(got)} read"
        )
        return len(got)


class PidWatcher:
    """Samples service PIDs (and, optionally, a readiness probe) in a background thread."""

    def __init__(self, probes: dict[str, tuple], period: float = 0.25):
        # probes: name -> (pod, service, ready_fn or None)
        self.probes = probes
        self.period = period
        self.samples: list[tuple[float, dict[str, tuple[int | None, bool]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rig-pids", daemon=True)

    def start(self) -> PidWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            row = {}
            for name, (pod, service, ready) in self.probes.items():
                try:
                    pid = pod.service_pid(service)
                except Exception:
                    pid = None
                ok = pid is not None and (ready is None or ready())
                row[name] = (pid, ok)
            self.samples.append((time.monotonic(), row))
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def pids(self, name: str) -> list[int]:
        seen: list[int] = []
        for _, row in self.samples:
            pid = row[name][0]
            if pid is not None and (not seen or seen[-1] != pid):
                seen.append(pid)
        return seen

    def down_intervals(self, name: str) -> list[tuple[float, float]]:
        intervals, start = [], None
        for t, row in self.samples:
            ok = row[name][1]
            if not ok and start is None:
                start = t
            elif ok and start is not None:
                intervals.append((start, t))
                start = None
        if start is not None:
            intervals.append((start, self.samples[-1][0]))
        return intervals


# ---------------------------------------------------------------------------------------------
# The baseline: bin/pulsar standalone from the same distribution
# ---------------------------------------------------------------------------------------------

STANDALONE_ADDRESS = "127.0.9.10"
STANDALONE_MEM = "-Xms256m -Xmx512m -XX:MaxDirectMemorySize=256m"


@dataclass(frozen=True)
class StandaloneRun:
    first_message_s: float
    cpu_s: float
    """CPU-seconds ``bin/pulsar standalone`` used until its first message."""


def standalone_first_message(
    pulsar_home: Path, conf_dir: Path | None = None, timeout: float = 300
) -> StandaloneRun:
    """Start ``bin/pulsar standalone`` bound to :data:`STANDALONE_ADDRESS` with its data in a
    temporary directory; return the seconds until it served its first message (produce +
    consume) and the CPU it used. The process group is killed afterwards, whatever happens."""
    if port_open(STANDALONE_ADDRESS, 6650):
        # a standalone left running (a killed earlier run) would answer in 0.1 s
        raise RuntimeError(f"{STANDALONE_ADDRESS}:6650 already answers: not measuring that")
    work = Path(tempfile.mkdtemp(prefix="pulsar-standalone-"))
    conf = work / "standalone.conf"
    lines = []
    for line in ((conf_dir or pulsar_home / "conf") / "standalone.conf").read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key in ("bindAddress", "advertisedAddress"):
            line = f"{key}={STANDALONE_ADDRESS}"
        lines.append(line)
    conf.write_text("\n".join(lines) + "\n")
    env = dict(
        os.environ,
        PULSAR_MEM=STANDALONE_MEM,
        PULSAR_STANDALONE_CONF=str(conf),
        PULSAR_LOG_DIR=str(work / "logs"),
    )
    # No PULSAR_GC: conf/pulsar_env.sh's default (ZGC with pre-touched heap), as every JVM the
    # charms start runs, so the baseline and the cluster pay for the same collector.
    env.pop("PULSAR_GC", None)
    argv = [
        str(pulsar_home / "bin" / "pulsar"),
        "standalone",
        "--no-functions-worker",
        "--no-stream-storage",
        "--advertised-address",
        STANDALONE_ADDRESS,
        "--metadata-dir",
        str(work / "metadata"),
        "--bookkeeper-dir",
        str(work / "bookkeeper"),
        "--zookeeper-dir",
        str(work / "zookeeper"),
        "--zookeeper-port",
        "12181",
        "--bookkeeper-port",
        "13181",
    ]
    url = f"pulsar://{STANDALONE_ADDRESS}:6650"
    log = open(work / "stdout.log", "wb")  # noqa: SIM115
    started = time.monotonic()
    process = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = started + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"standalone exited {process.returncode}: "
                    + (work / "stdout.log").read_text()[-3000:]
                )
            if port_open(STANDALONE_ADDRESS, 6650):
                try:
                    round_trip([b"standalone"], url=url, timeout=10)
                    return StandaloneRun(
                        time.monotonic() - started, process_group_cpu_s(process.pid)
                    )
                except Exception:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    "standalone served nothing in time: "
                    + (work / "stdout.log").read_text()[-3000:]
                )
            time.sleep(0.25)
    finally:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
