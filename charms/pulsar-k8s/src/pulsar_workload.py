"""The broker container: the core ``Workload`` plus the broker's start and drain steps."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import ops
from charms.pulsar_k8s.v0.workload import ExecResult, Workload
from pulsar_render import DATA_DIR, LAYER_NAME, PRIVATE_PATHS, SERVICE_NAME, STATUS_FILE_PATH

logger = logging.getLogger(__name__)

# Long enough for clients and the load balancer to notice status.html failing, short enough
# for a hook (and below the alive check's threshold x period, which would restart the broker).
DRAIN_SECONDS = 5.0

__all__ = ["ExecResult", "PulsarWorkload"]


class PulsarWorkload(Workload):
    """The broker container; every Pebble failure raises ``WorkloadError``."""

    def __init__(self, container: ops.Container, sleep: Callable[[float], None] | None = None):
        super().__init__(container, private_paths=sorted(PRIVATE_PATHS))
        self._sleep = sleep or time.sleep

    def ensure_data_dir_owned(self) -> None:
        self.ensure_owned(DATA_DIR)

    def create_status_file(self) -> None:
        self.push({STATUS_FILE_PATH: "OK\n"})

    def add_broker_layer(self, layer: Mapping[str, Any]) -> bool:
        return self.add_layer(LAYER_NAME, layer)

    def broker_running(self) -> bool:
        return self.is_running(SERVICE_NAME)

    def start_broker(self) -> None:
        """Start the broker with its status file in place (status.html must answer 200)."""
        self.create_status_file()
        # Stopped (or never started) before: no hook waits for the JVM, the view check wakes
        # the unit when the broker is ready.
        self.replan(wait=False)
        if not self.broker_running():
            self.start(SERVICE_NAME, wait=False)

    def stop_draining(self) -> None:
        """Take the broker out of rotation (status.html -> 404), let load move, then stop."""
        self.remove(STATUS_FILE_PATH)
        self._sleep(DRAIN_SECONDS)
        if self.broker_running():
            self.stop(SERVICE_NAME)
