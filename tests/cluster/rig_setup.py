"""Fetch and cache what the real-workload rig runs: the Pulsar server distribution and Pebble.

``python -m tests.cluster.rig_setup`` is idempotent: a second run only checks that both are in
place (well under a second). Cache directory: ``$PULSAR_RIG_CACHE`` or
``~/.cache/pulsar-charms-rig``.

Layout of the cache::

    <cache>/apache-pulsar-<version>/      the extracted distribution (the image's /pulsar)
    <cache>/bin/pebble                    Pebble, built from source at PEBBLE_VERSION
    <cache>/pulsar-server-distribution-<version>-bin.tar.gz   the downloaded archive

Every step writes to a temporary name first and renames at the end, so an interrupted run
leaves nothing that a later run would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PEBBLE_VERSION = "v1.26.0"
PEBBLE_PACKAGE = "github.com/canonical/pebble/cmd/pebble"
PEBBLE_MODULE = "github.com/canonical/pebble"
MAVEN_URL = (
    "https://repo1.maven.org/maven2/org/apache/pulsar/pulsar-server-distribution/"
    "{v}/pulsar-server-distribution-{v}-bin.tar.gz"
)
REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    return Path(os.environ.get("PULSAR_RIG_CACHE") or Path.home() / ".cache" / "pulsar-charms-rig")


def pulsar_version() -> str:
    return (REPO_ROOT / "PULSAR_VERSION").read_text().strip()


def distribution_dir(version: str | None = None) -> Path:
    return cache_dir() / f"apache-pulsar-{version or pulsar_version()}"


def pristine_conf_dir(version: str | None = None) -> Path:
    """The distribution's conf/ exactly as shipped: what every fresh pod starts from.

    Kept apart from ``apache-pulsar-<v>/conf`` because that tree is easy to modify by accident
    (hard-linked scratch copies, hand-run servers).
    """
    return cache_dir() / f"apache-pulsar-{version or pulsar_version()}-conf"


def pebble_path() -> Path:
    return cache_dir() / "bin" / "pebble"


def _log(message: str) -> None:
    print(f"[rig-setup] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One setup at a time per cache directory (tox envs may run concurrently)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def distribution_complete(path: Path) -> bool:
    """An extracted distribution is only ever renamed into place whole; check the essentials."""
    lib = path / "lib"
    return (
        (path / "bin" / "pulsar").is_file()
        and (path / "bin" / "bookkeeper").is_file()
        and (path / "conf" / "broker.conf").is_file()
        and lib.is_dir()
        and sum(1 for _ in lib.glob("*.jar")) > 100
    )


def _download(url: str, target: Path) -> None:
    part = target.with_name(target.name + ".part")
    _log(f"downloading {url}")
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)
    _log(f"downloaded {part.stat().st_size >> 20} MiB in {time.monotonic() - started:.0f}s")
    expected = _published_sha1(url)
    if expected is not None:
        actual = _sha1(part)
        if actual != expected:
            part.unlink()
            raise RuntimeError(f"{url}: sha1 {actual} != published {expected}")
    part.rename(target)


def _published_sha1(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + ".sha1", timeout=30) as response:
            return response.read().decode().split()[0].strip().lower()
    except OSError as exc:  # the checksum is a safety net, not a requirement
        _log(f"no published sha1 for {url}: {exc}")
        return None


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive_candidates(cache: Path, version: str) -> list[Path]:
    return [
        cache / f"pulsar-server-distribution-{version}-bin.tar.gz",
        cache / f"pulsar-{version}.tar.gz",  # name used by earlier hand-made caches
    ]


def _ensure_pristine_conf(version: str, archive: Path | None) -> None:
    target = pristine_conf_dir(version)
    if target.is_dir():
        return
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".conf-") as tmp:
        if archive is not None and archive.is_file():
            _log(f"extracting conf/ from {archive.name}")
            with tarfile.open(archive) as tar:
                members = [m for m in tar if m.name.split("/")[1:2] == ["conf"]]
                tar.extractall(tmp, members=members, filter="tar")
            (top,) = Path(tmp).iterdir()
            (top / "conf").rename(target)
        else:
            shutil.copytree(distribution_dir(version) / "conf", target)


def _existing_archive(cache: Path, version: str) -> Path | None:
    return next((a for a in _archive_candidates(cache, version) if a.is_file()), None)


def ensure_distribution(version: str | None = None) -> Path:
    version = version or pulsar_version()
    cache = cache_dir()
    final = distribution_dir(version)
    if distribution_complete(final) and pristine_conf_dir(version).is_dir():
        return final
    with _locked(cache):
        if distribution_complete(final):
            _ensure_pristine_conf(version, _existing_archive(cache, version))
            return final
        archive = _existing_archive(cache, version)
        if archive is None:
            archive = _archive_candidates(cache, version)[0]
            _download(MAVEN_URL.format(v=version), archive)
        _log(f"extracting {archive.name}")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=cache, prefix=".extract-") as tmp:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="tar")
            (top,) = Path(tmp).iterdir()
            if not distribution_complete(top):
                raise RuntimeError(f"{archive} does not hold a Pulsar server distribution")
            if final.exists():
                shutil.rmtree(final)
            if not pristine_conf_dir(version).is_dir():
                shutil.copytree(top / "conf", pristine_conf_dir(version))
            top.rename(final)
        _log(f"extracted in {time.monotonic() - started:.0f}s into {final}")
    return final


def pebble_version(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "version", "--client"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split()[-1] if out.split() else None


def _go_build_pebble(target: Path, env_overrides: dict[str, str]) -> None:
    env = {**os.environ, "CGO_ENABLED": "0", **env_overrides}
    with tempfile.TemporaryDirectory(prefix="pebble-build-") as tmp:

        def go(*args: str) -> None:
            subprocess.run(["go", *args], cwd=tmp, env=env, check=True, capture_output=True)

        # `go install ...@version` needs the module's version list from the proxy, which some
        # proxies refuse; a throwaway module that requires the pinned version does not.
        go("mod", "init", "tmp")
        go("get", f"{PEBBLE_MODULE}/cmd/pebble@{PEBBLE_VERSION}")
        go("build", "-trimpath", "-o", str(target), PEBBLE_PACKAGE)


def ensure_pebble() -> Path:
    binary = pebble_path()
    if pebble_version(binary) == PEBBLE_VERSION:
        return binary
    cache = cache_dir()
    with _locked(cache):
        if pebble_version(binary) == PEBBLE_VERSION:
            return binary
        if shutil.which("go") is None:
            raise RuntimeError("building Pebble needs Go (https://go.dev/dl/) on PATH")
        binary.parent.mkdir(parents=True, exist_ok=True)
        part = binary.with_name("pebble.part")
        started = time.monotonic()
        # Offline first (the module cache may already hold the pinned version), then online.
        attempts = [
            {"GOPROXY": "off", "GOSUMDB": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"},
            {},
        ]
        for i, overrides in enumerate(attempts):
            try:
                _log(f"building pebble {PEBBLE_VERSION} ({'offline' if overrides else 'online'})")
                _go_build_pebble(part, overrides)
                break
            except subprocess.CalledProcessError as exc:
                if i == len(attempts) - 1:
                    raise RuntimeError(
                        f"building pebble failed: {exc.stderr.decode(errors='replace')}"
                    ) from exc
        part.rename(binary)
        if pebble_version(binary) != PEBBLE_VERSION:
            raise RuntimeError(f"{binary} does not report {PEBBLE_VERSION}")
        _log(f"built pebble in {time.monotonic() - started:.0f}s")
    return binary


# The image's python3 carries the pulsar-client package with its functions extras: what the
# functions worker's Python runtime (`python3` on PATH, /pulsar/instances/python-instance) needs.
PYTHON_RUNTIME_PACKAGES = ("pulsar-client[functions]==3.13.0",)
SYSTEM_PYTHON = "/usr/bin/python3"


def python_runtime_dir() -> Path:
    return cache_dir() / "python-runtime"


def ensure_python_runtime() -> Path:
    """A venv of the system python3 (readable by the pods' uid 10000, unlike one under /root)
    holding ``PYTHON_RUNTIME_PACKAGES``; the pods mount it read-only and put it first on PATH."""
    target = python_runtime_dir()
    marker = target / "rig-packages.txt"
    wanted = "\n".join(PYTHON_RUNTIME_PACKAGES)
    if marker.is_file() and marker.read_text() == wanted:
        return target
    with _locked(cache_dir()):
        if marker.is_file() and marker.read_text() == wanted:
            return target
        if not Path(SYSTEM_PYTHON).exists():
            raise RuntimeError(f"the functions runtime needs {SYSTEM_PYTHON}")
        _log(f"building the pods' python runtime: {', '.join(PYTHON_RUNTIME_PACKAGES)}")
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(target)], check=True)
        version = subprocess.run(
            [
                SYSTEM_PYTHON,
                "-c",
                "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if version != ours:
            # pip runs in this interpreter: its compiled wheels (grpcio, protobuf) must match.
            raise RuntimeError(f"{SYSTEM_PYTHON} is Python {version}; the rig runs {ours}")
        site = target / "lib" / f"python{version}" / "site-packages"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--target",
                str(site),
                *PYTHON_RUNTIME_PACKAGES,
            ],
            check=True,
        )
        subprocess.run(["chmod", "-R", "a+rX", str(target)], check=True)
        marker.write_text(wanted)
    return target


def upgrade_from_version() -> str:
    """The older Pulsar the refresh scenario (``test_upgrade.py``, slow) starts from
    (``PULSAR_UPGRADE_FROM_VERSION``): fetched only by ``--upgrade-from`` (``tox -e cluster-slow``)
    or by that scenario."""
    return (REPO_ROOT / "PULSAR_UPGRADE_FROM_VERSION").read_text().strip()


def main(argv: list[str] | None = None) -> int:
    """Fetch the cache; ``--upgrade-from``: the refresh scenario's older Pulsar too;
    ``--also <version>`` (repeatable): any other Pulsar distribution."""
    args = list(sys.argv[1:] if argv is None else argv)
    also = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--also"]
    if "--upgrade-from" in args:
        also.append(upgrade_from_version())
    started = time.monotonic()
    for version in also:
        ensure_distribution(version)
    dist = ensure_distribution()
    pebble = ensure_pebble()
    ensure_python_runtime()
    if shutil.which("java") is None:
        _log("WARNING: no java on PATH; Pulsar 4.0 needs Java 17+")
    _log(f"ready in {time.monotonic() - started:.2f}s: {dist} and {pebble}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
