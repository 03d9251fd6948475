"""The only module that talks to Pebble: files, the broker service, one-off execs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import ops
from ops import pebble
from pulsar_render import (
    DATA_DIR,
    LAYER_NAME,
    PRIVATE_PATHS,
    SERVICE_NAME,
    STATUS_FILE_PATH,
)

logger = logging.getLogger(__name__)

USER_ID = 10000
GROUP_ID = 0
# Long enough for clients and the load balancer to notice status.html failing, short enough
# for a hook (and below the alive check's threshold x period, which would restart the broker).
DRAIN_SECONDS = 5.0
# Files holding credentials are private to the workload user.
_PRIVATE_FILES = PRIVATE_PATHS


@dataclass(frozen=True)
class ExecResult:
    ok: bool
    output: str


class PulsarWorkload:
    """The broker container as the charm sees it. Pebble errors surface as values or False."""

    def __init__(self, container: ops.Container, sleep: Callable[[float], None] | None = None):
        self._container = container
        self._sleep = sleep or time.sleep

    def can_connect(self) -> bool:
        return self._container.can_connect()

    # -- files ---------------------------------------------------------------------------

    def read(self, path: str) -> str | None:
        try:
            return self._container.pull(path, encoding="utf-8").read()
        except (pebble.PathError, pebble.APIError):
            return None

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return self._container.pull(path, encoding=None).read()
        except (pebble.PathError, pebble.APIError):
            return None

    def changed_files(self, files: Mapping[str, str | bytes]) -> list[str]:
        """Paths whose content in the container differs from ``files``."""
        return [
            path for path, content in files.items() if self.read_bytes(path) != _bytes(content)
        ]

    def push(self, files: Mapping[str, str | bytes]) -> list[str]:
        """Push only the files that differ; returns the paths written."""
        written = []
        for path in self.changed_files(files):
            mode = 0o600 if path in _PRIVATE_FILES else 0o644
            self._container.push(
                path,
                files[path],
                make_dirs=True,
                permissions=mode,
                user_id=USER_ID,
                group_id=GROUP_ID,
            )
            written.append(path)
        return written

    def ensure_data_dir_owned(self) -> None:
        """Juju mounts storage root-owned; the broker runs as uid 10000."""
        try:
            info = self._container.list_files(DATA_DIR, itself=True)
        except (pebble.APIError, pebble.PathError):
            info = []
        if not info:
            self._container.make_dir(
                DATA_DIR, make_parents=True, user_id=USER_ID, group_id=GROUP_ID
            )
        elif info[0].user_id != USER_ID:
            self._container.exec(["chown", "-R", f"{USER_ID}:{GROUP_ID}", DATA_DIR]).wait()

    def create_status_file(self) -> None:
        self._container.push(STATUS_FILE_PATH, "OK\n", user_id=USER_ID, group_id=GROUP_ID)

    def remove_status_file(self) -> None:
        if self._container.exists(STATUS_FILE_PATH):
            self._container.remove_path(STATUS_FILE_PATH)

    # -- service -------------------------------------------------------------------------

    def layer_differs(self, layer: Mapping[str, Any]) -> bool:
        plan = self._container.get_plan().to_dict()
        wanted = pebble.Layer(_layer_dict(layer)).to_dict()
        for section in ("services", "checks"):
            current = plan.get(section, {})
            for name, spec in wanted.get(section, {}).items():
                if _without_override(current.get(name, {})) != _without_override(spec):
                    return True
        return False

    def add_layer(self, layer: Mapping[str, Any]) -> None:
        self._container.add_layer(LAYER_NAME, _layer_dict(layer), combine=True)

    def is_running(self) -> bool:
        try:
            return self._container.get_service(SERVICE_NAME).is_running()
        except ops.ModelError:
            return False

    def start(self) -> None:
        """Start the broker with its status file in place (status.html must answer 200)."""
        self.create_status_file()
        self._container.replan()
        if not self.is_running():
            self._container.start(SERVICE_NAME)

    def stop_draining(self) -> None:
        """Take the broker out of rotation (status.html -> 404), let load move, then stop."""
        self.remove_status_file()
        self._sleep(DRAIN_SECONDS)
        if self.is_running():
            self._container.stop(SERVICE_NAME)

    # -- one-off tools -------------------------------------------------------------------

    def run(self, argv: list[str], env: Mapping[str, str], timeout: float) -> ExecResult:
        """Run a tool as the workload user; failure (exit, timeout, Pebble) is a value."""
        try:
            process = self._container.exec(
                argv,
                environment=dict(env),
                user_id=USER_ID,
                group_id=GROUP_ID,
                working_dir="/pulsar",
                timeout=timeout,
                combine_stderr=True,
            )
            output, _ = process.wait_output()
            return ExecResult(True, output or "")
        except pebble.ExecError as exc:
            return ExecResult(False, f"exit code {exc.exit_code}: {_tail(str(exc.stdout))}")
        except (pebble.TimeoutError, pebble.ChangeError, pebble.APIError, ops.ModelError) as exc:
            return ExecResult(False, str(exc))


def _bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def _layer_dict(layer: Mapping[str, Any]) -> pebble.LayerDict:
    # The renderer builds plain dicts (it does not depend on ops); their shape is Pebble's.
    return cast("pebble.LayerDict", dict(layer))


def _without_override(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "override"}


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
