"""The one Pebble workload abstraction every charm of this repository uses.

A ``Workload`` wraps the charm's container and converges it without needless change: files are
pushed only when their bytes differ, a layer is added only when the plan lacks it, storage is
chowned only when it is not the workload user's yet. Every Pebble failure (connection, API,
path, change, timeout, exec exit code) surfaces as one exception type, :class:`WorkloadError`,
which each charm's reconcile catches and turns into a Waiting status; one-off tools return an
:class:`ExecResult` instead of raising.

Also here: :func:`unit_fqdn`, the unit's stable pod DNS name every listener binds to.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import ops
from ops import pebble

LIBID = "5b0c8f3a2e7d4c1b9a6f0e2d4c8b7a11"
LIBAPI = 0
LIBPATCH = 5

logger = logging.getLogger(__name__)

# The apachepulsar/pulsar image runs as uid 10000, gid 0.
WORKLOAD_UID = 10000
WORKLOAD_GID = 0
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
_OUTPUT_TAIL_LINES = 20

PEBBLE_ERRORS = (
    pebble.ConnectionError,
    pebble.APIError,
    pebble.ChangeError,
    pebble.ExecError,
    pebble.PathError,
    pebble.TimeoutError,
    ops.ModelError,
)

_T = TypeVar("_T")


class WorkloadError(Exception):
    """Pebble could not do what was asked; the reconcile waits and a later event retries."""


@dataclass(frozen=True)
class ExecResult:
    """The outcome of a one-off tool: ``output`` is the tail of stdout+stderr (or the error)."""

    ok: bool
    output: str


def unit_fqdn(unit_name: str, app_name: str, model_name: str) -> str:
    """Return the pod's stable name ``<app>-<n>.<app>-endpoints.<model>.svc.cluster.local``."""
    number = unit_name.rsplit("/", 1)[-1]
    return f"{app_name}-{number}.{app_name}-endpoints.{model_name}.svc.cluster.local"


def restart_token(files: Mapping[str, str | bytes], layer: Mapping[str, Any]) -> str:
    """Digest one rendering: equal inputs give equal tokens (rolling-restart)."""
    items = [
        (path, content if isinstance(content, str) else content.hex())
        for path, content in sorted(files.items())
    ]
    digest = hashlib.sha256(json.dumps([items, layer], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def workload_service(
    summary: str,
    command: str,
    environment: Mapping[str, str],
    alive_check: str,
    **extra: Any,
) -> dict[str, Any]:
    """Build a Pebble service run as the image's user, restarted when ``alive_check`` fails."""
    return {
        "override": "replace",
        "summary": summary,
        "command": command,
        "startup": "enabled",
        "user-id": WORKLOAD_UID,
        # Not "group-id": 0 -- ops drops falsy fields, so gid 0 would never reach Pebble,
        # which then looks up the user's primary group instead: name the group.
        "group": "root",
        "environment": dict(environment),
        "on-check-failure": {alive_check: "restart"},
        **extra,
    }


def pebble_check(level: str, threshold: int, **probe: Any) -> dict[str, Any]:
    """Build a Pebble check with every field spelled out (the plan reads back equal)."""
    return {
        "override": "replace",
        "level": level,
        "period": "10s",
        "timeout": "3s",
        "threshold": threshold,
        **probe,
    }


def reconcile_events(
    charm: ops.CharmBase,
    container: str,
    *,
    relations: Sequence[str] = (),
    storages: Sequence[str] = (),
) -> list[ops.BoundEvent]:
    """Every event a charm's one reconcile observes: lifecycle, Pebble, relations, storage."""
    on = charm.on
    events = [
        on.install,
        on.config_changed,
        on.upgrade_charm,
        on.update_status,
        on.leader_elected,
        on.secret_changed,
        on[container].pebble_ready,
        on[container].pebble_check_failed,
        on[container].pebble_check_recovered,
        # A workload's watcher (view_check.watched_command) records a notice when it changes.
        on[container].pebble_custom_notice,
    ]
    for relation in relations:
        events += [
            on[relation].relation_created,
            on[relation].relation_joined,
            on[relation].relation_changed,
            on[relation].relation_departed,
            on[relation].relation_broken,
        ]
    events += [on[storage].storage_attached for storage in storages]
    return events


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def _without_override(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key != "override"}


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-_OUTPUT_TAIL_LINES:])


