"""A timeline of one rig scenario: every unit's status and every JVM's state against wall time.

:class:`TimelineRecorder` samples, in a thread, what each unit's JVM really does (no process,
started, answering, serving/writable/ready), and at the end takes every hook the rig ran (with the
status it left). It saves JSON next to the figures file; :func:`render_png` (matplotlib, in the
figures env) draws it with the critical path of a cold start marked:
ZooKeeper quorum -> BookKeeper metadata -> (writable bookies | cluster metadata -> broker JVM
started) -> ready broker -> first consumed message.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bookkeeper_view import bookie_state
from pulsar_render import BROKER_TOKEN_PATH
from zookeeper_view import server_state as zookeeper_state

from tests.cluster.figures import figures_file
from tests.cluster.hook_figures import init_hooks
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, SERVICES, ZOOKEEPER
from tests.cluster.rig_juju import Model
from tests.cluster.rig_pods import process_start_time

# JVM states, worst to best; "serving" stands for quorum member / writable bookie / ready broker.
NONE, STARTED, UP, READ_ONLY, SERVING = "none", "started", "up", "read-only", "serving"
_PROBE_TIMEOUT_S = 0.3
LOST = "every pod lost"
DERIVED = (
    "ZooKeeper quorum",
    "BookKeeper metadata",
    "writable bookies (ensemble)",
    "cluster metadata",
    "broker JVM started",
    "broker ready",
)


@dataclass
class Timeline:
    name: str
    t0: float
    samples: list[tuple[float, str, str]] = field(default_factory=list)  # (t, unit, jvm state)
    hooks: list[tuple[float, float, str, str, str]] = field(default_factory=list)
    """(start, duration, unit, event, status after the hook)."""
    marks: dict[str, float] = field(default_factory=dict)

    def save(self) -> Path:
        path = figures_file().parent / f".timeline-{self.name}.json"
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: Path) -> Timeline:
        return cls(**json.loads(path.read_text()))

    def first(self, app: str, state: str, count: int, after: float) -> float | None:
        """First time after ``after`` that at least ``count`` units of ``app`` were in
        ``state`` (every unit counts as down at ``after``: a pod loss, a deploy)."""
        now: dict[str, str] = {}
        went_down: set[str] = set()  # a unit counts once seen down after ``after``, not before
        for t, unit, jvm in self.samples:
            if t < after or not unit.startswith(app + "/"):
                continue
            if jvm != state:
                went_down.add(unit)
            if unit not in went_down:
                continue
            now[unit] = jvm
            if sum(1 for s in now.values() if s == state) >= count:
                return t
        return None

    def critical_path(self) -> dict[str, float]:
        """The explicit marks plus, from the samples and hooks, when each step of a cold
        start was reached after the scenario's first mark (or its start)."""
        after = self.marks.get(LOST, self.t0)
        marks = {k: v for k, v in self.marks.items() if k not in DERIVED}
        quorum = self.first(ZOOKEEPER, SERVING, 2, after)
        if quorum:
            marks["ZooKeeper quorum"] = quorum
        for start, duration, unit, event, _ in self.hooks:
            if "[one-off init]" in event and start >= after:
                label = (
                    "BookKeeper metadata" if unit.startswith(BOOKKEEPER) else "cluster metadata"
                )
                marks.setdefault(label, start + duration)
        writable = self.first(BOOKKEEPER, SERVING, 2, after)
        if writable:
            marks["writable bookies (ensemble)"] = writable
        jvm = self.first(BROKER, STARTED, 1, after)
        if jvm:
            marks["broker JVM started"] = jvm
        ready = self.first(BROKER, SERVING, 1, after)
        if ready:
            marks["broker ready"] = ready
        return marks


class TimelineRecorder:
    def __init__(self, model: Model, name: str, period: float = 0.5):
        self.model = model
        self.timeline = Timeline(name, time.time())
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rig-timeline", daemon=True)
        self._last: dict[str, str] = {}
        self.cpu_s = 0.0
        """CPU the sampling thread used (the measurement's own cost, on the measured CPUs)."""
        # unit -> (pid, start time) of the service process last found: finding it asks Pebble and
        # scans /proc, too costly twice a second per unit beside the JVMs being measured.
        self._pids: dict[str, tuple[int, float]] = {}

    def start(self) -> TimelineRecorder:
        self._thread.start()
        return self

    def mark(self, label: str, at: float | None = None) -> None:
        self.timeline.marks[label] = at if at is not None else time.time()

    def stop(self) -> Timeline:
        self._stop.set()
        self._thread.join(timeout=30)
        t0 = self.timeline.t0
        skipped = init_hooks(self.model)
        for record in self.model.events():
            if record.started >= t0:
                event = record.event + (" [one-off init]" if record.seq in skipped else "")
                self.timeline.hooks.append(
                    (record.started, record.duration, record.unit, event, record.status)
                )
        self.timeline.save()
        return self.timeline

    def _run(self) -> None:
        try:
            self._sample()
        finally:
            self.cpu_s = time.thread_time()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for unit in list(self.model.units()):
                try:
                    state = self._probe(unit.name, unit.app.name, unit.pod)
                except Exception:  # a pod going away mid-probe
                    state = NONE
                if self._last.get(unit.name) != state:
                    self._last[unit.name] = state
                    self.timeline.samples.append((time.time(), unit.name, state))
            self._stop.wait(self.period)

    def _service_running(self, unit: str, app: str, pod: Any) -> bool:
        known = self._pids.get(unit)
        if known is not None and process_start_time(known[0]) == known[1]:
            return True
        self._pids.pop(unit, None)
        if not pod.running:
            return False
        pid = pod.service_pid(SERVICES.get(app, ""))
        started = process_start_time(pid) if pid is not None else None
        if pid is None or started is None:
            return False
        self._pids[unit] = (pid, started)
        return True

    def _probe(self, unit: str, app: str, pod: Any) -> str:
        if not self._service_running(unit, app, pod):
            return NONE
        address = self.model.env.plan.address(app, int(unit.rsplit("/", 1)[1]))
        if app == ZOOKEEPER:
            # the AdminServer, as the charm's own probes: 2181 may be closed (TLS on)
            state = zookeeper_state(_get(address, 9990, "/commands/zabstate") or "")
            return {"serving": SERVING, "up": UP}.get(state, STARTED)
        if app == BOOKKEEPER:
            state = bookie_state(_get(address, 8000, "/api/v1/bookie/state"))
            return {"writable": SERVING, "read-only": READ_ONLY}.get(state, STARTED)
        if app == BROKER:
            try:
                token = pod.host_path(BROKER_TOKEN_PATH).read_text().strip()
            except OSError:
                return STARTED
            body = _get(address, 8080, "/admin/v2/brokers/ready", token)
            return SERVING if body is not None else STARTED
        return STARTED


