"""Pods: one real Pebble per unit, in its own mount and UTS namespace, over the real Pulsar tree.

A :class:`Pod` is what Kubernetes gives a sidecar charm's workload container: a Pebble daemon
(PID "1" of the container) whose filesystem has ``/pulsar`` laid out like the
``apachepulsar/pulsar`` image:

- ``bin lib instances examples``: the cached distribution, bind-mounted read-only (not
  symlinked: ``bin/pulsar`` finds its home with ``cd -P``);
- ``conf``: a per-pod writable copy of the distribution's pristine ``conf/``;
- ``logs data download packages-storage instances/deps``: per-pod, writable by gid 0;
- Juju storage: per-unit directories that outlive the pod, bind-mounted at the charm's
  storage locations (root-owned, as Kubernetes volumes arrive);
- ``/etc/passwd`` gains the image's ``pulsar`` user (uid 10000, gid 0) through a bind-mounted
  copy; the host's file is never edited;
- the hostname is the pod's short name (``<app>-<n>``), like a StatefulSet pod;
- ``/charm`` as Juju's sidecar pod has it in the workload container: ``/charm/bin/pebble`` (the
  Pebble binary, read-only) and ``/charm/container`` (this container's share of the charm
  volume: the Pebble directory ``pebble`` and socket ``pebble.socket``); Pebble runs with
  ``PEBBLE=/charm/container/pebble`` and ``PEBBLE_SOCKET=/charm/container/pebble.socket``,
  the environment Juju gives the container, so ``/charm/bin/pebble notify <key>`` works from
  any service or exec of the pod.

Every process a pod starts carries ``RIG_POD=<pod dir>`` in its environment (Pebble passes its
own environment to services and execs), so teardown finds and kills them all, including ones
that daemonised away from Pebble.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import ops

from tests.cluster.rig_ops_private import pebble_get

WORKLOAD_ROOT = "/pulsar"
WORKLOAD_UID = 10000
WORKLOAD_GID = 0
PASSWD_LINE = f"pulsar:x:{WORKLOAD_UID}:{WORKLOAD_GID}::/pulsar/data:/bin/sh"
"""The image's user (``adduser pulsar -u 10000 -G root -H -h /pulsar/data``)."""
MAX_SOCKET_PATH = 107
CHARM_MOUNT = "/charm"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_MOUNT = "/opt/rig-python"
"""The image's python3 with pulsar-client (``rig_setup.ensure_python_runtime``), first on PATH."""
CONTAINER_PEBBLE = "/charm/bin/pebble"
CONTAINER_PEBBLE_DIR = "/charm/container/pebble"
CONTAINER_PEBBLE_SOCKET = "/charm/container/pebble.socket"
"""Where Juju (3.5+) puts Pebble and its socket in a sidecar workload container, and the
``PEBBLE``/``PEBBLE_SOCKET`` environment it sets there (Juju's Kubernetes application spec)."""
POD_MARKER = "RIG_POD"
OWNER_MARKER = "RIG_OWNER_PID"