class Workload:
    """One container, seen from the charm. Every Pebble error is a :class:`WorkloadError`."""

    def __init__(self, container: ops.Container, private_paths: Sequence[str] = ()):
        self._container = container
        self._private_paths = frozenset(private_paths)

    @property
    def container(self) -> ops.Container:
        return self._container

    def _call(self, what: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except PEBBLE_ERRORS as exc:
            raise WorkloadError(f"{what}: {type(exc).__name__}") from exc

    def can_connect(self) -> bool:
        return self._container.can_connect()

    # -- files ----------------------------------------------------------------------------

    def read(self, path: str) -> bytes | None:
        """Return the file's bytes, or None when it does not exist."""
        try:
            return self._container.pull(path, encoding=None).read()
        except pebble.PathError:
            return None
        except PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot read {path}: {type(exc).__name__}") from exc

    def read_text(self, path: str) -> str | None:
        """Return a small file's text (None when it does not exist)."""
        content = self.read(path)
        return None if content is None else content.decode("utf-8", "replace")

    def changed_files(self, files: Mapping[str, str | bytes]) -> list[str]:
        """Paths whose content in the container differs from ``files``."""
        return [path for path, content in files.items() if self.read(path) != _as_bytes(content)]

    def push(self, files: Mapping[str, str | bytes]) -> list[str]:
        """Push only the files that differ (private ones mode 0600); return the paths written."""
        written = self.changed_files(files)
        for path in written:
            mode = PRIVATE_MODE if path in self._private_paths else PUBLIC_MODE
            self._call(
                f"cannot push {path}",
                lambda path=path, mode=mode: self._container.push(
                    path,
                    files[path],
                    make_dirs=True,
                    permissions=mode,
                    user_id=WORKLOAD_UID,
                    group_id=WORKLOAD_GID,
                ),
            )
        return written

    def remove(self, path: str) -> None:
        if self._call(f"cannot stat {path}", lambda: self._container.exists(path)):
            self._call(f"cannot remove {path}", lambda: self._container.remove_path(path))

    def owner_uid(self, path: str) -> int | None:
        """Return the uid owning ``path``, or None when it does not exist."""
        try:
            info = self._container.list_files(path, itself=True)
        except pebble.PathError:
            return None
        except pebble.APIError as exc:
            if exc.code == 404:  # Pebble answers 404 for a path that does not exist
                return None
            raise WorkloadError(f"cannot stat {path}: APIError {exc.code}") from exc
        except PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot stat {path}: {type(exc).__name__}") from exc
        return info[0].user_id if info else None

    def ensure_owned(self, path: str) -> None:
        """Juju mounts storage root-owned: give it to the workload user (once)."""
        owner = self.owner_uid(path)
        if owner is None:
            self._call(
                f"cannot create {path}",
                lambda: self._container.make_dir(
                    path, make_parents=True, user_id=WORKLOAD_UID, group_id=WORKLOAD_GID
                ),
            )
        elif owner != WORKLOAD_UID:
            argv = ["chown", "-R", f"{WORKLOAD_UID}:{WORKLOAD_GID}", path]
            self._call(
                f"cannot chown {path}",
                lambda: self._container.exec(
                    argv, user_id=0, group_id=0, timeout=600
                ).wait_output(),
            )

    # -- the layer and services -----------------------------------------------------------

    def layer_differs(self, layer: Mapping[str, Any]) -> bool:
        """Whether the plan lacks (or has another version of) a service, check or log target."""
        plan = self._call("cannot read the plan", self._container.get_plan).to_dict()
        wanted = pebble.Layer(cast("pebble.LayerDict", dict(layer))).to_dict()
        for section in ("services", "checks", "log-targets"):
            current = plan.get(section, {})
            for name, spec in wanted.get(section, {}).items():
                if _without_override(current.get(name, {})) != _without_override(spec):
                    return True
        return False

    def add_layer(self, label: str, layer: Mapping[str, Any]) -> bool:
        """Add (combine) the layer when the plan differs from it; return whether it did."""
        if not self.layer_differs(layer):
            return False
        self._call(
            "cannot add the layer",
            lambda: self._container.add_layer(
                label, cast("pebble.LayerDict", dict(layer)), combine=True
            ),
        )
        return True

    def log_targets(self) -> dict[str, dict[str, Any]]:
        """Return the plan's log targets (name -> spec as Pebble reports it)."""
        plan = self._call("cannot read the plan", self._container.get_plan).to_dict()
        targets = cast("dict[str, Any]", plan).get("log-targets", {})
        return {name: dict(spec) for name, spec in targets.items()}

    def file_names(self, directory: str, pattern: str) -> list[str]:
        """Names of the files in ``directory`` matching the glob ``pattern`` (none: [])."""
        try:
            infos = self._container.list_files(directory, pattern=pattern)
        except pebble.PathError:
            return []
        except pebble.APIError as exc:
            if exc.code == 404:
                return []
            raise WorkloadError(f"cannot list {directory}: APIError {exc.code}") from exc
        except PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot list {directory}: {type(exc).__name__}") from exc
        return sorted(info.name for info in infos)

    def is_running(self, service: str) -> bool:
        services = self._call("cannot read services", lambda: self._container.get_services())
        return service in services and services[service].is_running()

    def replan(self, *, wait: bool = True) -> None:
        """Apply the plan. ``wait=False`` returns once Pebble has the change (see ``start``)."""
        if wait:
            self._call("cannot replan", self._container.replan)
        else:
            self._call("cannot replan", lambda: self._container.pebble.replan_services(timeout=0))

    def start(self, service: str, *, wait: bool = True) -> None:
        """Start ``service``.

        ``wait=False`` returns once Pebble has the change, not after the second Pebble waits for
        the process to stay up: for a service that was not running, whose checks tell the charm
        when it serves (nothing old can answer in its place). A restart must wait: until it has
        stopped, the old process still answers.
        """
        if wait:
            self._call(f"cannot start {service}", lambda: self._container.start(service))
        else:
            self._call(
                f"cannot start {service}",
                lambda: self._container.pebble.start_services([service], timeout=0),
            )

    def restart(self, service: str) -> None:
        self._call(f"cannot restart {service}", lambda: self._container.restart(service))

    def stop(self, service: str) -> None:
        self._call(f"cannot stop {service}", lambda: self._container.stop(service))

    # -- one-off tools --------------------------------------------------------------------

    def run(
        self,
        argv: list[str],
        environment: Mapping[str, str],
        timeout: float,
        working_dir: str = "/pulsar",
    ) -> ExecResult:
        """Run a tool as the workload user; failure (exit, timeout, Pebble) is a value."""
        try:
            process = self._container.exec(
                argv,
                environment=dict(environment),
                user_id=WORKLOAD_UID,
                group_id=WORKLOAD_GID,
                working_dir=working_dir,
                timeout=timeout,
                combine_stderr=True,
            )
            output, _ = process.wait_output()
            return ExecResult(True, _tail(output or ""))
        except pebble.ExecError as exc:
            return ExecResult(False, f"exit code {exc.exit_code}: {_tail(str(exc.stdout or ''))}")
        except PEBBLE_ERRORS as exc:
            return ExecResult(False, f"{type(exc).__name__}: {exc}")
