"""The ZooKeeper container: the core ``Workload`` plus what the charm last applied.

Convergence rules (so an unchanged reconcile touches nothing):
- files are pushed only when their content differs from what is in the container;
- the layer is added only when the plan's service/check differ from it;
- a running server is never re-rendered in place: ZooKeeper rewrites its own static and dynamic
  config on every reconfig, so the charm keeps a small state file (what it last applied: a token
  and the JAAS users) instead of comparing the live config files.
Every Pebble failure raises ``WorkloadError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import ops
from charms.pulsar_k8s.v0.workload import Workload
from zookeeper_render import DYNAMIC_CONF_PATH, JAAS_PATH, SERVICE, STATE_PATH, STORAGE_PATH
from zookeeper_tls import OFF, STAGES, TLS_PATHS, TLS_PRIVATE_PATHS, bundle_fingerprints


@dataclass(frozen=True)
class DesiredWorkload:
    """What the server should run with.

    ``files`` are read only at start (a change needs a restart, summarised by ``token``);
    ``dynamic_config`` is written only when the server (re)starts, never while it runs.
    """

    files: Mapping[str, str]
    dynamic_config: str
    layer: Mapping[str, Any]
    token: str
    users: tuple[str, ...] = field(default=())
    quorum_tls: str = OFF
    secure_port: bool = False
    # the CA (PEM) of the certificate the server presents ("" : none) and the fingerprints
    # of the CAs its trust store holds
    presented_ca: str = ""
    trusted: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class AppliedState:
    """What the charm last started the server with (from the state file)."""

    token: str
    users: tuple[str, ...]
    quorum_tls: str = OFF
    secure_port: bool = False
    presented_ca: str = ""
    trusted: tuple[str, ...] = ()


class ZooKeeperWorkload(Workload):
    """The `pulsar` container seen from the ZooKeeper charm."""

    def __init__(self, container: ops.Container):
        super().__init__(container, private_paths=[JAAS_PATH, *TLS_PRIVATE_PATHS])

    def ensure_storage_owned(self) -> None:
        self.ensure_owned(STORAGE_PATH)

    def server_running(self) -> bool:
        return self.is_running(SERVICE)

    def applied(self) -> AppliedState | None:
        """Return the state file, or None when this container never started the server."""
        raw = self.read(STATE_PATH)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            stage = data.get("quorum-tls", OFF)
            presented = data.get("presented-ca", "")
            applied = AppliedState(
                str(data["token"]),
                tuple(str(u) for u in data["users"]),
                stage if stage in STAGES else OFF,
                data.get("secure-port") is True,
                presented if isinstance(presented, str) else "",
                tuple(str(t) for t in data.get("trusted-cas", [])),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if applied.secure_port and "presented-ca" not in data:
            # started by a revision that did not record them: its trust file then held
            # exactly the CA of the certificate it presents
            ca = self.read_text(TLS_PATHS.ca) or ""
            applied = replace(
                applied, presented_ca=ca, trusted=tuple(sorted(bundle_fingerprints(ca)))
            )
        return applied

    def start_server(self, desired: DesiredWorkload) -> None:
        """Server not running: lay down every file (membership included) and start it."""
        self._apply(desired)
        # Not running before: no hook waits for the JVM (the view check says when it answers).
        self.start(SERVICE, wait=False)

    def restart_server(self, desired: DesiredWorkload) -> None:
        """Restart a running server (lock held) after laying down every file."""
        self._apply(desired)
        self.restart(SERVICE)

    def record(self, path: str, content: str) -> None:
        """Write a small file the workload's checks read (the core pushes only a change)."""
        self.push({path: content})

    def ensure_checks(self, label: str, layer: Mapping[str, Any]) -> None:
        """Add a checks-only layer unless the plan already has these checks as they are."""
        if self.layer_differs(layer):
            self.add_layer(label, layer)

    def _apply(self, desired: DesiredWorkload) -> None:
        state = json.dumps(
            {
                "token": desired.token,
                "users": list(desired.users),
                "quorum-tls": desired.quorum_tls,
                "secure-port": desired.secure_port,
                "presented-ca": desired.presented_ca,
                "trusted-cas": list(desired.trusted),
            }
        )
        self.push({**desired.files, DYNAMIC_CONF_PATH: desired.dynamic_config})
        self.add_layer(SERVICE, desired.layer)
        self.push({STATE_PATH: state})
