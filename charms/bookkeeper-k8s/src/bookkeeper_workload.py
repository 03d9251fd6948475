"""The only module that talks to the bookie's container (Pebble) and to the bookie's HTTP API.

Every method turns transient failures (Pebble unreachable, exec failing, HTTP errors) into return
values the reconcile can turn into a status; nothing here raises on them.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ops
from bookkeeper_render import HTTP_PORT, SERVICE, WORKLOAD_GID, WORKLOAD_UID

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 5.0
STATE_TIMEOUT_S = 1.0
_OUTPUT_TAIL = 2000


@dataclass(frozen=True)
class ExecResult:
    ok: bool
    output: str  # stdout + stderr, trimmed to the tail (that is where the JVM puts the cause)


class BookieWorkload:
    def __init__(self, container: ops.Container, address: str):
        self._container = container
        self._address = address

    # --- Pebble ---------------------------------------------------------------------------

    def can_connect(self) -> bool:
        return self._container.can_connect()

    def file_differs(self, path: str, content: str) -> bool:
        try:
            return self._container.pull(path).read() != content
        except (ops.pebble.PathError, ops.pebble.APIError):
            return True

    def read_text(self, path: str) -> str | None:
        try:
            return self._container.pull(path).read()
        except (ops.pebble.PathError, ops.pebble.APIError):
            return None

    def push(self, path: str, content: str, *, mode: int) -> None:
        self._container.push(
            path,
            content,
            make_dirs=True,
            permissions=mode,
            user_id=WORKLOAD_UID,
            group_id=WORKLOAD_GID,
        )

    def layer_differs(self, layer: Mapping[str, Any]) -> bool:
        """Whether the plan lacks (or has another version of) any service or check of ``layer``."""
        wanted = ops.pebble.Layer(dict(layer))  # type: ignore[arg-type]
        plan = self._container.get_plan()
        for name, service in wanted.services.items():
            current = plan.services.get(name)
            if current is None or current.to_dict() != service.to_dict():
                return True
        for name, check in wanted.checks.items():
            current = plan.checks.get(name)
            if current is None or _check_dict(current) != _check_dict(check):
                return True
        return False

    def add_layer(self, label: str, layer: Mapping[str, Any]) -> None:
        self._container.add_layer(label, dict(layer), combine=True)  # type: ignore[arg-type]

    def is_running(self) -> bool:
        try:
            return self._container.get_service(SERVICE).is_running()
        except ops.ModelError:  # no such service yet
            return False

    def start(self) -> None:
        # replan starts the service (startup: enabled) and (re)starts what changed in the plan.
        self._container.replan()

    def restart(self) -> None:
        self._container.restart(SERVICE)

    def owned_by_workload(self, path: str) -> bool:
        try:
            info = self._container.list_files(path, itself=True)[0]
        except (ops.pebble.APIError, IndexError):
            return False
        return info.user_id == WORKLOAD_UID

    def chown_to_workload(self, path: str) -> bool:
        """``chown -R`` as root: Juju mounts storage root-owned, the bookie runs as 10000."""
        command = ["chown", "-R", f"{WORKLOAD_UID}:{WORKLOAD_GID}", path]
        return self.run(command, user_id=0, group_id=0, timeout=600).ok

    def run(
        self,
        command: Sequence[str],
        *,
        environment: Mapping[str, str] | None = None,
        user_id: int = WORKLOAD_UID,
        group_id: int = WORKLOAD_GID,
        timeout: float = 120,
    ) -> ExecResult:
        try:
            process = self._container.exec(
                list(command),
                environment=dict(environment or {}),
                user_id=user_id,
                group_id=group_id,
                working_dir="/pulsar",
                timeout=timeout,
                combine_stderr=True,
            )
            stdout, _ = process.wait_output()
            return ExecResult(True, (stdout or "")[-_OUTPUT_TAIL:])
        except ops.pebble.ExecError as exc:
            output = exc.stdout if isinstance(exc.stdout, str) else ""
            logger.info("%s exited %s", command[:3], exc.exit_code)
            return ExecResult(False, output[-_OUTPUT_TAIL:])
        except (ops.pebble.ChangeError, ops.pebble.APIError, ops.pebble.ConnectionError) as exc:
            logger.warning("cannot run %s: %s", command[:3], exc)
            return ExecResult(False, str(exc)[-_OUTPUT_TAIL:])
        except TimeoutError:
            logger.warning("%s timed out after %ss", command[:3], timeout)
            return ExecResult(False, f"timed out after {timeout}s")

    # --- the bookie's own HTTP API ---------------------------------------------------------

    def is_ready(self) -> bool:
        """GET /api/v1/bookie/is_ready: 200 once the bookie is writable (or read-only ready)."""
        return self._http_get("/api/v1/bookie/is_ready") is not None

    def writable_bookies(self) -> list[str] | None:
        """Ids of the writable bookies the cluster knows, or None when the API does not answer.

        GET /api/v1/bookie/list_bookies?type=rw answers a JSON object whose keys are bookie ids.
        """
        body = self._http_get("/api/v1/bookie/list_bookies?type=rw&print_hostnames=true")
        if body is None:
            return None
        try:
            listed = json.loads(body)
        except ValueError:
            return None
        if not isinstance(listed, dict):
            return None
        return sorted(str(bookie) for bookie in listed)

    def state_json(self) -> str | None:
        """GET /api/v1/bookie/state: the bookie's own view of itself (None: no answer).

        A local call a live bookie answers in milliseconds: a short timeout keeps a hook on a
        frozen or starting bookie short (the view check wakes the unit when it answers).
        """
        return self._http_get("/api/v1/bookie/state", timeout=STATE_TIMEOUT_S)

    def _http_get(self, path: str, timeout: float = HTTP_TIMEOUT_S) -> str | None:
        url = f"http://{self._address}:{HTTP_PORT}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.debug("GET %s failed: %s", url, exc)
            return None


def _check_dict(check: ops.pebble.Check) -> dict[str, Any]:
    # Pebble reports a check's threshold/period as given; drop empty fields both sides leave out.
    return {k: v for k, v in check.to_dict().items() if v not in (None, "", {}, 0)}
