"""The only places where the rig relies on ``ops`` internals (ops 3.9, ``ops[testing]``).

``ops.testing`` has no public way for these three things; each hook below names what it uses,
and ``tests/cluster/test_rig_ops_private.py`` fails, naming the hook, when an ``ops`` upgrade
removes or changes it. Everything else in the rig uses the public API.

- :func:`real_pebble`: ``ops.testing`` always hands the charm its own in-memory Pebble; the rig
  hands it the unit's real one (``scenario.mocking._MockModelBackend.get_pebble``).
- :func:`secret_with_revisions` / :func:`secret_revisions`: ``ops.testing.Secret`` keeps revision
  numbers in private fields (``_tracked_revision``, ``_latest_revision``); the rig needs them to
  know which units track an older revision (they get ``secret-changed``) and when a hook made a
  new revision.
- :func:`pebble_get`: a Pebble API the public ``ops.pebble.Client`` does not wrap (the readiness
  Kubernetes probes, ``/v1/health?level=ready``; a service's ``current-since``), through
  ``ops.pebble.Client._request``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any
from unittest import mock

import ops
import scenario.mocking
from ops import testing

MOCK_BACKEND = scenario.mocking._MockModelBackend
"""The model backend ``Context.run`` gives the charm; its ``get_pebble`` makes the client."""
TRACKED_REVISION = "_tracked_revision"
LATEST_REVISION = "_latest_revision"


class OpsInternalsChangedError(RuntimeError):
    """What an ``ops`` upgrade broke, naming the hook in this module to fix."""


def _require(hook: str, ok: bool, what: str) -> None:
    if not ok:
        raise OpsInternalsChangedError(
            f"rig_ops_private.{hook}: ops {ops.__version__} no longer has {what}"
        )


@contextlib.contextmanager
def real_pebble(client: ops.pebble.Client) -> Iterator[None]:
    """While active, every container of the charm run by ``Context.run`` talks to ``client``
    (every charm here has one container)."""

    _require("real_pebble", hasattr(MOCK_BACKEND, "get_pebble"), "_MockModelBackend.get_pebble")

    def get_pebble(backend: Any, socket_path: str) -> ops.pebble.Client:
        return client

    with mock.patch.object(MOCK_BACKEND, "get_pebble", get_pebble):
        yield


def secret_with_revisions(secret: testing.Secret, tracked: int, latest: int) -> testing.Secret:
    """``secret`` whose holder tracks revision ``tracked`` of ``latest`` (its contents are
    ``tracked_content`` and ``latest_content``)."""
    for name in (TRACKED_REVISION, LATEST_REVISION):
        _require("secret_with_revisions", hasattr(secret, name), f"testing.Secret.{name}")
    object.__setattr__(secret, TRACKED_REVISION, tracked)
    object.__setattr__(secret, LATEST_REVISION, latest)
    return secret


def secret_revisions(secret: testing.Secret) -> tuple[int, int]:
    """(tracked, latest) revision of a secret in an output state."""
    for name in (TRACKED_REVISION, LATEST_REVISION):
        _require("secret_revisions", hasattr(secret, name), f"testing.Secret.{name}")
    return int(getattr(secret, TRACKED_REVISION)), int(getattr(secret, LATEST_REVISION))


def pebble_get(
    client: ops.pebble.Client, path: str, query: Mapping[str, str] | None = None
) -> Any:
    """``GET <path>`` on the Pebble API; returns the response's ``result``."""
    _require("pebble_get", hasattr(client, "_request"), "ops.pebble.Client._request")
    response = client._request("GET", path, dict(query or {}))
    return response["result"]
