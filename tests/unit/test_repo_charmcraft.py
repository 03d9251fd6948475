"""Every charms/*/charmcraft.yaml is a valid project for charmcraft 4.5 itself.

The project is loaded the way ``charmcraft pack`` loads it: charmcraft's own ProjectService
(extensions, default parts, grammar, platforms) renders the project model for the first
platform; then the metadata.yaml model charmcraft writes into the charm, and charmcraft's Juju
config model, are validated from it (its JujuActions model is broken in 4.5, so its rules
are applied here directly).
"""

from __future__ import annotations

import contextlib
import keyword
import os
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import craft_parts
import pydantic
import pytest
import yaml
from charmcraft import services
from charmcraft.application.main import APP_METADATA, Charmcraft
from charmcraft.models.config import JujuConfig
from charmcraft.models.metadata import CharmMetadata
from craft_application import errors as craft_errors
from craft_cli import CraftError, EmitterMode, emit

from tools.repo import CHARMS_DIR, charm_names, pulsar_image


@contextlib.contextmanager
def _emitter() -> Iterator[None]:
    """Charmcraft's services log through craft-cli's emitter, which must be initialised.

    craft-cli's pytest plugin initialises it for every test; without the plugin
    (``-p no:emitter``) initialise it here once, quietly, with the log thrown away.
    """
    if not getattr(emit, "_initiated", False):
        emit.init(EmitterMode.QUIET, "charmcraft", "", log_filepath=pathlib.Path(os.devnull))
    yield


def load_project(charm_dir: pathlib.Path) -> Any:
    """Render ``charm_dir``'s project as ``charmcraft pack`` does; raise on invalid input."""
    services.register_services()
    factory = services.ServiceFactory(app=APP_METADATA)
    factory.update_kwargs("project", project_dir=charm_dir)
    # The parts plugins charmcraft offers depend on the project's bases ('charm' only on
    # supported ones): start from craft-parts' defaults and let charmcraft register its own.
    craft_parts.plugins.unregister_all()
    Charmcraft(app=APP_METADATA, services=factory)._register_default_plugins()
    project_service = factory.get("project")
    project_service.configure(platform=None, build_for=None)
    return project_service.get()


ACTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9-_]*$")


def action_problems(actions: dict[str, Any]) -> list[str]:
    """The rules of charmcraft's JujuActions model (which 4.5 itself cannot run)."""
    problems = []
    for name, spec in actions.items():
        if keyword.iskeyword(name) or not ACTION_NAME.match(name):
            problems.append(f"action {name!r}: not a valid action name")
        if not isinstance(spec, dict) or not spec.get("description"):
            problems.append(f"action {name!r}: needs a description")
            continue
        params = spec.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
            problems.append(f"action {name!r}: params must map names to JSON schemas")
    return problems


def charmcraft_problems(charm_dir: pathlib.Path) -> list[str]:
    """Why charmcraft would refuse this charm's charmcraft.yaml (empty if it accepts it)."""
    path = charm_dir / "charmcraft.yaml"
    if not path.is_file():
        return [f"{path}: missing (every charm needs its charmcraft.yaml)"]
    try:
        with _emitter():
            project = load_project(charm_dir)
            metadata = CharmMetadata.from_charm(project)
            if project.config is not None:
                JujuConfig.model_validate(project.config)
    except (CraftError, craft_errors.CraftValidationError, pydantic.ValidationError) as exc:
        details = getattr(exc, "details", None)
        return [f"{path}: charmcraft rejects it: {exc}" + (f"\n{details}" if details else "")]
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        return [f"{path}: charmcraft rejects it: {type(exc).__name__}: {exc}"]
    problems = [f"{path}: {p}" for p in action_problems(project.actions or {})]
    if metadata.name != charm_dir.name:
        problems.append(f"{path}: name {metadata.name!r} differs from its directory name")
    if project.type != "charm":
        problems.append(f"{path}: type must be 'charm'")
    return problems


@pytest.mark.parametrize("charm", charm_names())
def test_charmcraft_yaml_valid_for_charmcraft(charm: str):
    problems = charmcraft_problems(CHARMS_DIR / charm)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("charm", charm_names())
def test_charm_is_a_pulsar_image_sidecar(charm: str):
    path = CHARMS_DIR / charm / "charmcraft.yaml"
    assert path.is_file(), f"{path}: missing"
    raw = yaml.safe_load(path.read_text())
    containers = raw.get("containers") or {}
    assert list(containers) == ["pulsar"], f"{path}: the only container must be 'pulsar'"
    assert containers["pulsar"].get("resource") == "pulsar-image", path
    resource = (raw.get("resources") or {}).get("pulsar-image") or {}
    assert resource.get("type") == "oci-image", f"{path}: pulsar-image must be an oci-image"
    assert resource.get("upstream-source") == pulsar_image(), (
        f"{path}: upstream-source must be {pulsar_image()} (from PULSAR_VERSION)"
    )
    storage = raw.get("storage") or {}
    for mount in containers["pulsar"].get("mounts") or []:
        assert mount.get("storage") in storage, f"{path}: mount of undeclared storage {mount}"
        assert str(mount.get("location", "")).startswith("/pulsar/data"), (
            f"{path}: storage must be mounted under /pulsar/data ({mount})"
        )


# The check itself, on sample charms.


def test_sample_charm_accepted(sample_repo):
    for name in ("pulsar-zookeeper-k8s", "bookkeeper-k8s", "pulsar-k8s"):
        assert charmcraft_problems(sample_repo.charm_dir(name)) == []


def test_sample_project_model_carries_the_yaml(sample_repo):
    with _emitter():
        project = load_project(sample_repo.charm_dir("bookkeeper-k8s"))
    assert project.name == "bookkeeper-k8s"
    assert project.requires == {"zookeeper": {"interface": "zookeeper", "limit": 1}}
    assert set(project.storage) == {"journal", "ledgers"}
    assert list(project.platforms) == ["amd64"]


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda d: d.pop("summary"), "summary"),
        (lambda d: d.update(type="bundle"), "bundle"),
        (lambda d: d.update(name="Bad_Name"), "name"),
        (lambda d: d.update(bases=[{"name": "ubuntu", "channel": "22.04"}]), "base"),
        (lambda d: d.update(platforms={"amd64": {"build-on": "nonsense-arch"}}), "nonsense"),
        (lambda d: d["config"]["options"]["heap-mb"].update(type="integer"), "integer"),
        (lambda d: d["config"]["options"]["heap-mb"].update(default="big"), "heap-mb"),
        (lambda d: d.update(actions={"class": {"description": "reserved"}}), "class"),
        (lambda d: d.update(actions={"go": {"params": {}}}), "needs a description"),
        (lambda d: d.update(unknown_key=1), "unknown_key"),
        (lambda d: d.update(name="other-k8s"), "differs from its directory name"),
    ],
)
def test_sample_invalid_charm_rejected(sample_repo, mutation, expected: str):
    mutation(sample_repo.charms["pulsar-zookeeper-k8s"])
    sample_repo.write()
    problems = charmcraft_problems(sample_repo.charm_dir("pulsar-zookeeper-k8s"))
    assert problems, "charmcraft accepted an invalid charmcraft.yaml"
    assert expected in problems[0], problems[0]


def test_sample_missing_yaml_fails(sample_repo):
    (sample_repo.charm_dir("pulsar-k8s") / "charmcraft.yaml").unlink()
    assert "missing" in charmcraft_problems(sample_repo.charm_dir("pulsar-k8s"))[0]
