"""What a failed scenario prints: the status table, the last events and execs, Pebble logs."""

from __future__ import annotations

import ops

from tests.cluster.rig_entities import RigUnit
from tests.cluster.rig_history import Recorder


def status_table(units: list[RigUnit]) -> str:
    rows = [("unit", "L", "status", "message", "pod", "services", "last event")]
    for unit in units:
        services = "-"
        if unit.pod.running:
            try:
                services = ",".join(
                    f"{s.name}={getattr(s.current, 'value', s.current)}"
                    for s in unit.pod.client().get_services()
                )
            except (ops.pebble.Error, OSError) as exc:
                services = f"? {exc}"
        rows.append(
            (
                unit.name,
                "*" if unit.leader else "",
                unit.unit_status.name,
                unit.unit_status.message,
                "up" if unit.pod.running else "down",
                services or "-",
                unit.last_event,
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def report(units: list[RigUnit], recorder: Recorder, log_lines: int = 25) -> str:
    parts = [status_table(units), "", "last events:"]
    parts += [f"  {e}" for e in recorder.events[-15:]]
    failed = [c for c in recorder.calls if c.op == "exec" and c.exit_code]
    if failed:
        parts += ["", "last failed execs:"]
        for call in failed[-5:]:
            parts.append(f"  {call}")
            output = (call.stderr or "") + (call.stdout or "")
            parts += [f"    | {line}" for line in output.strip().splitlines()[-8:]]
    for unit in units:
        parts += ["", f"--- {unit.name}: pebble logs ---", unit.pod.service_logs(log_lines)]
    return "\n".join(parts)
