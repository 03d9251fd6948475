"""Fixtures of the Juju integration tests (jubilant on a real controller, e.g. microk8s).

Every test here is skipped, with the reason, when no Juju controller is reachable: ``juju`` is
not on PATH, ``juju controllers`` fails, or there is no current controller. The check runs once
per session.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import jubilant
import pytest

from tools.repo import EXPECTED_CHARMS, ROOT, pulsar_image

HERE = pathlib.Path(__file__).resolve().parent
# Minutes a deployment may take to settle (image pulls on a fresh microk8s are slow).
WAIT_TIMEOUT = float(os.environ.get("INTEGRATION_WAIT_TIMEOUT", 30 * 60))


def charm_env_var(charm: str) -> str:
    """The variable naming a packed charm file, e.g. ZOOKEEPER_K8S_CHARM."""
    return charm.upper().replace("-", "_") + "_CHARM"


def controller_unreachable_reason() -> str | None:
    """Why no Juju controller can be used, or None if there is a current one."""
    juju = shutil.which("juju")
    if juju is None:
        return "no Juju controller: `juju` is not on PATH (install juju >= 3.6, see README.md)"
    try:
        result = subprocess.run(
            [juju, "controllers", "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Juju controller: `juju controllers` did not answer ({exc})"
    if result.returncode != 0:
        error = result.stderr.strip().splitlines()[-1:] or [""]
        return f"no Juju controller: `juju controllers` failed ({error[0]})"
    try:
        current = json.loads(result.stdout or "{}").get("current-controller")
    except json.JSONDecodeError:
        return "no Juju controller: `juju controllers` printed no JSON"
    if not current:
        return "no Juju controller: no current controller (`juju switch <controller>`)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every integration test, with the reason, when no controller is reachable."""
    ours = [item for item in items if HERE in pathlib.Path(str(item.path)).resolve().parents]
    if not ours:
        return
    reason = controller_unreachable_reason()
    if reason is None:
        return
    for item in ours:
        item.add_marker(pytest.mark.skip(reason=reason))


def find_charm_file(charm: str) -> pathlib.Path:
    """The packed charm: $<CHARM>_CHARM, else the one `charmcraft pack` left in charms/<charm>."""
    variable = charm_env_var(charm)
    if os.environ.get(variable):
        path = pathlib.Path(os.environ[variable]).expanduser().resolve()
        if not path.is_file():
            pytest.fail(f"${variable}={path}: no such charm file")
        return path
    candidates = sorted((ROOT / "charms" / charm).glob(f"{charm}_*.charm"))
    if len(candidates) != 1:
        pytest.fail(
            f"{charm}: set ${variable} to the packed charm, or run `charmcraft pack` in "
            f"charms/{charm} so that exactly one {charm}_*.charm is there "
            f"(found {[c.name for c in candidates]})"
        )
    return candidates[0]


@pytest.fixture(scope="session")
def charm_files() -> dict[str, pathlib.Path]:
    """Packed charm file of every charm of the suite."""
    return {charm: find_charm_file(charm) for charm in EXPECTED_CHARMS}


@pytest.fixture(scope="session")
def image_resources() -> dict[str, str]:
    """The OCI image resource every charm is deployed with (from PULSAR_VERSION)."""
    return {"pulsar-image": pulsar_image()}


@pytest.fixture(scope="module")
def juju(request: pytest.FixtureRequest) -> Iterator[jubilant.Juju]:
    """A temporary model, destroyed afterwards unless KEEP_MODELS is set."""
    keep = bool(os.environ.get("KEEP_MODELS"))
    with jubilant.temp_model(keep=keep) as juju:
        juju.wait_timeout = WAIT_TIMEOUT
        yield juju
        if request.session.testsfailed:
            print(juju.debug_log(limit=1000), end="")
