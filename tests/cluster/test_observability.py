"""COS on the real workload: a real Prometheus scrapes what the charms published, logs reach Loki.

One settled bundle (module scope) plus ``cos``, a stand-in for the COS applications
(``cos_standin_charm/``: requires ``metrics-endpoint`` and ``grafana-dashboard``, provides
``logging``). The tests run in order:

1. the databags match the ``prometheus_scrape`` schema, every unit shows the Pulsar version;
2. ``prometheus.yml`` and the rule file are built ONLY from what the charms published
   (``scrape_jobs``, ``scrape_metadata``, ``alert_rules``); Debian's ``prometheus`` binary runs on
   a loopback address and every target is up, unauthenticated (brokers have token auth on);
3. while the rig's producer runs, every service-level query and every shipped expression
   (``tests/prom_expressions.py``) returns a series;
4. ``kill -9`` of a bookie: the published BookieDown alert goes pending/firing and clears when
   Pebble has restarted it (the range of the service-level panels is saved for the figure);
5. ``logging``: Pebble accepts the log-target layer and a receiver standing in for Loki (an HTTP
   thread on a loopback address) receives the workloads' lines; removing the relation disables
   the targets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import service_levels, workload
from tests.cluster.figures import figures_file, record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER
from tests.cluster.rig_juju import Model

sys.path.insert(0, str(Path(__file__).parent / "cos_standin_charm" / "src"))
from rig_cos_standin_charm import RigCosStandinCharm  # pyright: ignore[reportMissingImports]

ROOT = Path(__file__).resolve().parents[2]
COS = "cos"
APPS = (ZOOKEEPER, BOOKKEEPER, BROKER)
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROM_PORT = 9090
SCRAPE_INTERVAL = "2s"
BROKER_STATS_PERIOD_S = 60  # Pulsar's statsUpdateFrequencyInSecs default
SCHEMA = ROOT / "tests" / "interface-schemas" / "prometheus_scrape" / "v0" / "provider.json"

# The service-level panels drawn into docs/explanation/figures/service-levels.png.
SERVICE_LEVEL_QUERIES = {
    "availability (targets up, per application)": "avg by (juju_application) (up)",
    "publish latency p50 (ms)": 'max(pulsar_broker_publish_latency{quantile="0.5"})',
    "publish latency p95 (ms)": 'max(pulsar_broker_publish_latency{quantile="0.95"})',
    "publish latency p99 (ms)": 'max(pulsar_broker_publish_latency{quantile="0.99"})',
    "error rate (failed bookie adds / s)": (
        'sum(rate(bookkeeper_server_ADD_ENTRY_REQUEST_count{success="false"}[30s]))'
    ),
    "throughput in (msg/s)": "sum(pulsar_rate_in)",
    "throughput out (msg/s)": "sum(pulsar_rate_out)",
    "backlog (messages)": "sum(pulsar_msg_backlog)",
}


# -- a receiver standing in for Loki ----------------------------------------------------------


@dataclass
class LokiReceiver:
    host: str
    streams: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0

    def start(self) -> LokiReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver.requests += 1
                receiver.streams.extend(body.get("streams", []))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}/loki/api/v1/push"

    def lines_of(self, app: str) -> list[str]:
        return [
            line
            for stream in list(self.streams)
            if stream.get("stream", {}).get("juju_application") == app
            for _, line in stream.get("values", [])
        ]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- Prometheus, configured only from the databags ------------------------------------------


def published(model: Model, app: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The app databag and unit databags ``app`` wrote on its relation with the stand-in."""
    (relation,) = [r for r in model.relations_of(app, "metrics-endpoint")]
    units = {u.name: model.unit_data(relation.id, u.name) for u in model.units(app)}
    return model.app_data(relation.id, app), units


def prometheus_config(model: Model) -> tuple[dict[str, Any], dict[str, Any]]:
    """``prometheus.yml`` and one rule file, as COS's Prometheus builds them from the databags."""
    scrape_configs, groups = [], []
    for app in APPS:
        data, _ = published(model, app)
        metadata = json.loads(data["scrape_metadata"])
        topology = {
            "juju_model": metadata["model"],
            "juju_model_uuid": metadata["model_uuid"],
            "juju_application": metadata["application"],
            "juju_charm": metadata.get("charm_name", ""),
        }
        for job in json.loads(data["scrape_jobs"]):
            scrape_configs.append(
                {
                    "job_name": f"juju_{metadata['model']}_{metadata['application']}_"
                    f"{job['job_name']}",
                    "metrics_path": job.get("metrics_path") or "/metrics",
                    "static_configs": [
                        {"targets": sc["targets"], "labels": {**topology, **sc.get("labels", {})}}
                        for sc in job["static_configs"]
                    ],
                }
            )
        groups += json.loads(data["alert_rules"])["groups"]
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": ["rules.yml"],
        "scrape_configs": scrape_configs,
    }
    return config, {"groups": groups}


