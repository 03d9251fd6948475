"""The typed view of the ``cluster`` peer relation: the only place its databags are read.

Application databag (written by the leader):
    ``cluster-metadata-initialised`` ``"true"`` once the cluster metadata exists, and
    ``cluster-metadata-cluster-name`` the cluster name it was created with;
    ``internal-secret-id`` the id of the ``pulsar-internal`` secret (read by ``find_app_secret``);
    ``clients`` JSON {role: "tenant/namespace"} of every client relation role the leader served;
    ``functions-declared`` JSON {"tenant/namespace/name": config dict} of the functions the
    operator declared with ``deploy-function``; ``functions-deployed`` JSON
    {"tenant/namespace/name": {"digest", "owner"}} of every function the leader created;
    ``replication-peers`` JSON, the geo-replication record of the peer clusters set up (their
    relation, namespaces, token id and state) and of those stopped: written and parsed only by
    ``pulsar_replication`` (``Record``), which owns its format.
Unit databags: ``signing-key-id`` the id (``pulsar_tokens.key_id``) of the token signing key the
unit's broker runs with, written once the broker serves with it; the leader reads it to finish
a signing-key rotation (see ``pulsar_key_rotation``). Besides it, only the rolling-restart
library's lock, which that library reads, and the unit's trust during a CA rotation
(``tls-cas``, ``trusted-cas``), which the core ``tls`` library writes and reads
(``parse_peer_trust``, shared with the bookies).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from charms.pulsar_k8s.v0.pulsar_client import validate_namespace
from charms.pulsar_k8s.v0.validation import InvalidField, parse_json_object, parse_username
from pulsar_config import is_cluster_name
from pulsar_functions import FunctionSpec, FunctionSpecError, parse_key, parse_spec

PEER_RELATION = "cluster"
METADATA_INITIALISED_KEY = "cluster-metadata-initialised"
METADATA_CLUSTER_NAME_KEY = "cluster-metadata-cluster-name"
INTERNAL_SECRET_ID_KEY = "internal-secret-id"
CLIENTS_KEY = "clients"
FUNCTIONS_DECLARED_KEY = "functions-declared"
FUNCTIONS_DEPLOYED_KEY = "functions-deployed"
SIGNING_KEY_ID_KEY = "signing-key-id"
REPLICATION_PEERS_KEY = "replication-peers"


@dataclass(frozen=True)
class PulsarPeerState:
    # The cluster name the metadata was created with; None until the metadata exists.
    metadata_cluster_name: str | None = None
    # role -> "tenant/namespace" of every client relation role the leader has served.
    served_clients: Mapping[str, str] = field(default_factory=dict)
    # "tenant/namespace/name" -> the operator's declaration (validated).
    declared_functions: Mapping[str, FunctionSpec] = field(default_factory=dict)
    # "tenant/namespace/name" -> {"digest", "owner"} of what the leader deployed.
    deployed_functions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def parse(app: Mapping[str, str]) -> PulsarPeerState:
    """Read the peer application databag; InvalidField when a value is refused."""
    return PulsarPeerState(
        _metadata_cluster_name(app),
        _served_clients(app),
        _declared_functions(app),
        _deployed_functions(app),
    )


def encode_json(value: Mapping[str, object]) -> str | None:
    """Encode a JSON record for ``write_if_different`` (None, deleting it, when empty)."""
    return json.dumps(dict(value), sort_keys=True) if value else None


def encode_served_clients(served: Mapping[str, str]) -> str | None:
    """Encode the ``clients`` value for ``write_if_different`` (None, deleting it, when empty)."""
    return json.dumps(dict(served), sort_keys=True) if served else None


def _metadata_cluster_name(app: Mapping[str, str]) -> str | None:
    # A flag other than "true" (or a missing name) reads as "not initialised": the leader then
    # runs initialize-cluster-metadata again, which is idempotent, and records both afresh.
    if app.get(METADATA_INITIALISED_KEY) != "true":
        return None
    recorded = app.get(METADATA_CLUSTER_NAME_KEY) or None
    # A bad name is refused: it would be compared with, and shown beside, the configured one.
    if recorded is not None and not is_cluster_name(recorded):
        raise InvalidField(PEER_RELATION, METADATA_CLUSTER_NAME_KEY, "is not a cluster name")
    return recorded


def _served_clients(app: Mapping[str, str]) -> dict[str, str]:
    # Refused, never read as empty: the record is how the leader revokes the grants of gone
    # relations and refuses to delete a served namespace, so forgetting it would leak grants.
    served = parse_json_object(PEER_RELATION, CLIENTS_KEY, app.get(CLIENTS_KEY) or None)
    for role, namespace in served.items():
        parse_username(PEER_RELATION, CLIENTS_KEY, role)
        if validate_namespace(namespace) is not None:
            raise InvalidField(PEER_RELATION, CLIENTS_KEY, "holds a value that is not a namespace")
    return {role: str(namespace) for role, namespace in served.items()}


def _declared_functions(app: Mapping[str, str]) -> dict[str, FunctionSpec]:
    raw = parse_json_object(
        PEER_RELATION, FUNCTIONS_DECLARED_KEY, app.get(FUNCTIONS_DECLARED_KEY) or None
    )
    declared: dict[str, FunctionSpec] = {}
    for key, value in raw.items():
        try:
            spec = parse_spec(value)  # type: ignore[arg-type]
        except (FunctionSpecError, TypeError) as exc:
            raise InvalidField(
                PEER_RELATION, FUNCTIONS_DECLARED_KEY, f"holds a bad function ({exc})"
            ) from None
        if spec.key != key:
            raise InvalidField(PEER_RELATION, FUNCTIONS_DECLARED_KEY, "holds a misfiled function")
        declared[key] = spec
    return declared


def _deployed_functions(app: Mapping[str, str]) -> dict[str, dict[str, str]]:
    raw = parse_json_object(
        PEER_RELATION, FUNCTIONS_DEPLOYED_KEY, app.get(FUNCTIONS_DEPLOYED_KEY) or None
    )
    deployed: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        try:
            parse_key(key)
        except FunctionSpecError:
            raise InvalidField(
                PEER_RELATION, FUNCTIONS_DEPLOYED_KEY, "holds a bad function name"
            ) from None
        if not isinstance(value, dict) or not all(
            isinstance(value.get(f), str) for f in ("digest", "owner")
        ):
            raise InvalidField(PEER_RELATION, FUNCTIONS_DEPLOYED_KEY, "holds a bad record")
        deployed[key] = {"digest": value["digest"], "owner": value["owner"]}
    return deployed
