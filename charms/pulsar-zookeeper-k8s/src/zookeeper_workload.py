"""The only module that talks to Pebble: files, the layer, the service, the storage owner.

Convergence rules (so an unchanged reconcile touches nothing):
- files are pushed only when their content differs from what is in the container;
- the layer is added only when the plan's service/check differ from it;
- a running server is never re-rendered in place: ZooKeeper rewrites its own static and dynamic
  config on every reconfig, so the charm keeps a small state file (what it last applied: a token
  and the JAAS users) instead of comparing the live config files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ops
from ops import pebble
from zookeeper_render import (
    ALIVE_CHECK,
    DYNAMIC_CONF_PATH,
    SERVICE,
    STATE_PATH,
    STORAGE_PATH,
)

logger = logging.getLogger(__name__)

WORKLOAD_UID = 10000
WORKLOAD_GID = 0
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
_PEBBLE_ERRORS = (
    pebble.ConnectionError,
    pebble.APIError,
    pebble.ChangeError,
    pebble.ExecError,
    pebble.PathError,
    pebble.TimeoutError,
    ops.ModelError,
)


class WorkloadError(Exception):
    """Pebble could not do what was asked; the charm waits and retries on a later event."""


@dataclass(frozen=True)
class File:
    """A file to place in the container."""

    content: str
    mode: int = PUBLIC_MODE


@dataclass(frozen=True)
class DesiredWorkload:
    """What the server should run with.

    ``files`` are read only at start (a change needs a restart, summarised by ``token``);
    ``dynamic_config`` is written only when the server (re)starts, never while it runs.
    """

    files: Mapping[str, File]
    dynamic_config: str
    layer: Mapping[str, Any]
    token: str
    users: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class AppliedState:
    """What the charm last started the server with (from the state file)."""

    token: str
    users: tuple[str, ...]


class ZooKeeperWorkload:
    """The `pulsar` container seen from the charm."""

    def __init__(self, container: ops.Container):
        self._container = container

    def can_connect(self) -> bool:
        return self._container.can_connect()

    def ensure_storage_owned(self) -> None:
        """Give the (root-owned on first mount) storage to the workload user, once."""
        try:
            info = self._container.list_files(STORAGE_PATH, itself=True)
            if info and info[0].user_id == WORKLOAD_UID:
                return
            self._container.exec(
                ["chown", "-R", f"{WORKLOAD_UID}:{WORKLOAD_GID}", STORAGE_PATH],
                timeout=60,
            ).wait()
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot own {STORAGE_PATH}: {exc}") from exc

    def is_running(self) -> bool:
        try:
            services = self._container.get_services(SERVICE)
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot read services: {exc}") from exc
        return SERVICE in services and services[SERVICE].is_running()

    def applied(self) -> AppliedState | None:
        """Return the state file, or None when this container never started the server."""
        try:
            raw = self._container.pull(STATE_PATH).read()
        except pebble.PathError:
            return None
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot read {STATE_PATH}: {exc}") from exc
        try:
            data = json.loads(raw)
            return AppliedState(str(data["token"]), tuple(str(u) for u in data["users"]))
        except (ValueError, KeyError, TypeError):
            return None

    def start(self, desired: DesiredWorkload) -> None:
        """Server not running: lay down every file (membership included) and start it."""
        self._apply(desired)
        try:
            self._container.start(SERVICE)
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot start {SERVICE}: {exc}") from exc

    def restart(self, desired: DesiredWorkload) -> None:
        """Restart a running server (lock held) after laying down every file."""
        self._apply(desired)
        try:
            self._container.restart(SERVICE)
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot restart {SERVICE}: {exc}") from exc

    def read(self, path: str) -> str | None:
        """Return a small file's content (None when missing)."""
        try:
            return self._container.pull(path).read()
        except pebble.PathError:
            return None
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot read {path}: {exc}") from exc

    def record(self, path: str, content: str) -> None:
        """Write a small file the workload's checks read, only when it differs."""
        try:
            self._push_if_changed(path, File(content))
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot write {path}: {exc}") from exc

    def ensure_checks(self, label: str, layer: Mapping[str, Any]) -> None:
        """Add a checks-only layer unless the plan already has these checks as they are."""
        wanted = pebble.Layer(dict(layer))  # type: ignore[arg-type]
        try:
            plan = self._container.get_plan()
            if all(
                name in plan.checks and plan.checks[name].to_dict() == check.to_dict()
                for name, check in wanted.checks.items()
            ):
                return
            self._container.add_layer(label, wanted, combine=True)
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot add the {label} layer: {exc}") from exc

    def _apply(self, desired: DesiredWorkload) -> None:
        files = {**desired.files, DYNAMIC_CONF_PATH: File(desired.dynamic_config)}
        state = json.dumps({"token": desired.token, "users": list(desired.users)})
        try:
            for path, file in files.items():
                self._push_if_changed(path, file)
            self._add_layer_if_changed(desired.layer)
            self._push_if_changed(STATE_PATH, File(state))
        except _PEBBLE_ERRORS as exc:
            raise WorkloadError(f"cannot configure the container: {exc}") from exc

    def _push_if_changed(self, path: str, file: File) -> bool:
        try:
            if self._container.pull(path).read() == file.content:
                return False
        except pebble.PathError:
            pass
        self._container.push(
            path,
            file.content,
            make_dirs=True,
            permissions=file.mode,
            user_id=WORKLOAD_UID,
            group_id=WORKLOAD_GID,
        )
        return True

    def _add_layer_if_changed(self, layer: Mapping[str, Any]) -> bool:
        wanted = pebble.Layer(dict(layer))  # type: ignore[arg-type]
        plan = self._container.get_plan()
        current_service = plan.services.get(SERVICE)
        current_check = plan.checks.get(ALIVE_CHECK)
        if (
            current_service is not None
            and current_check is not None
            and current_service.to_dict() == wanted.services[SERVICE].to_dict()
            and current_check.to_dict() == wanted.checks[ALIVE_CHECK].to_dict()
        ):
            return False
        self._container.add_layer(SERVICE, wanted, combine=True)
        return True