class PodError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    """The ``apachepulsar/pulsar`` image, assembled from the cached server distribution."""

    distribution: Path
    pristine_conf: Path
    pebble: Path
    readonly_dirs: tuple[str, ...] = ("bin", "lib", "instances", "examples")
    writable_dirs: tuple[str, ...] = ("logs", "data", "download", "packages-storage")
    top_files: tuple[str, ...] = ("LICENSE", "NOTICE", "README")
    env: Mapping[str, str] = field(default_factory=dict)
    python_runtime: Path | None = None

    @classmethod
    def from_cache(cls) -> Image:
        from tests.cluster import rig_setup

        java = shutil.which("java")
        java_home = str(Path(java).resolve().parent.parent) if java else ""
        env = {
            "PATH": f"{PYTHON_MOUNT}/bin:{IMAGE_PATH}",
            "LANG": "C.UTF-8",
            "HOME": "/root",
        }
        if java_home:
            env["JAVA_HOME"] = java_home
        return cls(
            distribution=rig_setup.ensure_distribution(),
            pristine_conf=rig_setup.pristine_conf_dir(),
            pebble=rig_setup.ensure_pebble(),
            python_runtime=rig_setup.ensure_python_runtime(),
            env=env,
        )

    def for_version(self, version: str) -> Image:
        """This image with another cached Pulsar distribution (``rig_setup`` fetches it)."""
        from tests.cluster import rig_setup

        return dataclasses.replace(
            self,
            distribution=rig_setup.ensure_distribution(version),
            pristine_conf=rig_setup.pristine_conf_dir(version),
        )

    def pulsar_version(self) -> str:
        """The Pulsar version of the distribution (``apache-pulsar-<version>``)."""
        return self.distribution.name.removeprefix("apache-pulsar-")

    def populate(self, rootfs: Path, deps_dir: Path) -> None:
        """Lay out a fresh container filesystem (the image state) under ``rootfs``."""
        rootfs.mkdir(parents=True)
        os.chmod(rootfs, 0o775)
        for name in self.readonly_dirs:
            (rootfs / name).mkdir()  # mount points
        for name in self.writable_dirs:
            (rootfs / name).mkdir(mode=0o775)
            os.chmod(rootfs / name, 0o775)
        for name in self.top_files:
            if (self.distribution / name).is_file():
                shutil.copy2(self.distribution / name, rootfs / name)
        shutil.copytree(self.pristine_conf, rootfs / "conf")
        shutil.copytree(self.distribution / "instances" / "deps", deps_dir)
        for tree in (rootfs / "conf", deps_dir):
            _chmod_group_like_user(tree)


def _chmod_group_like_user(tree: Path) -> None:
    """``chmod -R g=u``: what the image does so that gid 0 can write its writable trees."""
    for path in [tree, *tree.rglob("*")]:
        mode = path.lstat().st_mode
        if not path.is_symlink():
            os.chmod(path, (mode & ~0o070) | ((mode & 0o700) >> 3))


