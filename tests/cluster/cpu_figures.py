"""Where a scenario's CPU went: the machine's busy time, each unit's JVM, the rig itself.

On a 2-CPU machine a cold deploy is CPU-bound (seven JVMs start at once), so its wall time
cannot drop below the CPU-seconds it needs divided by the CPUs: these figures give that floor
next to the measured time (issue 7), and say how much of the CPU was the rig standing in for
Juju rather than the workload.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.cluster.rig_bundle import SERVICES
from tests.cluster.rig_pods import process_cpu_s

if TYPE_CHECKING:
    from tests.cluster.rig_juju import Model

_TICK = os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU-seconds every CPU of the machine spent on anything but idle and I/O wait."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is counted in user already)
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK


def jvm_cpu_s(model: Model) -> dict[str, float | None]:
    """Each unit's service JVM: CPU-seconds it has used since it started."""
    out: dict[str, float | None] = {}
    for unit in model.units():
        service = SERVICES.get(unit.app.name)
        if service is None:
            continue
        pid = unit.pod.service_pid(service)
        cpu = process_cpu_s(pid) if pid is not None else None
        out[unit.name] = None if cpu is None else round(cpu, 2)
    return out


@dataclass
class CpuMeter:
    """Busy CPU of the machine and of this (the rig's) process between start and stop."""

    busy_start: float = 0.0
    rig_start: float = 0.0
    wall_start: float = 0.0

    @classmethod
    def start(cls) -> CpuMeter:
        return cls(busy_cpu_s(), _own_cpu_s(), time.monotonic())

    def figures(self, model: Model, measurement_cpu_s: float = 0.0) -> dict[str, object]:
        """The scenario's CPU: all of it, its JVMs', the rig's (without the measurement's own
        sampling thread), and the floor that much CPU puts under the wall time."""
        busy = busy_cpu_s() - self.busy_start
        wall = time.monotonic() - self.wall_start
        jvms = jvm_cpu_s(model)
        cpus = os.cpu_count() or 1
        return {
            "cpus": cpus,
            "busy_s": round(busy, 2),
            "utilisation": round(busy / (wall * cpus), 2),
            "floor_s": round(busy / cpus, 2),
            "jvms_s": round(sum(v for v in jvms.values() if v is not None), 2),
            "rig_s": round(_own_cpu_s() - self.rig_start - measurement_cpu_s, 2),
            "measurement_s": round(measurement_cpu_s, 2),
            "per_jvm_s": jvms,
        }


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system
