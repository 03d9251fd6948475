"""COS relations of pulsar-zookeeper-k8s: the metrics port and path,
the log layer and the dashboards.

The shared ``observability`` library is tested in depth with pulsar-k8s
(``test_pulsar_observability.py``); this checks this charm wires it.
"""

from __future__ import annotations

import json
from typing import Any

from charms.pulsar_k8s.v0 import observability
from ops import testing

APP = "pulsar-zookeeper-k8s"
LOKI_URL = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push"


def state(*relations: testing.Relation, leader: bool = True) -> testing.State:
    return testing.State(
        leader=leader,
        relations=[testing.PeerRelation("cluster", peers_data={1: {}}), *relations],
        containers=[testing.Container("pulsar", can_connect=True)],
    )


def test_metrics_endpoint_publishes_every_unit(ctx: testing.Context) -> None:
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    out = ctx.run(ctx.on.update_status(), state(metrics))
    data = out.get_relation(metrics.id).local_app_data
    (job,) = json.loads(data["scrape_jobs"])
    assert job["metrics_path"] == "/metrics"
    assert [sc["targets"] for sc in job["static_configs"]] == [
        [f"{APP}-{n}.{APP}-endpoints.{out.model.name}.svc.cluster.local:8000"] for n in (0, 1)
    ]
    assert json.loads(data["scrape_metadata"])["application"] == APP
    assert "groups" in json.loads(data["alert_rules"])


def test_logging_adds_the_log_forwarding_layer(ctx: testing.Context) -> None:
    logging = testing.Relation(
        "logging",
        remote_app_name="loki",
        remote_units_data={0: {"endpoint": json.dumps({"url": LOKI_URL})}},
    )
    out = ctx.run(ctx.on.update_status(), state(logging))
    layer: dict[str, Any] = dict(
        out.get_container("pulsar").layers[observability.LOG_LAYER_LABEL].to_dict()
    )
    assert layer["log-targets"]["loki-0"]["location"] == LOKI_URL
    assert layer["log-targets"]["loki-0"]["labels"]["juju_application"] == APP


def test_dashboards_published(ctx: testing.Context) -> None:
    dashboards = testing.Relation("grafana-dashboard", remote_app_name="grafana")
    out = ctx.run(ctx.on.update_status(), state(dashboards))
    assert "templates" in json.loads(out.get_relation(dashboards.id).local_app_data["dashboards"])
