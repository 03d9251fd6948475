"""COS relations of pulsar-proxy-k8s: metrics port and path, log layer.

The checks every charm shares are in ``tests/observability_wiring.py``.
"""

from __future__ import annotations

import json

from ops import testing

from tests import observability_wiring as wiring

APP = "pulsar-proxy-k8s"


def test_metrics_endpoint_publishes_every_unit_unauthenticated(ctx: testing.Context) -> None:
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    state = testing.State(
        leader=True,
        relations=[testing.PeerRelation("cluster", peers_data={1: {}}), metrics],
        containers=[testing.Container("pulsar", can_connect=True)],
    )
    out = ctx.run(ctx.on.update_status(), state)
    data = out.get_relation(metrics.id).local_app_data
    (job,) = json.loads(data["scrape_jobs"])
    # the proxy serves /metrics/ (authenticateMetricsEndpoint=false in proxy.conf)
    assert job["metrics_path"] == "/metrics/"
    assert [sc["targets"] for sc in job["static_configs"]] == [
        [f"{APP}-{n}.{APP}-endpoints.{out.model.name}.svc.cluster.local:8080"] for n in (0, 1)
    ]
    rules = json.loads(data["alert_rules"])
    assert [r["alert"] for g in rules["groups"] for r in g["rules"]] == ["PulsarProxyDown"]


def test_logging_adds_the_log_forwarding_layer(ctx: testing.Context) -> None:
    wiring.check_log_forwarding(ctx, APP)
