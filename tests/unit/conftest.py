"""Fixtures of the repository-level tests: a small sample repository to prove the checks on."""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import yaml

SAMPLE_VERSION = "9.9.9"
SAMPLE_IMAGE = f"apachepulsar/pulsar:{SAMPLE_VERSION}"


def _charm(name: str, storage: dict[str, Any], **endpoints: Any) -> dict[str, Any]:
    mounts = [{"storage": s, "location": spec["location"]} for s, spec in storage.items()]
    data: dict[str, Any] = {
        "name": name,
        "type": "charm",
        "title": f"Sample {name}",
        "summary": f"Sample {name} | for tests.",
        "description": f"The {name} sample charm.\nSecond line.\n",
        "base": "ubuntu@24.04",
        "platforms": {"amd64": None},
        "parts": {"charm": {"plugin": "charm", "source": "."}},
        "assumes": ["k8s-api"],
        "containers": {"pulsar": {"resource": "pulsar-image", "mounts": mounts}},
        "resources": {
            "pulsar-image": {
                "type": "oci-image",
                "description": "The Pulsar image.",
                "upstream-source": SAMPLE_IMAGE,
            }
        },
        "storage": storage,
        "peers": {"cluster": {"interface": f"{name.split('-')[0]}_peers"}},
        "config": {
            "options": {
                "log-level": {"type": "string", "default": "info", "description": "Log level."},
                "heap-mb": {"type": "int", "default": 512, "description": "Heap | MiB."},
            }
        },
        "actions": {
            "get-status": {
                "description": "Report the status.",
                "params": {"verbose": {"type": "boolean", "default": False}},
            }
        },
    }
    data.update(endpoints)
    return data


SAMPLE_CHARMS: dict[str, dict[str, Any]] = {
    "pulsar-zookeeper-k8s": _charm(
        "pulsar-zookeeper-k8s",
        {"data": {"type": "filesystem", "location": "/pulsar/data", "minimum-size": "1G"}},
        provides={"zookeeper": {"interface": "zookeeper"}},
    ),
    "bookkeeper-k8s": _charm(
        "bookkeeper-k8s",
        {
            "journal": {"type": "filesystem", "location": "/pulsar/data/j", "minimum-size": "1G"},
            "ledgers": {"type": "filesystem", "location": "/pulsar/data/l", "minimum-size": "1G"},
        },
        provides={"bookkeeper": {"interface": "bookkeeper"}},
        requires={"zookeeper": {"interface": "zookeeper", "limit": 1}},
    ),
    "pulsar-k8s": _charm(
        "pulsar-k8s",
        {},
        requires={
            "zookeeper": {"interface": "zookeeper", "limit": 1},
            "bookkeeper": {"interface": "bookkeeper", "limit": 1},
        },
    ),
}

SAMPLE_BUNDLE: dict[str, Any] = {
    "bundle": "kubernetes",
    "name": "sample",
    "applications": {
        "pulsar-zookeeper-k8s": {
            "charm": "./charms/pulsar-zookeeper-k8s/pulsar-zookeeper-k8s_amd64.charm",
            "scale": 3,
            "resources": {"pulsar-image": SAMPLE_IMAGE},
            "storage": {"data": "5G"},
        },
        "bookkeeper-k8s": {
            "charm": "./charms/bookkeeper-k8s/bookkeeper-k8s_amd64.charm",
            "scale": 3,
            "resources": {"pulsar-image": SAMPLE_IMAGE},
            "storage": {"journal": "5G", "ledgers": "20G"},
        },
        "pulsar-k8s": {
            "charm": "./charms/pulsar-k8s/pulsar-k8s_amd64.charm",
            "scale": 1,
            "resources": {"pulsar-image": SAMPLE_IMAGE},
        },
    },
    "relations": [
        ["pulsar-zookeeper-k8s:zookeeper", "bookkeeper-k8s:zookeeper"],
        ["pulsar-zookeeper-k8s:zookeeper", "pulsar-k8s:zookeeper"],
        ["bookkeeper-k8s:bookkeeper", "pulsar-k8s:bookkeeper"],
    ],
}

LIB_TEMPLATE = '''"""Sample library {name}."""

LIBID = "{libid}"
LIBAPI = {api}
LIBPATCH = 1


def hello() -> str:
    return "{name}"
'''


class SampleRepo:
    """A throw-away repository shaped like this one, to check the checks."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.charms = copy.deepcopy(SAMPLE_CHARMS)
        self.bundle = copy.deepcopy(SAMPLE_BUNDLE)
        (root / "PULSAR_VERSION").write_text(SAMPLE_VERSION + "\n")
        self.write()
        self.add_lib("pulsar-zookeeper-k8s", "pulsar_zookeeper_k8s", "zookeeper", "a" * 32)
        self.add_lib("bookkeeper-k8s", "bookkeeper_k8s", "bookkeeper", "b" * 32)
        for consumer in ("bookkeeper-k8s", "pulsar-k8s"):
            self.copy_lib("pulsar-zookeeper-k8s", consumer, "pulsar_zookeeper_k8s", "zookeeper")
        self.copy_lib("bookkeeper-k8s", "pulsar-k8s", "bookkeeper_k8s", "bookkeeper")

    def charm_dir(self, name: str) -> pathlib.Path:
        return self.root / "charms" / name

    def write(self) -> None:
        for name, data in self.charms.items():
            self.charm_dir(name).mkdir(parents=True, exist_ok=True)
            (self.charm_dir(name) / "charmcraft.yaml").write_text(
                yaml.safe_dump(data, sort_keys=False)
            )
        (self.root / "bundle.yaml").write_text(yaml.safe_dump(self.bundle, sort_keys=False))

    def lib_path(self, charm: str, owner: str, lib: str, api: int = 0) -> pathlib.Path:
        return self.charm_dir(charm) / "lib" / "charms" / owner / f"v{api}" / f"{lib}.py"

    def add_lib(self, charm: str, owner: str, lib: str, libid: str, api: int = 0) -> None:
        path = self.lib_path(charm, owner, lib, api)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(LIB_TEMPLATE.format(name=lib, libid=libid, api=api))

    def copy_lib(self, source: str, target: str, owner: str, lib: str) -> None:
        dest = self.lib_path(target, owner, lib)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.lib_path(source, owner, lib).read_bytes())


@pytest.fixture
def sample_repo(tmp_path: pathlib.Path) -> SampleRepo:
    return SampleRepo(tmp_path)


@pytest.fixture
def make_sample_repo(tmp_path: pathlib.Path) -> Callable[[str], SampleRepo]:
    def make(name: str) -> SampleRepo:
        root = tmp_path / name
        root.mkdir()
        return SampleRepo(root)

    return make