@dataclass
class Prometheus:
    host: str
    workdir: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    """Wall-clock time Prometheus started (the start of the service-level figure)."""

    @property
    def base(self) -> str:
        return f"http://{self.host}:{PROM_PORT}"

    def start(self, config: dict[str, Any], rules: dict[str, Any]) -> Prometheus:
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        (self.workdir / "rules.yml").write_text(yaml.safe_dump(rules))
        self.started_at = time.time()
        self.log = (self.workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={self.host}:{PROM_PORT}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if workload.http_get(f"{self.base}/-/ready") is not None:
                return self
            assert self.process.poll() is None, (self.workdir / "prometheus.log").read_text()
            time.sleep(0.5)
        raise AssertionError("prometheus not ready in 60 s")

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def alerts(self, name: str) -> list[str]:
        return [
            a["state"] for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name
        ]

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.log.close()


def log_targets(model: Model, unit: str) -> dict[str, Any]:
    plan: dict[str, Any] = dict(model.pod(unit).client().get_plan().to_dict())
    return plan.get("log-targets", {})


def until(predicate, timeout: float, what: str, period: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s: {what}")
        time.sleep(period)


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Cos:
    model: Model
    prometheus: Prometheus
    loki: LokiReceiver


@pytest.fixture(scope="module")
def cos(bundle: Model) -> Iterator[Cos]:
    assert Path(PROMETHEUS).exists(), "Debian's prometheus package is needed (apt install)"
    bundle.deploy(COS, RigCosStandinCharm)
    host = bundle.env.plan.address(COS, 0)
    loki = LokiReceiver(host).start()
    bundle.config(COS, **{"loki-url": loki.url})
    for app in APPS:
        bundle.integrate(f"{app}:metrics-endpoint", f"{COS}:metrics-endpoint")
        bundle.integrate(f"{app}:grafana-dashboard", f"{COS}:grafana-dashboard")
    bundle.settle(timeout=300)
    workdir = Path(tempfile.mkdtemp(prefix="rig-prometheus-"))
    prometheus = Prometheus(host, workdir)
    try:
        yield Cos(bundle, prometheus, loki)
    finally:
        prometheus.stop()
        loki.stop()
        if not os.environ.get("PULSAR_RIG_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


# -- the scenario -----------------------------------------------------------------------------


def test_published_data_and_workload_version(cos: Cos) -> None:
    # The full schema validation is in the unit tests (jsonschema is not in the rig's env).
    required = json.loads(SCHEMA.read_text())["$defs"]["ApplicationDataModel"]["required"]
    for app in APPS:
        data, units = published(cos.model, app)
        assert set(required) <= set(data), (app, sorted(data))
        assert isinstance(json.loads(data["alert_rules"])["groups"], list)
        jobs = json.loads(data["scrape_jobs"])
        targets = sorted(t for sc in jobs[0]["static_configs"] for t in sc["targets"])
        assert len(targets) == len(cos.model.units(app)), targets
        for name, unit_data in units.items():
            assert unit_data["prometheus_scrape_unit_name"] == name
            assert any(t.startswith(unit_data["prometheus_scrape_unit_address"]) for t in targets)
        (relation,) = cos.model.relations_of(app, "grafana-dashboard")
        assert "templates" in json.loads(cos.model.app_data(relation.id, app)["dashboards"])
    version = (ROOT / "PULSAR_VERSION").read_text().strip()
    assert {u.name: u.workload_version for u in cos.model.units() if u.app.name in APPS} == {
        u.name: version for u in cos.model.units() if u.app.name in APPS
    }


def test_prometheus_scrapes_every_unit(cos: Cos) -> None:
    config, rules = prometheus_config(cos.model)
    started = time.monotonic()
    cos.prometheus.start(config, rules)
    expected = sum(len(cos.model.units(app)) for app in APPS)

    def all_up() -> bool:
        targets = cos.prometheus.api("targets")["activeTargets"]
        return len(targets) == expected and all(t["health"] == "up" for t in targets)

    until(all_up, 60, "every target up")
    # The brokers scraped without a token have authentication on (metrics stay unauthenticated).
    conf = cos.model.pod(f"{BROKER}/0").read("/pulsar/conf/broker.conf").splitlines()
    assert "authenticationEnabled=true" in conf
    assert not any(line.startswith("authenticateMetricsEndpoint=true") for line in conf)
    record("cos_targets_up_s", round(time.monotonic() - started, 1))
    record("cos_targets", expected)
    record("cos_alert_rules", sum(len(g["rules"]) for g in rules["groups"]))


def shipped_expressions() -> list[tuple[str, str]]:
    """Every expression of every shipped rule and dashboard (cos-content's helper)."""
    try:
        from tests.prom_expressions import all_expressions  # pyright: ignore[reportMissingImports]
    except ImportError:  # not merged yet: the published rules stand in
        return []
    return all_expressions(ROOT)


def test_every_query_returns_data_under_load(cos: Cos) -> None:
    producer = workload.BackgroundProducer().start()
    try:
        producer.wait_acks(200)
        time.sleep(10)  # a few scrapes with traffic (2 s interval)
        expressions = [*SERVICE_LEVEL_QUERIES.items(), *shipped_expressions()]
        empty = []
        for source, expr in expressions:
            try:
                if not cos.prometheus.query(expr):
                    empty.append((source, expr))
            except urllib.error.HTTPError as exc:
                empty.append((source, f"{expr}: HTTP {exc.code} {exc.read()[:200]!r}"))
        assert not empty, "queries without data:\n" + "\n".join(map(str, empty))
        record("cos_expressions_evaluated", len(expressions))
    finally:
        producer.stop()


def test_bookie_down_alert_fires_and_clears(cos: Cos) -> None:
    prometheus = cos.prometheus
    rule_names = {
        r.get("alert") for g in prometheus_config(cos.model)[1]["groups"] for r in g["rules"]
    }
    assert "BookieDown" in rule_names or not shipped_expressions(), rule_names
    alert = "BookieDown" if "BookieDown" in rule_names else None
    unit = f"{BOOKKEEPER}/1"
    pod = cos.model.pod(unit)
    producer = workload.BackgroundProducer().start()
    try:
        producer.wait_acks(100)
        time.sleep(10)
        pid = cos.model.kill_service(unit, "bookie")
        killed, killed_wall = time.monotonic(), time.time()
        down = f'up{{juju_application="{BOOKKEEPER}",juju_unit="{unit}"}} == 0'
        until(lambda: prometheus.query(down), 60, "Prometheus sees the bookie down", 0.5)
        if alert is not None:
            until(
                lambda: {"pending", "firing"} & set(prometheus.alerts(alert)),
                60,
                f"{alert} pending/firing",
                0.5,
            )
            record("cos_bookie_down_alert_s", round(time.monotonic() - killed, 1))
        cos.model.settle(
            until=lambda: (
                pod.service_pid("bookie") not in (None, pid)
                and bool(prometheus.query(down.replace("== 0", "== 1")))
            ),
            timeout=180,
        )
        if alert is not None:
            until(lambda: not prometheus.alerts(alert), 60, f"{alert} cleared")
            record("cos_bookie_down_alert_cleared_s", round(time.monotonic() - killed, 1))
        producer.wait_acks(len(producer.acked) + 100)
        # Brokers refresh topic stats (rates, latency summaries) every 60 s
        # (statsUpdateFrequencyInSecs): keep producing until one refresh after the kill is scraped.
        remaining = BROKER_STATS_PERIOD_S + 2 * 2 - (time.monotonic() - killed)
        if remaining > 0:
            time.sleep(remaining)
    finally:
        producer.stop()
    save_service_levels(prometheus, prometheus.started_at, time.time(), killed_wall)


def save_service_levels(
    prometheus: Prometheus, start: float, end: float, killed_at: float
) -> None:
    """Save the panels' ranges beside the figures file (``python -m tests.cluster.figures``)."""
    panels = {}
    for title, expr in SERVICE_LEVEL_QUERIES.items():
        result = prometheus.api("query_range", query=expr, start=start, end=end, step=2)["result"]
        panels[title] = {
            "expr": expr,
            "series": [
                {
                    "labels": s["metric"],
                    "points": [[float(t) - start, float(v)] for t, v in s["values"]],
                }
                for s in result
            ],
        }
    path = figures_file().parent / service_levels.SOURCE_NAME
    path.write_text(json.dumps({"kill_at_s": killed_at - start, "panels": panels}, indent=1))


def test_logs_reach_loki(cos: Cos) -> None:
    model = cos.model
    relations = [model.integrate(f"{app}:logging", f"{COS}:logging") for app in APPS]
    model.settle(timeout=300)
    for unit in model.units():
        if unit.app.name not in APPS:
            continue
        targets = log_targets(model, unit.name)
        assert [t["services"] for t in targets.values()] == [["all"]], (unit.name, targets)
    workload.round_trip([b"cos-logs"])  # broker activity
    model.kill_service(f"{BOOKKEEPER}/2", "bookie")  # a bookie's whole start-up log
    until(
        lambda: all(cos.loki.lines_of(app) for app in (BROKER, BOOKKEEPER)),
        120,
        "log lines from the brokers and bookies",
    )
    for app in APPS:
        record(f"cos_loki_lines_{app}", len(cos.loki.lines_of(app)))
    labels = {k for s in cos.loki.streams for k in s.get("stream", {})}
    assert {"juju_model", "juju_application", "juju_unit", "pebble_service"} <= labels, labels
    for relation in relations:
        model.remove_relation(relation.id)
    model.settle(timeout=300)
    for unit in model.units():
        if unit.app.name in APPS:
            targets = log_targets(model, unit.name)
            assert [t["services"] for t in targets.values()] == [["-all"]], (unit.name, targets)
