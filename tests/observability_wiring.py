"""What every charm's COS wiring must do, checked from the charm's own unit tests.

The shared ``observability`` library is tested in depth with pulsar-k8s
(``test_pulsar_observability.py``); the other charms call these to prove they wire it: their
metrics port and path, the log-forwarding layer, the dashboards.
"""

from __future__ import annotations

import json
from typing import Any

from charms.pulsar_k8s.v0 import observability
from ops import testing

LOKI_URL = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push"


def _state(*relations: testing.Relation) -> testing.State:
    return testing.State(
        leader=True,
        relations=[testing.PeerRelation("cluster", peers_data={1: {}}), *relations],
        containers=[testing.Container("pulsar", can_connect=True)],
    )


def check_metrics_endpoint(ctx: testing.Context, app: str, port: int) -> None:
    """One scrape job at /metrics naming every unit's stable address, with alert rules."""
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    out = ctx.run(ctx.on.update_status(), _state(metrics))
    data = out.get_relation(metrics.id).local_app_data
    (job,) = json.loads(data["scrape_jobs"])
    assert job["metrics_path"] == "/metrics"
    assert [sc["targets"] for sc in job["static_configs"]] == [
        [f"{app}-{n}.{app}-endpoints.{out.model.name}.svc.cluster.local:{port}"] for n in (0, 1)
    ]
    assert json.loads(data["scrape_metadata"])["application"] == app
    assert "groups" in json.loads(data["alert_rules"])


def check_log_forwarding(ctx: testing.Context, app: str) -> None:
    """A related Loki becomes a Pebble log target labelled with the application."""
    logging = testing.Relation(
        "logging",
        remote_app_name="loki",
        remote_units_data={0: {"endpoint": json.dumps({"url": LOKI_URL})}},
    )
    out = ctx.run(ctx.on.update_status(), _state(logging))
    layer: dict[str, Any] = dict(
        out.get_container("pulsar").layers[observability.LOG_LAYER_LABEL].to_dict()
    )
    assert layer["log-targets"]["loki-0"]["location"] == LOKI_URL
    assert layer["log-targets"]["loki-0"]["labels"]["juju_application"] == app


def check_dashboards(ctx: testing.Context) -> None:
    """The grafana-dashboard relation carries the charm's dashboards."""
    dashboards = testing.Relation("grafana-dashboard", remote_app_name="grafana")
    out = ctx.run(ctx.on.update_status(), _state(dashboards))
    assert "templates" in json.loads(out.get_relation(dashboards.id).local_app_data["dashboards"])