@dataclass
class Pod:
    """One unit's workload container: real Pebble in private namespaces."""

    name: str
    hostname: str
    image: Image
    pod_dir: Path
    storage_dir: Path
    storage: Mapping[str, str] = field(default_factory=dict)
    """Juju storage name -> mount location in the container (under /pulsar)."""
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0
    """How many times this pod has been (re)created."""

    def __post_init__(self) -> None:
        for name, location in self.storage.items():
            if not location.startswith(WORKLOAD_ROOT + "/"):
                raise PodError(f"storage {name!r} at {location!r}: the rig mounts under /pulsar")
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise PodError(f"socket path too long for AF_UNIX: {self.socket_path}")

    # -- paths -------------------------------------------------------------------------------

    @property
    def charm_dir(self) -> Path:
        """What the pod sees at /charm (Juju's charm volume, as the workload container has it)."""
        return self.pod_dir / "charm"

    @property
    def pebble_dir(self) -> Path:
        return self.charm_dir / "container" / "pebble"

    @property
    def socket_path(self) -> Path:
        """The socket the charm talks to (``/charm/containers/<name>/pebble.socket`` in Juju)."""
        return self.charm_dir / "container" / "pebble.socket"

    @property
    def rootfs(self) -> Path:
        """What the pod sees at /pulsar (the ephemeral part of the container)."""
        return self.pod_dir / "rootfs"

    @property
    def log_path(self) -> Path:
        """Pebble's own output, which includes every service's output lines."""
        return self.pod_dir / "pebble.log"

    def storage_path(self, storage_name: str) -> Path:
        """The host directory behind a Juju storage (survives pod loss)."""
        return self.storage_dir / storage_name

    def host_path(self, container_path: str) -> Path:
        """Where a container path under /pulsar lives on the host (storage-aware)."""
        if not container_path.startswith(WORKLOAD_ROOT + "/"):
            raise ValueError(f"{container_path} is not under {WORKLOAD_ROOT}")
        matches = [
            (location, name)
            for name, location in self.storage.items()
            if container_path == location or container_path.startswith(location + "/")
        ]
        if matches:
            location, name = max(matches, key=lambda m: len(m[0]))
            return self.storage_path(name) / container_path[len(location) :].lstrip("/")
        rel = container_path[len(WORKLOAD_ROOT) :].lstrip("/")
        top = rel.split("/", 1)[0]
        if top in self.image.readonly_dirs:
            if rel.startswith("instances/deps"):
                return self.pod_dir / "instances-deps" / rel[len("instances/deps") :].lstrip("/")
            return self.image.distribution / rel
        return self.rootfs / rel

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start Pebble (creating the container filesystem from the image if it is missing)."""
        if self.running:
            return
        if not self.rootfs.exists():
            self.image.populate(self.rootfs, self.pod_dir / "instances-deps")
        for name in self.storage:
            path = self.storage_path(name)
            path.mkdir(parents=True, exist_ok=True)
        passwd = self.pod_dir / "passwd"
        host_passwd = Path("/etc/passwd").read_text()
        passwd.write_text(host_passwd.rstrip("\n") + "\n" + PASSWD_LINE + "\n")
        (self.charm_dir / "container").mkdir(parents=True, exist_ok=True)
        (self.charm_dir / "bin").mkdir(exist_ok=True)
        (self.charm_dir / "bin" / "pebble").touch()  # mount point of the binary
        for mount_point in (WORKLOAD_ROOT, CHARM_MOUNT, PYTHON_MOUNT):  # empty, on the host
            Path(mount_point).mkdir(exist_ok=True)
        env = {
            **self.image.env,
            "PEBBLE": CONTAINER_PEBBLE_DIR,
            "PEBBLE_SOCKET": CONTAINER_PEBBLE_SOCKET,
            POD_MARKER: str(self.pod_dir),
            OWNER_MARKER: str(os.getpid()),
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--uts",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-ec",
                    self._entrypoint(),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
            )
        self.generation += 1
        self._wait_ready(timeout)

    def _entrypoint(self) -> str:
        q = shlex.quote
        dist = self.image.distribution
        lines = [f"mount --bind {q(str(self.rootfs))} {WORKLOAD_ROOT}"]
        for name in self.image.readonly_dirs:
            lines.append(f"mount --bind -o ro {q(str(dist / name))} {WORKLOAD_ROOT}/{name}")
        deps = self.pod_dir / "instances-deps"
        lines.append(f"mount --bind {q(str(deps))} {WORKLOAD_ROOT}/instances/deps")
        for name, location in sorted(self.storage.items(), key=lambda kv: kv[1].count("/")):
            lines.append(f"mkdir -p {q(location)}")
            lines.append(f"mount --bind {q(str(self.storage_path(name)))} {q(location)}")
        lines.append(f"mount --bind {q(str(self.pod_dir / 'passwd'))} /etc/passwd")
        lines.append(f"mount --bind {q(str(self.charm_dir))} {CHARM_MOUNT}")
        lines.append(f"mount --bind -o ro {q(str(self.image.pebble))} {CONTAINER_PEBBLE}")
        if self.image.python_runtime is not None:
            runtime = q(str(self.image.python_runtime))
            lines.append(f"mount --bind -o ro {runtime} {PYTHON_MOUNT}")
        lines.append(f"hostname {q(self.hostname)}")
        lines.append(f"cd {WORKLOAD_ROOT}")
        # Juju's entrypoint (minus ``--http``: the pods share the host's ports).
        lines.append(f"exec {CONTAINER_PEBBLE} run --create-dirs --hold")
        return "\n".join(lines)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise PodError(f"pod {self.name}: pebble exited\n{self.tail_log()}")
            if self.socket_path.exists():
                try:
                    self.client().get_system_info()
                    return
                except (ops.pebble.ConnectionError, ops.pebble.APIError, OSError):
                    pass
            time.sleep(0.05)
        raise PodError(f"pod {self.name}: pebble not ready in {timeout}s\n{self.tail_log()}")

    def stop(self, graceful: bool = True, grace: float = 15.0) -> None:
        """Stop the pod: SIGTERM to Pebble (which stops its services) or SIGKILL everything."""
        if self.running and graceful:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL Pebble, its process group and every process marked as this pod's."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            if self.process is not None and self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        if self.pids():
            raise PodError(f"pod {self.name}: processes survive SIGKILL: {self.pids()}")

    def lose(self) -> None:
        """Pod loss: every process dies at once, everything but the storage is gone."""
        self.stop(graceful=False)
        for path in (self.rootfs, self.charm_dir, self.pod_dir / "instances-deps"):
            shutil.rmtree(path, ignore_errors=True)

    def recreate(self, timeout: float = 30.0, graceful: bool = False) -> None:
        """Pod loss followed by Kubernetes creating the pod again from the image.

        ``graceful``: the pod is deleted as a rolling update does (SIGTERM to Pebble, which
        stops its services, then up to 30 s: Kubernetes' default termination grace period).
        """
        if graceful:
            self.stop(graceful=True, grace=30.0)
        self.lose()
        self.start(timeout)

    # -- processes ---------------------------------------------------------------------------

    def pids(self) -> list[int]:
        """Every live (non-zombie) process this pod started, Pebble included."""
        found = []
        marker = f"{POD_MARKER}={self.pod_dir}".encode()
        for pid, _ in _live_processes():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker in environ:
                found.append(pid)
        return found

    def service_pid(self, service: str) -> int | None:
        """PID of the running service's process (the JVM, once ``bin/pulsar`` exec'd it).

        Pebble starts services in its own session with a process group each, and execs in a
        new session; among Pebble's service children, the one that started when Pebble says
        the service became active is the service. Exec checks are Pebble's children in the
        same session too: they run a shell every 2 s, and one that started within the service's
        start-up second would otherwise pass for the service (a JVM never runs as a shell). Bash
        execs the last command of a ``-c`` script in place, so a check need not look like a
        shell: the service is also the child that carries its layer's environment (checks never
        get a service's environment).
        """
        if not self.running:
            return None
        assert self.process is not None
        info = pebble_get(self.client(), "/v1/services", {"names": service})
        if not info or info[0].get("current") != "active":
            return None
        since = _parse_pebble_time(info[0].get("current-since", ""))
        planned = self.client().get_plan().services.get(service)
        environment = dict(planned.environment) if planned is not None else {}
        candidates = []
        for pid, stat in _live_processes():
            ppid, sid = stat.ppid, stat.sid
            if (
                ppid == self.process.pid
                and sid == self.process.pid
                and not _is_shell(pid)
                and _carries(pid, environment)
            ):
                candidates.append((abs(stat.start_time - since), pid))
        if not candidates:
            return None
        delta, pid = min(candidates)
        return pid if delta < 5.0 or len(candidates) == 1 else None

    def kill_service(self, service: str, sig: int = signal.SIGKILL) -> int:
        """``kill -9`` the service's process from outside, as the OOM killer would."""
        pid = self.service_pid(service)
        if pid is None:
            raise PodError(f"pod {self.name}: service {service!r} has no running process")
        os.kill(pid, sig)
        return pid

    # -- inspection --------------------------------------------------------------------------

    def client(self) -> ops.pebble.Client:
        return ops.pebble.Client(socket_path=str(self.socket_path))

    def run(
        self,
        command: list[str],
        *,
        user_id: int | None = WORKLOAD_UID,
        group_id: int | None = WORKLOAD_GID,
        environment: dict[str, str] | None = None,
        timeout: float = 120.0,
    ) -> tuple[str, str]:
        """Run a command in the pod (through Pebble); raise ``ops.pebble.ExecError`` on failure."""
        process = self.client().exec(
            command,
            user_id=user_id,
            group_id=group_id,
            environment=environment,
            working_dir=WORKLOAD_ROOT,
            timeout=timeout,
        )
        stdout, stderr = process.wait_output()
        return stdout, stderr or ""

    def read(self, container_path: str) -> str:
        """A file as the container sees it (through Pebble)."""
        with self.client().pull(container_path) as f:
            return str(f.read())

    def service_logs(self, lines: int = 40) -> str:
        """``pebble logs -n <lines>`` for all services, or Pebble's own log when it is down."""
        if self.running:
            try:
                return subprocess.run(
                    [str(self.image.pebble), "logs", "-n", str(lines)],
                    env={
                        **os.environ,
                        "PEBBLE": str(self.pebble_dir),
                        "PEBBLE_SOCKET": str(self.socket_path),
                    },
                    capture_output=True,
                    text=True,
                    timeout=15,
                ).stdout
            except (OSError, subprocess.SubprocessError) as exc:
                return f"<pebble logs failed: {exc}>\n{self.tail_log(lines)}"
        return self.tail_log(lines)

    def tail_log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no pebble log>"


