"""The Pebble client the charms get in the rig: the unit's real Pebble, every call recorded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ops

from tests.cluster.rig_history import Recorder, tail


class RecordingClient(ops.pebble.Client):
    """A real Pebble client that records what the charm does with it."""

    def __init__(self, socket_path: str, recorder: Recorder):
        super().__init__(socket_path=socket_path)
        self._recorder = recorder

    def exec(self, command: list[str], **kwargs: Any) -> Any:  # type: ignore[override]
        record = self._recorder.call(
            "exec",
            command=list(command),
            environment=dict(kwargs.get("environment") or {}),
            user_id=kwargs.get("user_id"),
            user=kwargs.get("user"),
            group_id=kwargs.get("group_id"),
            working_dir=kwargs.get("working_dir"),
        )
        process = super().exec(command, **kwargs)
        wait, wait_output = process.wait, process.wait_output

        def recorded_wait() -> None:
            try:
                wait()
                record.exit_code = 0
            except ops.pebble.ExecError as exc:
                record.exit_code = exc.exit_code
                record.stdout, record.stderr = tail(exc.stdout), tail(exc.stderr)
                raise

        def recorded_wait_output() -> Any:
            try:
                result = wait_output()
            except ops.pebble.ExecError as exc:
                record.exit_code = exc.exit_code
                record.stdout, record.stderr = tail(exc.stdout), tail(exc.stderr)
                raise
            record.exit_code = 0
            record.stdout, record.stderr = tail(result[0]), tail(result[1])
            return result

        process.wait = recorded_wait  # type: ignore[method-assign]
        process.wait_output = recorded_wait_output  # type: ignore[method-assign]
        return process

    def push(self, path: str, source: Any, **kwargs: Any) -> None:  # type: ignore[override]
        keep = ("user_id", "group_id", "permissions", "make_dirs")
        self._recorder.call("push", path=str(path), **{k: kwargs.get(k) for k in keep})
        super().push(path, source, **kwargs)

    def add_layer(self, label: str, layer: Any, *, combine: bool = False) -> None:
        self._recorder.call("add_layer", label=label, combine=combine)
        super().add_layer(label, layer, combine=combine)

    def replan_services(self, timeout: float = 30.0, delay: float = 0.1) -> Any:
        self._recorder.call("replan")
        return super().replan_services(timeout, delay)

    def start_services(self, services: Iterable[str], *args: Any, **kwargs: Any) -> Any:
        self._recorder.call("start", services=list(services))
        return super().start_services(list(services), *args, **kwargs)

    def stop_services(self, services: Iterable[str], *args: Any, **kwargs: Any) -> Any:
        self._recorder.call("stop", services=list(services))
        return super().stop_services(list(services), *args, **kwargs)

    def restart_services(self, services: Iterable[str], *args: Any, **kwargs: Any) -> Any:
        self._recorder.call("restart", services=list(services))
        return super().restart_services(list(services), *args, **kwargs)

    def send_signal(self, sig: int | str, services: Iterable[str]) -> None:
        self._recorder.call("signal", signal=str(sig), services=list(services))
        super().send_signal(sig, list(services))

    def make_dir(self, path: str, **kwargs: Any) -> None:  # type: ignore[override]
        self._recorder.call("make_dir", path=str(path))
        super().make_dir(path, **kwargs)

    def remove_path(self, path: str, *, recursive: bool = False) -> None:  # type: ignore[override]
        self._recorder.call("remove_path", path=str(path), recursive=recursive)
        super().remove_path(path, recursive=recursive)