def four_letter_word(host: str, port: int, word: str) -> str:
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S) as sock:
            sock.sendall(word.encode())
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace").strip()
    except OSError:
        return ""


def _get(host: str, port: int, path: str, token: str | None = None) -> str | None:
    import urllib.request

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=_PROBE_TIMEOUT_S * 3) as response:
            return response.read().decode()
    except Exception:
        return None


# -- the picture ----------------------------------------------------------------------------

_JVM_COLOURS = {
    STARTED: "#d0d0d0",
    UP: "#9ecae1",
    READ_ONLY: "#fdae6b",
    SERVING: "#31a354",
}
_STATUS_COLOURS = {
    "active": "#31a354",
    "waiting": "#fec44f",
    "maintenance": "#6baed6",
    "blocked": "#de2d26",
    "error": "#000000",
}


def _status_name(status: str) -> str:
    return status.split(":", 1)[0].split(" ", 1)[0].strip().lower()


def render_png(timeline: Timeline, path: Path, title: str) -> Path:
    """Draw one row per unit: the JVM's state (thick) over the unit's status (thin), hooks as
    ticks, and the critical path as labelled vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    t0 = timeline.t0
    units = sorted({u for _, u, _ in timeline.samples} | {h[2] for h in timeline.hooks})
    order = {app: i for i, app in enumerate((ZOOKEEPER, BOOKKEEPER, BROKER))}
    units.sort(key=lambda u: (order.get(u.rsplit("/", 1)[0], 9), u))
    end = max(
        [t for t, _, _ in timeline.samples]
        + [s + d for s, d, *_ in timeline.hooks]
        + list(timeline.critical_path().values())
        + [t0 + 1]
    )
    fig, ax = plt.subplots(figsize=(13, 1.8 + 0.55 * len(units)))
    for row, unit in enumerate(units):
        y = len(units) - 1 - row
        changes = [(t, s) for t, u, s in timeline.samples if u == unit] + [(end, NONE)]
        for (t, state), (t_next, _) in itertools.pairwise(changes):
            if state in _JVM_COLOURS:
                ax.broken_barh([(t - t0, t_next - t)], (y + 0.05, 0.45), color=_JVM_COLOURS[state])
        hooks = sorted(h for h in timeline.hooks if h[2] == unit)
        statuses = [(s + d, _status_name(st)) for s, d, _, _, st in hooks] + [(end, "")]
        for (t, status), (t_next, _) in itertools.pairwise(statuses):
            colour = _STATUS_COLOURS.get(status)
            if colour:
                ax.broken_barh([(t - t0, t_next - t)], (y - 0.3, 0.2), color=colour)
        ax.vlines([s - t0 for s, *_ in hooks], y - 0.35, y - 0.05, color="#555555", linewidth=0.6)
    marks = sorted(timeline.critical_path().items(), key=lambda item: item[1])
    for i, (label, t) in enumerate(marks):
        ax.axvline(t - t0, color="#b30000", linestyle="--", linewidth=1)
        ax.text(
            t - t0,
            len(units) - 0.3 + 0.35 * (i % 3),
            f" {label} ({t - t0:.0f} s)",
            color="#b30000",
            fontsize=8,
        )
    if marks:
        ax.plot(
            [m[1] - t0 for m in marks],
            [len(units) - 0.45] * len(marks),
            color="#b30000",
            linewidth=3,
            marker="o",
            label="critical path",
        )
    ax.set_yticks(range(len(units)))
    ax.set_yticklabels(list(reversed(units)), fontsize=8)
    ax.set_ylim(-0.6, len(units) + 0.9)
    ax.set_xlim(0, end - t0)
    ax.set_xlabel("seconds since the start of the scenario (wall time)")
    ax.set_title(title, fontsize=10)
    names = {SERVING: "serving (quorum / writable / ready)", UP: "up (answers)"}
    legend = [Patch(color=c, label=f"JVM {names.get(s, s)}") for s, c in _JVM_COLOURS.items()] + [
        Patch(color=c, label=f"status {s}")
        for s, c in _STATUS_COLOURS.items()
        if s in ("active", "waiting", "maintenance")
    ]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7, ncol=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