@dataclass(frozen=True)
class _Stat:
    ppid: int
    pgid: int
    sid: int
    start_time: float
    state: str
    cpu_s: float
    """User + system CPU-seconds so far."""


_BOOT_TIME: float | None = None


def _boot_time() -> float:
    global _BOOT_TIME
    if _BOOT_TIME is None:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                _BOOT_TIME = float(line.split()[1])
                break
        else:  # pragma: no cover
            _BOOT_TIME = 0.0
    return _BOOT_TIME


def _read_stat(pid: int) -> _Stat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return _Stat(
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        start_time=_boot_time() + int(fields[19]) / ticks,
        state=fields[0],
        cpu_s=(int(fields[11]) + int(fields[12])) / ticks,
    )


_SHELLS = frozenset({"bash", "sh", "env"})


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started (epoch seconds), or None once it is gone or a zombie.

    With the start time a caller can tell its process from a later one that reuses the PID.
    """
    stat = _read_stat(pid)
    if stat is None or stat.state in ("Z", "X"):
        return None
    return stat.start_time


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU-seconds ``pid`` has used so far (None once it is gone)."""
    stat = _read_stat(pid)
    return None if stat is None else stat.cpu_s


def process_group_cpu_s(pgid: int) -> float:
    """CPU-seconds of every live process of one process group (``bin/pulsar`` and its JVM)."""
    return sum(stat.cpu_s for _, stat in _live_processes() if stat.pgid == pgid)


