"""What a charm declares (``charmcraft.yaml``), read the way Juju and ``ops.testing`` read it."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ops
import yaml

from tests.cluster.rig_errors import RigError

CONTAINER = "pulsar"
"""The workload container of every charm here."""


@dataclass(frozen=True)
class CharmSpec:
    meta: dict[str, Any]
    """``charmcraft.yaml`` without ``config`` and ``actions`` (``Context(meta=...)``)."""
    config: dict[str, Any] | None
    actions: dict[str, Any] | None


def load_charm_spec(charm_type: type[ops.CharmBase]) -> CharmSpec:
    """The spec of the charm whose class is ``charm_type`` (``<root>/src/<module>.py`` next to
    ``<root>/charmcraft.yaml``, the layout ``ops.testing`` autoloads from)."""
    root = Path(inspect.getfile(charm_type)).parent.parent
    path = root / "charmcraft.yaml"
    if not path.is_file():
        raise RigError(f"{charm_type.__name__}: no charmcraft.yaml in {root}")
    meta = dict(yaml.safe_load(path.read_text()) or {})
    if "name" not in meta:
        raise RigError(f"{path}: not a unified charmcraft.yaml (no name)")
    config = meta.pop("config", None)
    actions = meta.pop("actions", None)
    return CharmSpec(meta=meta, config=config, actions=actions)


def storage_mounts(meta: Mapping[str, Any]) -> dict[str, str]:
    """storage name -> location in the workload container, as Juju mounts it: the container
    mount's ``location``, else the storage's own ``location``."""
    storages = meta.get("storage") or {}
    mounts = {}
    for mount in (meta.get("containers") or {}).get(CONTAINER, {}).get("mounts", []):
        name = mount["storage"]
        location = mount.get("location") or (storages.get(name) or {}).get("location")
        if not location:
            raise RigError(f"storage {name!r} has no location")
        mounts[name] = location
    return mounts


def storage_names(meta: Mapping[str, Any]) -> list[str]:
    return list((meta.get("storage") or {}).keys())


def endpoint_names(meta: Mapping[str, Any]) -> list[str]:
    """Every endpoint a unit has a network binding for (``juju-info`` included)."""
    names = ["juju-info"]
    for section in ("requires", "provides", "peers"):
        names += list((meta.get(section) or {}).keys())
    return names


def has_workload_container(meta: Mapping[str, Any]) -> bool:
    return CONTAINER in (meta.get("containers") or {})


def relation_interface(meta: Mapping[str, Any], endpoint: str) -> str | None:
    for section in ("requires", "provides"):
        info = (meta.get(section) or {}).get(endpoint)
        if info:
            return info["interface"]
    return None
