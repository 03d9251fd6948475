"""Names and addresses of the rig's "pods", and the private mount namespace that resolves them.

Every unit gets the stable DNS name a Kubernetes StatefulSet pod has,
``<app>-<n>.<app>-endpoints.<model>.svc.cluster.local``, and every application the name of its
Service, ``<app>.<model>.svc.cluster.local``. Each application owns a /24 of 127.0.0.0/8
(``127.0.<subnet>.0/24``); unit ``n`` is ``127.0.<subnet>.<10 + n>``, the Service name points
at unit 0. Names resolve through a rig hosts file bind-mounted over ``/etc/hosts`` inside a
private mount namespace that the test process enters once (:func:`enter_rig_namespace`) and
that every pod inherits. The machine's own ``/etc/hosts`` is never touched. A rig
``resolv.conf`` points at 127.0.0.1 so that a name the rig does not know fails fast instead of
leaving the machine.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

MODEL_NAME = "rig"
UNITS_PER_APP = 16
FIRST_HOST = 10

KNOWN_SUBNETS = {"pulsar-zookeeper-k8s": 1, "bookkeeper-k8s": 2, "pulsar-k8s": 3}
"""Fixed subnets of the suite's applications, so addresses are the same in every run."""
FIRST_FREE_SUBNET = 20

_CLONE_NEWNS = 0x00020000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18

_entered: Path | None = None


def unit_fqdn(app: str, unit_number: int, model: str = MODEL_NAME) -> str:
    return f"{app}-{unit_number}.{app}-endpoints.{model}.svc.cluster.local"


def service_fqdn(app: str, model: str = MODEL_NAME) -> str:
    return f"{app}.{model}.svc.cluster.local"


@dataclass
class AddressPlan:
    """Which /24 each application has, and the hosts file that maps names to addresses."""

    hosts_file: Path
    model: str = MODEL_NAME
    subnets: dict[str, int] = field(default_factory=dict)
    base_lines: list[str] = field(default_factory=lambda: _host_base_lines())

    def add_app(self, app: str) -> int:
        """Give ``app`` a subnet (idempotent) and publish its names in the hosts file."""
        if app not in self.subnets:
            taken = set(self.subnets.values())
            subnet = KNOWN_SUBNETS.get(app)
            if subnet is None or subnet in taken:
                subnet = next(
                    s for s in range(FIRST_FREE_SUBNET, 255) if s not in taken | {1, 2, 3}
                )
            self.subnets[app] = subnet
            self.write()
        return self.subnets[app]

    def address(self, app: str, unit_number: int) -> str:
        if not 0 <= unit_number < UNITS_PER_APP:
            raise ValueError(f"the rig resolves units 0..{UNITS_PER_APP - 1}, not {unit_number}")
        return f"127.0.{self.add_app(app)}.{FIRST_HOST + unit_number}"

    def fqdn(self, app: str, unit_number: int) -> str:
        return unit_fqdn(app, unit_number, self.model)

    def hosts_lines(self) -> list[str]:
        lines = []
        for app in sorted(self.subnets, key=self.subnets.__getitem__):
            for n in range(UNITS_PER_APP):
                addr = f"127.0.{self.subnets[app]}.{FIRST_HOST + n}"
                aliases = [f"{app}-{n}.{app}-endpoints.{self.model}.svc", f"{app}-{n}"]
                if n == 0:
                    aliases.append(service_fqdn(app, self.model))
                lines.append(" ".join([addr, unit_fqdn(app, n, self.model), *aliases]))
        return lines

    def write(self) -> None:
        """Rewrite the hosts file in place: bind mounts keep pointing at the same inode."""
        text = "\n".join(
            [*self.base_lines, "# --- pulsar charms rig ---", *self.hosts_lines(), ""]
        )
        mode = "r+" if self.hosts_file.exists() else "w"
        with open(self.hosts_file, mode) as f:
            f.seek(0)
            f.write(text)
            f.truncate()


def _host_base_lines() -> list[str]:
    """The machine's /etc/hosts as it is before the rig namespace hides it, plus its name."""
    if _entered is not None:
        raise RuntimeError("read the base hosts lines before entering the rig namespace")
    try:
        lines = [ln for ln in Path("/etc/hosts").read_text().splitlines() if ln.strip()]
    except OSError:
        lines = ["127.0.0.1 localhost"]
    hostname = socket.gethostname()
    if not any(hostname in ln.split()[1:] for ln in lines if not ln.startswith("#")):
        lines.append(f"127.0.0.1 {hostname}")
    return lines


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_rig_namespace(state_dir: Path, plan: AddressPlan) -> None:
    """Move this process into a private mount namespace where the rig's names resolve.

    Must run before the process starts any thread (``unshare(CLONE_NEWNS)`` implies
    ``CLONE_FS``, which the kernel refuses to a multithreaded process). Idempotent; a second
    call with a different hosts file is an error.
    """
    global _entered
    if _entered is not None:
        if _entered != plan.hosts_file:
            raise RuntimeError(f"rig namespace already entered with {_entered}")
        return
    if os.geteuid() != 0:
        raise RuntimeError("the rig needs root (mount namespaces, bind mounts, uid 10000)")
    if threading.active_count() != 1:
        raise RuntimeError("enter_rig_namespace() must run before any thread is started")
    state_dir.mkdir(parents=True, exist_ok=True)
    plan.write()
    resolv = state_dir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    libc = _libc()
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / rprivate")
    for source, target in ((plan.hosts_file, "/etc/hosts"), (resolv, "/etc/resolv.conf")):
        _check(
            libc.mount(os.fsencode(source), target.encode(), None, _MS_BIND, None),
            f"bind {source} over {target}",
        )
    _entered = plan.hosts_file


def in_rig_namespace() -> bool:
    return _entered is not None
