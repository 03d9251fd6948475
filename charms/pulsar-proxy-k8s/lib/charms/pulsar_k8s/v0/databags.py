"""Databag writes that change nothing when nothing changed, and the one way to find a secret.

``write_if_different`` is the only way the charms write a databag: a key is set only when its
value differs and deleted (``None``) only when present, so a reconcile that changes nothing
triggers no relation-changed on the other side.

``find_app_secret`` is how every unit finds an application-owned secret: by the id the leader
recorded in the peer application databag, else (the owner) by label; the leader records the id
it found or created, and creates a secret only when no secret has the label, so there is never a
second secret with one label.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping

import ops

LIBID = "3d5f7b9e1a2c4e6f8a0b2c4d6e8f0a1b"
LIBAPI = 0
LIBPATCH = 1

logger = logging.getLogger(__name__)


def write_if_different(
    databag: MutableMapping[str, str], wanted: Mapping[str, str | None]
) -> bool:
    """Set (or delete, for None or "") each key whose value differs; return whether any did."""
    changed = False
    for key, value in wanted.items():
        if value:
            if databag.get(key) != value:
                databag[key] = value
                changed = True
        elif key in databag:
            del databag[key]
            changed = True
    return changed


def find_app_secret(
    charm: ops.CharmBase,
    label: str,
    peer_app_data: MutableMapping[str, str] | None,
    id_key: str,
    create: Callable[[], dict[str, str]] | None = None,
) -> dict[str, str] | None:
    """Return the content of the app secret ``label``, or None while it cannot be read.

    Leader only: creates it with ``create()`` when no secret has the label, and records its id
    under ``id_key`` in the peer application databag so that every unit reads the same one.
    """
    secret = _by_recorded_id(charm, peer_app_data, id_key) or _by_label(charm, label)
    if secret is None and charm.unit.is_leader() and create is not None:
        if peer_app_data is None:
            return None  # the id could not be recorded: create once the peer relation exists
        secret = charm.app.add_secret(create(), label=label)
        logger.info("created the %s secret", label)
    if secret is None:
        return None
    try:
        content = secret.get_content(refresh=True)
    except (ops.SecretNotFoundError, ops.ModelError) as exc:
        logger.info("cannot read the %s secret: %s", label, type(exc).__name__)
        return None
    if charm.unit.is_leader() and peer_app_data is not None:
        secret_id = _secret_id(secret)
        if secret_id:
            write_if_different(peer_app_data, {id_key: secret_id})
    return content


def _by_recorded_id(
    charm: ops.CharmBase, peer_app_data: Mapping[str, str] | None, id_key: str
) -> ops.Secret | None:
    secret_id = peer_app_data.get(id_key) if peer_app_data is not None else None
    if not secret_id:
        return None
    try:
        return charm.model.get_secret(id=secret_id)
    except (ops.SecretNotFoundError, ops.ModelError):
        return None


def _by_label(charm: ops.CharmBase, label: str) -> ops.Secret | None:
    try:
        return charm.model.get_secret(label=label)
    except (ops.SecretNotFoundError, ops.ModelError):
        return None


def _secret_id(secret: ops.Secret) -> str | None:
    if secret.id:
        return secret.id
    try:
        return secret.get_info().id
    except (ops.SecretNotFoundError, ops.ModelError):
        return None
