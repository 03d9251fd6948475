"""In-place Pulsar refreshes (``juju refresh``): the pre-refresh check, progress and downgrades.

A sidecar refresh replaces the application's pods one at a time, highest ordinal first;
Kubernetes moves on only once the new pod is ready (Pebble's ``/v1/health?level=ready``, each
charm's ready checks). This library adds what the operator needs around that:

- the ``pre-refresh-check`` action (the name charm-refresh uses): the charm's own probe of
  every unit's live workload, plus "no refresh in progress"; it fails naming what is unhealthy,
  so an operator (or a script) does not start a refresh on an unhealthy cluster;
- the refresh progress in the unit status while the units run different Pulsar versions
  (``refresh in progress: 1/3 units on 4.1.8``), from the ``workload-version`` every unit
  records in its peer databag (the observability library writes it);
- the highest Pulsar version the application has ever run, kept by the leader in the peer
  application databag (``highest-workload-version``), and the refusal of a downgrade below its
  minor version: patch releases of one minor share the metadata format, so a rollback within
  ``4.1.x`` is allowed; a unit whose image is an older minor does not start its workload
  (Blocked, naming both versions) and its pod never turns ready (a failing ready check), so
  Kubernetes replaces no further pod.

Peer data is parsed before use: a version that is not ``<major>.<minor>.<patch>[suffix]`` is
ignored (and never recorded as the highest).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import ops
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.observability import (
    DISTRIBUTION_LIB,
    VERSION_JAR_PATTERN,
    WORKLOAD_VERSION_KEY,
    distribution_version,
)
from charms.pulsar_k8s.v0.view_check import RETRY_PREFIX, exec_check
from charms.pulsar_k8s.v0.workload import PEBBLE_ERRORS, Workload, WorkloadError

LIBID = "5f3c2a1b0e9d4c8b7a6f5e4d3c2b1a09"
LIBAPI = 0
LIBPATCH = 2

logger = logging.getLogger(__name__)

ACTION = "pre-refresh-check"
HIGHEST_VERSION_KEY = "highest-workload-version"
# A refused pod is never ready, so Kubernetes replaces no further pod (the rollout stops there).
REFUSED_LAYER = "refresh-refused"
REFUSED_CHECK = "refresh-refused"
_VERSION = re.compile(r"^([0-9]{1,4})\.([0-9]{1,4})\.([0-9]{1,4})([A-Za-z0-9.\-]{0,40})$")

Version = tuple[int, int, int]


def parse_version(text: object) -> Version | None:
    """``"4.1.8"`` -> ``(4, 1, 8)``; anything else (including None) -> None."""
    if not isinstance(text, str):
        return None
    match = _VERSION.match(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def newest(versions: list[str]) -> str | None:
    """Return the highest of the valid versions (None: none is valid)."""
    valid = [v for v in versions if parse_version(v) is not None]
    return max(valid, key=lambda v: parse_version(v) or (0, 0, 0)) if valid else None


def downgrade_problem(running: str, highest: str | None) -> str | None:
    """Why ``running`` may not start after ``highest`` has run (None: it may).

    Patch releases of one minor version share the metadata format: a rollback within
    ``major.minor`` is allowed; below it is refused.
    """
    now, top = parse_version(running), parse_version(highest)
    if now is None or top is None or now[:2] >= top[:2]:
        return None
    return (
        f"refresh refused: Pulsar {running} is older than {highest}, which this application "
        f"has run (downgrades across minor versions are not supported)"
    )


def progress(versions: Mapping[str, str]) -> str | None:
    """``"refresh in progress: 1/3 units on 4.1.8"`` while units run different versions."""
    valid = {unit: v for unit, v in versions.items() if parse_version(v) is not None}
    if len(set(valid.values())) <= 1:
        return None
    target = newest(list(valid.values()))
    done = sum(1 for v in valid.values() if v == target)
    return f"refresh in progress: {done}/{len(valid)} units on {target}"


def ready_gate(view_path: str, healthy: str) -> dict[str, Any]:
    """Return a readiness check (``level: ready``: Kubernetes' probe) on the charm's view.

    It passes while the view the charm last recorded (``view_check``) is ``healthy`` (or a retry
    recorded while healthy), so a refresh moves to the next pod only once this one's workload
    serves. Down from its first run until the charm records ``healthy``.
    """
    script = (
        f"read -r seen _ < {view_path} 2>/dev/null; "
        f'case "$seen" in {healthy}|{RETRY_PREFIX}{healthy}) exit 0;; esac; exit 1'
    )
    return exec_check(script, level="ready")


def refused_layer() -> dict[str, Any]:
    """Return the layer of a refused pod: a readiness check that always fails."""
    return {
        "summary": "refresh refused: this pod stays not ready",
        "checks": {REFUSED_CHECK: exec_check("exit 1", level="ready", shell="/bin/sh")},
    }


class Refresh(ops.Object):
    """Wire the pre-refresh check, the progress status and the downgrade refusal into a charm.

    ``probe`` returns the problems of the application's live workload (empty: healthy); it may
    raise ``WorkloadError`` (reported as a problem). The charm calls :meth:`refused` before it
    starts its workload and passes its status through :meth:`status`.
    """

    def __init__(self, charm: ops.CharmBase, peer: str, probe: Callable[[], list[str]]):
        super().__init__(charm, "refresh")
        self._charm = charm
        self._peer = peer
        self._probe = probe
        charm.framework.observe(charm.on[ACTION].action, self._on_pre_refresh_check)

    # -- peer data ------------------------------------------------------------------------

    def _relation(self) -> ops.Relation | None:
        return self._charm.model.get_relation(self._peer)

    def unit_versions(self) -> dict[str, str]:
        """Return unit name -> the Pulsar version it last ran (valid versions only)."""
        relation = self._relation()
        if relation is None:
            return {}
        found = {}
        for unit in [self._charm.unit, *relation.units]:
            version = relation.data[unit].get(WORKLOAD_VERSION_KEY)
            if parse_version(version) is not None:
                found[unit.name] = str(version)
        return found

    def highest(self) -> str | None:
        relation = self._relation()
        if relation is None:
            return None
        recorded = relation.data[self._charm.app].get(HIGHEST_VERSION_KEY)
        return recorded if parse_version(recorded) is not None else None

    # -- the reconcile's steps ------------------------------------------------------------

    def refused(self, workload: Workload) -> ops.BlockedStatus | None:
        """Blocked when this pod's image is a refused downgrade (before anything starts)."""
        if not workload.can_connect():
            return None
        running = distribution_version(workload.file_names(DISTRIBUTION_LIB, VERSION_JAR_PATTERN))
        problem = downgrade_problem(running, self.highest()) if running else None
        if problem:
            logger.warning("%s", problem)
            layer = refused_layer()
            if workload.layer_differs(layer):
                workload.add_layer(REFUSED_LAYER, layer)
            return ops.BlockedStatus(problem)
        return None

    def status(self, status: ops.StatusBase) -> ops.StatusBase:
        """Leader: record the highest version run; an active unit shows a refresh in progress."""
        versions = self.unit_versions()
        relation = self._relation()
        if relation is not None and self._charm.unit.is_leader():
            top = newest([*versions.values(), self.highest() or ""])
            if top is not None:
                write_if_different(relation.data[self._charm.app], {HIGHEST_VERSION_KEY: top})
        moving = progress(versions)
        if moving and isinstance(status, ops.ActiveStatus):
            return ops.ActiveStatus(f"{moving}; {status.message}".rstrip("; "))
        return status

    # -- the action -----------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Everything that should stop a refresh now (empty: go ahead)."""
        found = []
        moving = progress(self.unit_versions())
        if moving:
            found.append(f"{moving} (finish or roll it back first)")
        try:
            found.extend(self._probe())
        except (WorkloadError, *PEBBLE_ERRORS) as exc:
            found.append(f"cannot probe the workload: {type(exc).__name__}")
        return found

    def _on_pre_refresh_check(self, event: ops.ActionEvent) -> None:
        found = self.problems()
        if found:
            event.fail(f"pre-refresh check failed: {'; '.join(found)}")
            return
        versions = sorted(set(self.unit_versions().values()))
        event.set_results(
            {
                "result": "healthy: ready to refresh",
                "workload-version": ", ".join(versions) or "unknown",
            }
        )
