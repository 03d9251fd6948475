"""Rotating the token signing key: a roll through the brokers, finished by the leader.

Pulsar 4.0 verifies tokens against ONE key per broker, read when the broker starts:
``AuthenticationService`` instantiates each class named in ``authenticationProviders`` once (the
setting is a set), and every provider reads the same ``ServiceConfiguration``, so a second
``AuthenticationProviderToken`` with another ``tokenSettingPrefix`` cannot exist; the only other
``token`` provider shipped, ``AuthenticationProviderOpenID``, accepts RS/ES keys from an OpenID
issuer only. A broker cannot accept the old and the new key at once, so the rotation is a roll
(see docs/how-to/rotate-credentials.md for what a client sees):

1. ``start`` (the ``rotate-signing-key`` action, leader): a new key and new internal tokens go
   into the ``pulsar-internal`` secret; the old key and admin token stay beside them
   (``previous-*`` fields). The secret itself is the rotation's state, so an interrupted
   rotation is finished by whichever unit leads next, and re-running the action while one rolls
   changes nothing.
2. Every broker sees its files differ (key, broker token) and restarts through the existing
   rolling-restart lock, one at a time; once it serves again it reports the id of the key it
   runs with (``signing-key-id`` in its peer unit databag: a relation-changed for the leader).
3. While brokers differ, each unit's own admin calls use the admin token of the key its local
   broker runs with. Relation tokens stay signed with the old key until the only brokers left
   on it hold the restart lock (about to stop: their topics move to switched brokers); then
   the leader re-mints them with the new key and publishes them (clients get secret-changed).
4. When every broker reports the new key, the leader drops the ``previous-*`` fields (and
   re-mints any relation token still on the old key). The old key is then accepted nowhere.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from typing import TYPE_CHECKING

import pulsar_tokens
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.workload import WorkloadError
from charms.pulsar_zookeeper_k8s.v0.rolling_restart import GRANTED_KEY
from pulsar_peer_state import PEER_RELATION, SIGNING_KEY_ID_KEY
from pulsar_render import SECRET_KEY_PATH, AuthMaterial

if TYPE_CHECKING:
    from pulsar_charm import PulsarBrokerCharm

logger = logging.getLogger(__name__)

SIGNING_KEY_FIELD = "signing-key"
ADMIN_TOKEN_FIELD = "admin-token"
BROKER_TOKEN_FIELD = "broker-token"
PREVIOUS_SIGNING_KEY_FIELD = "previous-signing-key"
PREVIOUS_ADMIN_TOKEN_FIELD = "previous-admin-token"


def new_auth_content() -> dict[str, str]:
    """Return the ``pulsar-internal`` content for a fresh key (no rotation under way)."""
    return auth_content(pulsar_tokens.generate_key())


def auth_content(key: str) -> dict[str, str]:
    return {
        SIGNING_KEY_FIELD: key,
        ADMIN_TOKEN_FIELD: pulsar_tokens.mint_token(key, pulsar_tokens.ADMIN_ROLE),
        BROKER_TOKEN_FIELD: pulsar_tokens.mint_token(key, pulsar_tokens.BROKER_ROLE),
    }


def rotated_content(current: AuthMaterial, new_key: str) -> dict[str, str]:
    """Return the content while ``new_key`` rolls out: new key and tokens, the old beside."""
    return {
        **auth_content(new_key),
        PREVIOUS_SIGNING_KEY_FIELD: current.signing_key,
        PREVIOUS_ADMIN_TOKEN_FIELD: current.admin_token,
    }


def finished(auth: AuthMaterial) -> AuthMaterial:
    """Return the material once the rotation is done: the previous key forgotten."""
    return AuthMaterial(auth.signing_key, auth.admin_token, auth.broker_token)


class SigningKeyRotation:
    """The rotation's steps in the reconcile and the action (the secret holds the state)."""

    def __init__(self, charm: PulsarBrokerCharm):
        self._charm = charm

    # -- every unit --------------------------------------------------------------------------

    def local_admin_token(self, auth: AuthMaterial) -> str:
        """Return the admin token the broker of THIS unit accepts (its key file says which)."""
        if not auth.rotating or auth.previous_admin_token is None:
            return auth.admin_token
        try:
            loaded = self._charm.workload.read(SECRET_KEY_PATH)
        except WorkloadError:
            return auth.admin_token
        previous = base64.b64decode(auth.previous_signing_key or "")
        return auth.previous_admin_token if loaded == previous else auth.admin_token

    def report_serving(self, auth: AuthMaterial) -> None:
        """Report which key this unit's broker runs with (it serves with the current files)."""
        relation = self._charm.model.get_relation(PEER_RELATION)
        if relation is not None:
            write_if_different(
                relation.data[self._charm.unit],
                {SIGNING_KEY_ID_KEY: pulsar_tokens.key_id(auth.signing_key)},
            )

    # -- the leader ----------------------------------------------------------------------------

    def progress(self, auth: AuthMaterial) -> tuple[AuthMaterial, str | None]:
        """Leader: finish a rotation every broker has applied; else say how far it is.

        Relation tokens move to the new key as soon as the only brokers still on the old key
        hold the restart lock (they are about to stop, and their topics move to brokers that
        run the new key), so clients are not refused for a whole broker restart.
        """
        if not auth.rotating:
            return auth, None
        switched, total = self.brokers_switched(auth)
        if switched < total:
            if set(self.brokers_on_old_key(auth)) <= {self._lock_holder()}:
                auth = dataclasses.replace(auth, clients_on_new_key=True)
            return auth, f"rotating the signing key: {switched}/{total} brokers switched"
        done = finished(auth)
        if not self._charm.store_internal_content(auth_content_of(done)):
            return auth, "rotating the signing key: the pulsar-internal secret is unreadable"
        logger.info(
            "signing-key rotation finished: every broker runs key %s; old key dropped",
            pulsar_tokens.key_id(done.signing_key),
        )
        return done, None

    def brokers_on_old_key(self, auth: AuthMaterial) -> list[str]:
        """Units whose broker has not reported the new key."""
        relation = self._charm.model.get_relation(PEER_RELATION)
        if relation is None:
            return [self._charm.unit.name]
        wanted = pulsar_tokens.key_id(auth.signing_key)
        units = [self._charm.unit, *relation.units]
        return [u.name for u in units if relation.data[u].get(SIGNING_KEY_ID_KEY) != wanted]

    def _lock_holder(self) -> str:
        relation = self._charm.model.get_relation(PEER_RELATION)
        return relation.data[self._charm.app].get(GRANTED_KEY, "") if relation else ""

    def brokers_switched(self, auth: AuthMaterial) -> tuple[int, int]:
        """(units whose broker runs the new key, all units) from the peer unit databags."""
        relation = self._charm.model.get_relation(PEER_RELATION)
        wanted = pulsar_tokens.key_id(auth.signing_key)
        if relation is None:
            return 0, 1
        units = [self._charm.unit, *relation.units]
        switched = sum(1 for u in units if relation.data[u].get(SIGNING_KEY_ID_KEY) == wanted)
        return switched, len(units)

    def start(self, auth: AuthMaterial) -> tuple[dict[str, str], dict[str, str] | None]:
        """Leader (the action): begin a rotation, or report the one under way.

        Returns the action's results and the secret's new content (None: nothing to change).
        """
        if auth.rotating:
            switched, total = self.brokers_switched(auth)
            return {
                "status": "in-progress",
                "key-id": pulsar_tokens.key_id(auth.signing_key),
                "brokers-switched": f"{switched}/{total}",
            }, None
        new_key = pulsar_tokens.generate_key()
        content = rotated_content(auth, new_key)
        _switched, total = self.brokers_switched(auth)
        return {
            "status": "started",
            "key-id": pulsar_tokens.key_id(new_key),
            "previous-key-id": pulsar_tokens.key_id(auth.signing_key),
            "brokers-switched": f"0/{total}",
        }, content


def auth_content_of(auth: AuthMaterial) -> dict[str, str]:
    content = {
        SIGNING_KEY_FIELD: auth.signing_key,
        ADMIN_TOKEN_FIELD: auth.admin_token,
        BROKER_TOKEN_FIELD: auth.broker_token,
    }
    if auth.previous_signing_key and auth.previous_admin_token:
        content[PREVIOUS_SIGNING_KEY_FIELD] = auth.previous_signing_key
        content[PREVIOUS_ADMIN_TOKEN_FIELD] = auth.previous_admin_token
    return content
