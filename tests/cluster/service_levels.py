"""The service-level panels an operator would see in Grafana, drawn from the rig's Prometheus.

``test_observability.py`` saves each panel's ``query_range`` during the bookie kill as
``.service-levels.json`` beside the figures file; :func:`render_png` draws them (matplotlib) into
``docs/explanation/figures/service-levels.png`` for ``python -m tests.cluster.figures``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SOURCE_NAME = ".service-levels.json"


def series_label(labels: dict[str, str]) -> str:
    return labels.get("juju_application") or ", ".join(f"{k}={v}" for k, v in labels.items())


def render_png(source: Path, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data: dict[str, Any] = json.loads(source.read_text())
    panels: dict[str, Any] = data["panels"]
    columns = 2
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(12, 2.6 * rows), sharex=True, squeeze=False)
    for ax, (title, panel) in zip(axes.flat, panels.items(), strict=False):
        for series in panel["series"]:
            points = series["points"]
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                label=series_label(series["labels"]) or title,
            )
        ax.axvline(data["kill_at_s"], color="red", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        if len(panel["series"]) > 1:
            ax.legend(fontsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("seconds (red dashed line: kill -9 of a bookie)", fontsize=8)
    fig.suptitle("Service levels from the rig's Prometheus, bookie killed under a producer")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=90)
    plt.close(fig)
