"""COS relations of bookkeeper-k8s: metrics port and path, log layer, dashboards.

The checks every charm shares are in ``tests/observability_wiring.py``.
"""

from __future__ import annotations

from ops import testing

from tests import observability_wiring as wiring

APP = "bookkeeper-k8s"
METRICS_PORT = 8000


def test_metrics_endpoint_publishes_every_unit(ctx: testing.Context) -> None:
    wiring.check_metrics_endpoint(ctx, APP, METRICS_PORT)


def test_logging_adds_the_log_forwarding_layer(ctx: testing.Context) -> None:
    wiring.check_log_forwarding(ctx, APP)


def test_dashboards_published(ctx: testing.Context) -> None:
    wiring.check_dashboards(ctx)