def _carries(pid: int, environment: Mapping[str, str]) -> bool:
    """Whether the process's environment has every variable of ``environment``.

    Names only: the service's start script may rewrite a value before it execs the JVM.
    """
    if not environment:
        return True
    try:
        entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False  # gone already
    names = {entry.split(b"=", 1)[0] for entry in entries}
    return all(key.encode() in names for key in environment)


def _is_shell(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in _SHELLS
    except OSError:
        return True  # gone already: a short-lived check, not a service


def _live_processes() -> Iterator[tuple[int, _Stat]]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None and stat.state not in ("Z", "X"):
                yield int(entry), stat


def _parse_pebble_time(text: str) -> float:
    """Pebble's RFC 3339 timestamps carry nanoseconds, which fromisoformat cannot take."""
    if not text:
        return 0.0
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tz}"
    return datetime.fromisoformat(text).timestamp()


def pod_ready(pod: Pod) -> bool:
    """Kubernetes' readiness probe on a Juju sidecar pod: Pebble's ready checks."""
    if not pod.running:
        return False
    try:
        return bool(pebble_get(pod.client(), "/v1/health", {"level": "ready"})["healthy"])
    except (ops.pebble.Error, OSError):
        return False


def stale_processes(owner_pid_alive: bool = False) -> list[int]:
    """Processes an earlier rig run started and left behind (its test process is gone)."""
    found = []
    for pid, _ in _live_processes():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        owner = next((e for e in environ if e.startswith(f"{OWNER_MARKER}=".encode())), None)
        if owner is None or not any(e.startswith(f"{POD_MARKER}=".encode()) for e in environ):
            continue
        owner_pid = int(owner.split(b"=", 1)[1])
        if owner_pid == os.getpid():
            continue
        if owner_pid_alive or not Path(f"/proc/{owner_pid}").exists():
            found.append(pid)
    return found


def kill_stale_processes() -> list[int]:
    """Kill what earlier, killed rig runs left behind (only processes marked as the rig's)."""
    pids = stale_processes()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


def wildcard_listeners(pods: list[Pod]) -> list[tuple[str, int, int]]:
    """(pod, pid, port) of every pod process listening on 0.0.0.0 or :: instead of its name."""
    inodes: dict[str, int] = {}
    for proto in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], cols[9]
            addr, port = local.split(":")
            if state == "0A" and set(addr) == {"0"}:
                inodes[inode] = int(port, 16)
    found = []
    for pod in pods:
        for pid in pod.pids():
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        target = os.readlink(f"/proc/{pid}/fd/{fd}")
                        if target.startswith("socket:["):
                            inode = target[8:-1]
                            if inode in inodes:
                                found.append((pod.name, pid, inodes[inode]))
    return sorted(set(found))
