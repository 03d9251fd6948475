"""Operator actions: tenants, namespaces, permissions, the admin token, key rotation.

Every handler validates its parameters first and reports problems with ``event.fail`` (a clear
message, never a traceback). The admin calls go to this unit's broker with the admin token;
they work from any unit, because tenants, namespaces and permissions are cluster-wide metadata.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

import ops
import pulsar_tokens
from charms.pulsar_k8s.v0.pulsar_client import NAME_PATTERN, NAMESPACE_ACTIONS, validate_namespace
from charms.pulsar_k8s.v0.validation import InvalidField
from pulsar_function_serving import PackageMissingError
from pulsar_functions import (
    FunctionSpec,
    FunctionSpecError,
    load_config_text,
    parse_key,
    parse_spec,
    status_summary,
)

if TYPE_CHECKING:
    from pulsar_charm import PulsarBrokerCharm

logger = logging.getLogger(__name__)

_RELATION_ROLE = re.compile(r"^(proxy-\d+-)?relation-\d+$")


class ActionError(Exception):
    """A parameter or broker problem, reported with ``event.fail``."""


class PulsarActions(ops.Object):
    def __init__(self, charm: PulsarBrokerCharm):
        super().__init__(charm, "actions")
        self._charm = charm
        self._handlers = {
            "create_tenant": self._create_tenant,
            "create_namespace": self._create_namespace,
            "grant_permissions": self._grant_permissions,
            "revoke_permissions": self._revoke_permissions,
            "delete_namespace": self._delete_namespace,
            "get_admin_token": self._get_admin_token,
            "deploy_function": self._deploy_function,
            "update_function": self._update_function,
            "delete_function": self._delete_function,
            "list_functions": self._list_functions,
            "function_status": self._function_status,
            "rotate_signing_key": self._rotate_signing_key,
        }
        for name in self._handlers:
            charm.framework.observe(getattr(charm.on, f"{name}_action"), self._on_action)

    def _on_action(self, event: ops.ActionEvent) -> None:
        handler = self._handlers[event.handle.kind.removesuffix("_action")]
        try:
            result = handler(dict(event.params))
        except (ActionError, InvalidField, FunctionSpecError, PackageMissingError) as exc:
            # Refused data (a corrupt peer record, a bad secret) fails the action, not the hook.
            event.fail(str(exc))
            return
        if result:
            event.set_results(result)

    # -- helpers -------------------------------------------------------------------------

    def _auth(self):
        auth = self._charm.auth_material()
        if auth is None:
            raise ActionError(
                "the token credentials do not exist yet (the leader creates them once the "
                "zookeeper, bookkeeper and peer relations are in place)"
            )
        return auth

    def _admin(self):
        return self._charm.client_serving.admin_client(self._auth())

    def _check(self, result, what: str) -> None:
        if not result.ok:
            raise ActionError(f"{what} failed: {result.describe()}")

    # -- handlers ------------------------------------------------------------------------

    def _create_tenant(self, params: dict[str, Any]) -> dict[str, str]:
        tenant = _name(params.get("tenant"), "tenant")
        roles = _roles(params.get("admin-roles", ""))
        cluster = self._charm.config.get("cluster-name", "pulsar")
        self._check(
            self._admin().ensure_tenant(tenant, [str(cluster)], roles), f"creating tenant {tenant}"
        )
        return {"tenant": tenant, "admin-roles": ",".join(roles)}

    def _create_namespace(self, params: dict[str, Any]) -> dict[str, str]:
        namespace = _namespace(params.get("namespace"))
        minutes = _optional_int(params, "retention-time-minutes")
        size = _optional_int(params, "retention-size-mb")
        quota = _optional_int(params, "backlog-quota-mb")
        if (minutes is None) != (size is None):
            raise ActionError(
                "retention-time-minutes and retention-size-mb must be given together"
            )
        admin = self._admin()
        self._check(admin.create_namespace(namespace), f"creating namespace {namespace}")
        results = {"namespace": namespace}
        if minutes is not None and size is not None:
            self._check(admin.set_retention(namespace, minutes, size), "setting retention")
            results["retention"] = f"{minutes} minutes, {size} MB"
        if quota is not None:
            self._check(admin.set_backlog_quota(namespace, quota), "setting the backlog quota")
            results["backlog-quota-mb"] = str(quota)
        return results

    def _grant_permissions(self, params: dict[str, Any]) -> dict[str, str]:
        namespace = _namespace(params.get("namespace"))
        role = _operator_role(params.get("role"))
        raw = params.get("permissions", "")
        if not isinstance(raw, str):
            raise ActionError("permissions: a comma-separated list, e.g. produce,consume")
        actions = sorted({p.strip() for p in raw.split(",") if p.strip()})
        if not actions or set(actions) - set(NAMESPACE_ACTIONS):
            raise ActionError(
                f"permissions: a comma-separated subset of {', '.join(NAMESPACE_ACTIONS)}"
            )
        self._check(
            self._admin().grant(namespace, role, actions), f"granting {role} on {namespace}"
        )
        return {"namespace": namespace, "role": role, "permissions": ",".join(actions)}

    def _revoke_permissions(self, params: dict[str, Any]) -> dict[str, str]:
        namespace = _namespace(params.get("namespace"))
        role = _operator_role(params.get("role"))
        self._check(self._admin().revoke(namespace, role), f"revoking {role} on {namespace}")
        return {"namespace": namespace, "role": role}

    def _delete_namespace(self, params: dict[str, Any]) -> dict[str, str]:
        namespace = _namespace(params.get("namespace"))
        force = params.get("force", False)
        if not isinstance(force, bool):
            raise ActionError("force: true or false")
        in_use = [
            r for r, ns in self._charm.client_serving.served_clients().items() if ns == namespace
        ]
        if in_use:
            raise ActionError(
                f"namespace {namespace} is served to related applications ({', '.join(in_use)});"
                " remove those relations first"
            )
        self._check(
            self._admin().delete_namespace(namespace, force), f"deleting namespace {namespace}"
        )
        return {"namespace": namespace, "deleted": "true"}

    def _get_admin_token(self, _params: dict[str, Any]) -> dict[str, str]:
        auth = self._auth()
        # During a key rotation: the token this unit's broker accepts.
        token = self._charm.key_rotation.local_admin_token(auth)
        return {"token": token, "role": pulsar_tokens.ADMIN_ROLE}

    def _rotate_signing_key(self, params: dict[str, Any]) -> dict[str, str]:
        if params:
            raise ActionError(f"rotate-signing-key takes no parameters; got {sorted(params)}")
        if not self._charm.unit.is_leader():
            raise ActionError(
                "rotate-signing-key runs on the leader unit only (juju run pulsar-k8s/leader ...)"
            )
        results, content = self._charm.key_rotation.start(self._auth())
        if content is not None:
            if not self._charm.store_internal_content(content):
                raise ActionError("the pulsar-internal secret cannot be read; try again later")
            logger.info("signing-key rotation started: new key %s", results["key-id"])
            # This unit's broker takes its turn now; the others get secret-changed.
            self._charm.reconcile()
        return results

    # -- functions -----------------------------------------------------------------------

    def _function_change(self, params: dict[str, Any], *, new: bool) -> dict[str, str]:
        """deploy-function / update-function: validate, declare, deploy now, or roll back."""
        spec = parse_spec(load_config_text("config", params.get("config")))
        if not self._charm.unit.is_leader():
            raise ActionError("run this action on the leader unit (it records the declaration)")
        if not self._charm.config.get("functions-worker-enabled"):
            raise ActionError("functions-worker-enabled is false: enable the worker first")
        serving = self._charm.function_serving
        declared = serving.declared()
        deployed = serving.deployed()
        if new and spec.key in declared:
            raise ActionError(f"{spec.key} is already declared; use update-function")
        if not new and spec.key not in declared:
            raise ActionError(f"{spec.key} is not declared; use deploy-function")
        if spec.key not in declared and spec.key in deployed:
            raise ActionError(
                f"{spec.key} is declared by {deployed[spec.key]['owner']}; change it there"
            )
        serving.package(spec)  # the file exists (PackageMissingError names the field)
        previous = declared.get(spec.key)
        declared[spec.key] = spec
        serving.record_declared(declared)
        problem = serving.converge(self._auth()).get(spec.key)
        if problem:
            if previous is None:
                del declared[spec.key]
            else:
                declared[spec.key] = previous
            serving.record_declared(declared)
            serving.converge(self._auth())
            raise ActionError(f"{spec.key}: {problem}")
        return {"function": spec.key, "digest": serving.deployed()[spec.key]["digest"]}

    def _deploy_function(self, params: dict[str, Any]) -> dict[str, str]:
        return self._function_change(params, new=True)

    def _update_function(self, params: dict[str, Any]) -> dict[str, str]:
        return self._function_change(params, new=False)

    def _delete_function(self, params: dict[str, Any]) -> dict[str, str]:
        key = "/".join(parse_key(params.get("function")))
        if not self._charm.unit.is_leader():
            raise ActionError("run this action on the leader unit (it records the declaration)")
        serving = self._charm.function_serving
        declared = serving.declared()
        if key not in declared:
            owner = serving.deployed().get(key, {}).get("owner")
            if owner:
                raise ActionError(f"{key} is declared by {owner}; remove it there")
            raise ActionError(f"{key} is not declared by deploy-function")
        del declared[key]
        serving.record_declared(declared)
        problem = serving.converge(self._auth()).get(key)
        if problem:
            raise ActionError(f"{key}: {problem} (the leader retries on its next reconcile)")
        return {"function": key, "deleted": "true"}

    def _list_functions(self, params: dict[str, Any]) -> dict[str, str]:
        serving = self._charm.function_serving
        deployed = serving.deployed()
        declared: dict[str, FunctionSpec] = serving.declared()
        namespace = params.get("namespace")
        results: dict[str, str] = {}
        if namespace:
            namespace = _namespace(namespace)
            result = self._admin().list_functions(namespace)
            self._check(result, f"listing functions of {namespace}")
            results["worker"] = result.body.strip()
        managed = {
            key: {
                "owner": deployed.get(key, {}).get("owner", "operator"),
                "deployed": key in deployed,
                **({"digest": deployed[key]["digest"]} if key in deployed else {}),
            }
            for key in sorted(set(declared) | set(deployed))
            if not namespace or key.startswith(f"{namespace}/")
        }
        results["functions"] = json.dumps(managed, sort_keys=True)
        return results

    def _function_status(self, params: dict[str, Any]) -> dict[str, str]:
        key = "/".join(parse_key(params.get("function")))
        result = self._admin().function_status(key)
        self._check(result, f"status of {key}")
        return {"function": key, **status_summary(result.body)}


def _name(value: object, param: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ActionError(f"{param}: required; letters, digits, '_', '.', '-'")
    return value


def _namespace(value: object) -> str:
    error = validate_namespace(value) if value else "namespace: required, 'tenant/namespace'"
    if error:
        raise ActionError(error)
    assert isinstance(value, str)
    return value


def _roles(value: object) -> list[str]:
    if not isinstance(value, str):
        raise ActionError("admin-roles: a comma-separated list of role names")
    roles = sorted({r.strip() for r in value.split(",") if r.strip()})
    bad = [r for r in roles if not pulsar_tokens.valid_role(r)]
    if bad:
        raise ActionError(f"admin-roles: invalid role names {bad} (letters, digits, '_.@-')")
    return roles


def _operator_role(value: object) -> str:
    if not isinstance(value, str) or not pulsar_tokens.valid_role(value):
        raise ActionError("role: required; letters, digits, '_', '.', '@', '-'")
    if value in pulsar_tokens.SUPER_USER_ROLES:
        raise ActionError(f"role: {value} is a super-user role; it needs no permissions")
    if _RELATION_ROLE.fullmatch(value):
        raise ActionError(
            f"role: {value} is managed by the pulsar relation; change the relation instead"
        )
    return value


def _optional_int(params: dict[str, Any], key: str) -> int | None:
    if key not in params:
        return None
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        raise ActionError(f"{key}: an integer >= -1 (-1 means unlimited)")
    return value
