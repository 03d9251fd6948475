"""What ran in the rig: the events delivered and the calls the charms made on their Pebble."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OUTPUT_TAIL = 4000
"""How much of an exec's stdout/stderr a :class:`PebbleCall` keeps (the end)."""


@dataclass
class PebbleCall:
    """One call the charm made on its unit's real Pebble."""

    seq: int
    unit: str
    event: str
    op: str
    """``exec``, ``push``, ``add_layer``, ``replan``, ``start``, ``stop``, ``restart``, ..."""
    args: dict[str, Any]
    exit_code: int | None = None
    """For ``exec``: set once the charm waited for the process."""
    stdout: str | None = None
    """For ``exec`` + ``wait_output()``: the last :data:`OUTPUT_TAIL` characters."""
    stderr: str | None = None

    @property
    def command(self) -> list[str]:
        return list(self.args.get("command", []))

    def __str__(self) -> str:
        detail = " ".join(self.command) if self.op == "exec" else self.args
        return f"#{self.seq} {self.unit} [{self.event}] {self.op} {detail} -> {self.exit_code}"


@dataclass
class EventRecord:
    seq: int
    unit: str
    event: str
    started: float
    duration: float = 0.0
    status: str = ""
    error: str | None = None
    juju_log: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        tail = f" ERROR {self.error.splitlines()[-1]}" if self.error else ""
        return (
            f"#{self.seq} {self.unit} {self.event} ({self.duration:.1f}s) -> {self.status}{tail}"
        )


class Recorder:
    def __init__(self) -> None:
        self.events: list[EventRecord] = []
        self.calls: list[PebbleCall] = []
        self.current: tuple[str, str] = ("", "")

    def call(self, op: str, **args: Any) -> PebbleCall:
        unit, event = self.current
        record = PebbleCall(len(self.calls), unit, event, op, args)
        self.calls.append(record)
        return record


def tail(output: str | bytes | None) -> str | None:
    """The last :data:`OUTPUT_TAIL` characters of a process output."""
    if output is None:
        return None
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    return text[-OUTPUT_TAIL:]
