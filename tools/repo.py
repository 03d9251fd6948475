"""Facts about the repository layout shared by the tools and the repository-level tests.

Everything here reads files only; nothing imports charm code.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHARMS_DIR = ROOT / "charms"
BUNDLE_FILE = ROOT / "bundle.yaml"
PULSAR_VERSION_FILE = ROOT / "PULSAR_VERSION"

# The charms the suite is made of; a missing one is an error, not something to skip.
EXPECTED_CHARMS = ("pulsar-zookeeper-k8s", "bookkeeper-k8s", "pulsar-k8s")
IMAGE_REPOSITORY = "apachepulsar/pulsar"
IMAGE_RESOURCE = "pulsar-image"


def pulsar_version(root: pathlib.Path = ROOT) -> str:
    """Return the single pinned Pulsar version (the content of PULSAR_VERSION)."""
    return (root / "PULSAR_VERSION").read_text(encoding="utf-8").strip()


def pulsar_image(root: pathlib.Path = ROOT) -> str:
    """Return the OCI image reference every charm and the bundle must use."""
    return f"{IMAGE_REPOSITORY}:{pulsar_version(root)}"


def charm_dirs(charms_dir: pathlib.Path = CHARMS_DIR) -> list[pathlib.Path]:
    """Return every charm directory that exists, sorted by name."""
    if not charms_dir.is_dir():
        return []
    return sorted(p for p in charms_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def charm_names(charms_dir: pathlib.Path = CHARMS_DIR) -> list[str]:
    """Return the expected charms plus any other charm directory, sorted."""
    return sorted(set(EXPECTED_CHARMS) | {p.name for p in charm_dirs(charms_dir)})


def load_yaml(path: pathlib.Path) -> Any:
    """Parse one YAML file."""
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One relation endpoint of a charm."""

    name: str
    role: str  # "provides", "requires" or "peers"
    interface: str
    limit: int | None
    optional: bool | None
    description: str | None


@dataclasses.dataclass(frozen=True)
class CharmSpec:
    """The parts of a charm's charmcraft.yaml the tools and tests read."""

    directory: pathlib.Path
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        """The charm's name (``name:``)."""
        return str(self.raw.get("name", ""))

    @property
    def options(self) -> dict[str, dict[str, Any]]:
        """Config options by name."""
        return dict((self.raw.get("config") or {}).get("options") or {})

    @property
    def actions(self) -> dict[str, dict[str, Any]]:
        """Actions by name."""
        return dict(self.raw.get("actions") or {})

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        """Every relation endpoint (provides, requires, peers) by name."""
        found: dict[str, Endpoint] = {}
        for role in ("provides", "requires", "peers"):
            for name, spec in (self.raw.get(role) or {}).items():
                spec = spec or {}
                found[name] = Endpoint(
                    name=name,
                    role=role,
                    interface=str(spec.get("interface", "")),
                    limit=spec.get("limit"),
                    optional=spec.get("optional"),
                    description=spec.get("description"),
                )
        return found

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """Resources by name."""
        return dict(self.raw.get("resources") or {})

    @property
    def storage(self) -> dict[str, dict[str, Any]]:
        """Storage by name."""
        return dict(self.raw.get("storage") or {})

    @property
    def containers(self) -> dict[str, dict[str, Any]]:
        """Containers by name."""
        return dict(self.raw.get("containers") or {})

    def packed_charm_name(self) -> str:
        """Return the file name ``charmcraft pack`` gives this charm's first platform."""
        platforms = self.raw.get("platforms") or {}
        if not platforms:
            raise ValueError(f"{self.name}: charmcraft.yaml declares no platforms")
        platform = str(next(iter(platforms))).replace(":", "-")
        return f"{self.name}_{platform}.charm"


def load_charm(directory: pathlib.Path) -> CharmSpec:
    """Read ``<directory>/charmcraft.yaml`` (FileNotFoundError if it is not written yet)."""
    raw = load_yaml(directory / "charmcraft.yaml")
    if not isinstance(raw, dict):
        raise ValueError(f"{directory / 'charmcraft.yaml'} is not a YAML mapping")
    return CharmSpec(directory=directory, raw=raw)
