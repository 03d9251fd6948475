"""The unit agent's update-status timer, as Juju's uniter runs it.

Each unit agent starts its own timer when it starts (with the unit, and again in a new pod: the
agent runs in the pod's charm container), fires update-status when it expires and starts it
again, waiting a random 80-120% of the model's ``update-status-hook-interval`` each time
(``worker/uniter/timer.go``). Juju's default interval is 5 minutes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from tests.cluster.rig_entities import RigUnit

UPDATE_STATUS_INTERVAL = 300.0
"""Juju's model default ``update-status-hook-interval`` (5m)."""
UPDATE_STATUS_JITTER = 0.2


class UpdateStatusTimers:
    def __init__(self, interval: float, seed: int = 0):
        self.interval = interval
        self._random = random.Random(seed)  # reproducible phases

    def wait(self, interval: float | None = None) -> float:
        nominal = self.interval if interval is None else interval
        spread = UPDATE_STATUS_JITTER * nominal
        return nominal - spread + self._random.random() * 2 * spread

    def start(self, unit: RigUnit) -> None:
        """The unit agent (re)started: its timer starts now."""
        unit.agent_started = time.time()
        unit.next_update_status = time.monotonic() + self.wait()

    def due(
        self, units: Iterable[RigUnit], now: float, interval: float | None = None
    ) -> list[RigUnit]:
        """Units whose timer expired (each restarted); units without a pod have no agent."""
        fired = []
        for unit in units:
            if unit.pod.running and now >= unit.next_update_status:
                unit.next_update_status = now + self.wait(interval)
                fired.append(unit)
        return fired
