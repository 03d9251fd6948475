"""The `zookeeper` v0 schemas and fixtures, read from the repository, made strict.

The schemas in ``tests/interface-schemas/zookeeper/v0`` are generated from pydantic models and
do not say ``additionalProperties: false``, so any key a side invents (a plain ``tls`` the
provider schema has no place for, a typo, a leftover) would validate. The contract is the set
of keys the schema defines: :func:`strict_schema` closes every object that lists properties.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[4]
SCHEMA_DIR = REPO / "tests/interface-schemas/zookeeper/v0"
FIXTURE_DIR = REPO / "tests/interface-fixtures/zookeeper"


def _close(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" and node.get("properties"):
            node["additionalProperties"] = False
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


def strict_schema(side: str) -> dict[str, Any]:
    """The ``provider`` or ``requirer`` schema with ``additionalProperties: false``."""
    schema = json.loads((SCHEMA_DIR / f"{side}.json").read_text())
    strict = copy.deepcopy(schema)
    _close(strict)
    return strict


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURE_DIR / name).read_text())


def decoded(databag: dict[str, str]) -> dict[str, Any]:
    """A requirer databag as the schema sees it: ``requested-secrets`` is a JSON list."""
    out: dict[str, Any] = dict(databag)
    if "requested-secrets" in out:
        out["requested-secrets"] = json.loads(out["requested-secrets"])
    return out
