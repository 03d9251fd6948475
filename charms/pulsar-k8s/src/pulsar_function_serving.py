"""Serving Pulsar Functions: the leader makes the worker hold exactly the declared functions.

Declarations come from the operator (``deploy-function``, recorded in the peer application
databag so a new leader or a lost call converges) and from client relations (the ``functions``
field of the ``pulsar_client`` request: deployed with the relation's role and token, only in
the relation's own namespace, the code inline or in a Juju secret the client granted
(``code-secret``, read at its latest revision: a new revision is an update, woken by
secret-changed); a refused field is reported on the relation). The leader
reconciles them against the worker's list on every reconcile (``pulsar_functions.reconcile``):
create the missing, update the changed, delete what it created and nobody declares any more.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import ops
import pulsar_admin
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.pulsar_client import invalid_functions, not_served_yet
from pulsar_functions import (
    OPERATOR,
    Desired,
    FunctionSpec,
    FunctionSpecError,
    SecretCodeError,
    check_owned,
    parse_with_secret_code,
    reconcile,
)
from pulsar_peer_state import FUNCTIONS_DECLARED_KEY, FUNCTIONS_DEPLOYED_KEY, encode_json
from pulsar_render import AuthMaterial
from pulsar_view import (
    FUNCTIONS_VIEW_PATH,
    READY,
    broker_state,
    functions_view_layer,
    record_content,
    recorded_state,
)

if TYPE_CHECKING:
    from pulsar_charm import PulsarBrokerCharm

logger = logging.getLogger(__name__)


class PackageMissingError(Exception):
    """A declared function's file is not in the broker container."""


class PulsarFunctionServing:
    view_stale = False  # set by the charm when the functions worker's view check failed

    def __init__(self, charm: PulsarBrokerCharm):
        self._charm = charm
        # A worker call failed this hook: the charm schedules a retry (no update-status).
        self.retry_needed = False

    def worker_state(self, auth: AuthMaterial) -> str:
        """Read whether the worker has a leader; record it where its view check compares it."""
        workload = self._charm.workload
        address = self._charm.unit_address
        view = functions_view_layer(address, self._charm.web)
        if workload.layer_differs(view):
            workload.add_broker_layer(view)  # a check change restarts no service
        token = self._charm.key_rotation.local_admin_token(auth)
        ready = pulsar_admin.functions_worker_ready(address, token=token, web=self._charm.web)
        observed = broker_state(ready)
        content = workload.read(FUNCTIONS_VIEW_PATH)
        recorded = recorded_state(None if content is None else content.decode("utf-8", "replace"))
        if self.view_stale or recorded != observed:
            workload.push({FUNCTIONS_VIEW_PATH: record_content(observed, time.time())})
            self.view_stale = False
        return observed

    def declared(self) -> dict[str, FunctionSpec]:
        return dict(self._charm.peer_state().declared_functions)

    def deployed(self) -> dict[str, dict[str, str]]:
        return {k: dict(v) for k, v in self._charm.peer_state().deployed_functions.items()}

    def package(self, spec: FunctionSpec) -> bytes:
        """Return the code to upload: inline, or the file read from the broker container."""
        if spec.code is not None:
            return spec.code.encode()
        assert spec.path is not None
        content = self._charm.workload.read(spec.path)
        if content is None:
            field = "py" if spec.runtime == "PYTHON" else "jar"
            raise PackageMissingError(f"{field}: no file {spec.path} in the broker container")
        return content

    def record_declared(self, declared: dict[str, FunctionSpec]) -> None:
        data = self._charm._peer_app_data()
        if data is not None:
            value = {k: s.declaration() for k, s in declared.items()}
            write_if_different(data, {FUNCTIONS_DECLARED_KEY: encode_json(value)})

    def converge(self, auth: AuthMaterial) -> dict[str, str]:
        """Leader: reconcile the declared functions; returns {function: problem}."""
        problems: dict[str, str] = {}
        desired: dict[str, Desired] = {}
        for key, spec in sorted(self.declared().items()):
            try:
                desired[key] = Desired(spec, self.package(spec), OPERATOR)
            except PackageMissingError as exc:
                problems[key] = str(exc)
        relation_errors = self._relation_functions(desired, problems)
        deployed = self.deployed()
        # A declaration whose package is missing keeps what is deployed (never deleted for it).
        for key in problems:
            if key in deployed:
                desired.pop(key, None)
        keep = {k: v for k, v in deployed.items() if k in problems}
        admin = self._charm.client_serving.admin_client(auth)
        record, failed = reconcile(
            admin.with_token, desired, {k: v for k, v in deployed.items() if k not in keep}
        )
        record.update(keep)
        problems.update(failed)
        self.retry_needed = bool(failed)
        data = self._charm._peer_app_data()
        if data is not None:
            write_if_different(data, {FUNCTIONS_DEPLOYED_KEY: encode_json(record)})
        for key, problem in sorted(problems.items()):
            logger.warning("function %s not converged: %s", key, problem)
        self._report(relation_errors, desired, problems)
        return problems

    def _relation_functions(
        self, desired: dict[str, Desired], problems: dict[str, str]
    ) -> dict[int, list[str]]:
        """Add every served relation's declared functions; {relation id: refused fields}."""
        errors: dict[int, list[str]] = {}
        clients = self._charm.clients
        served = self._charm.client_serving.served_clients()
        for request in clients.requests():
            if request.error is not None or not request.functions:
                continue
            refused = errors.setdefault(request.relation_id, [])
            token = clients.stored_token(request.relation_id)
            if served.get(request.role) != request.namespace or token is None:
                continue  # not served yet: the client serving reports why
            for index, raw in enumerate(request.functions):
                try:
                    spec = parse_with_secret_code(raw, self._read_code_secret)
                    check_owned(spec, request.namespace)
                    if spec.key in desired:
                        raise FunctionSpecError("name", f"{spec.key} is already declared")
                    package = self.package(spec)
                except (FunctionSpecError, PackageMissingError) as exc:
                    refused.append(f"[{index}].{exc}")
                    continue
                desired[spec.key] = Desired(spec, package, request.role, token)
        return errors

    def _read_code_secret(self, uri: str) -> dict[str, str]:
        """Return a client's code secret at its latest revision (tracked: secret-changed)."""
        try:
            return self._charm.model.get_secret(id=uri).get_content(refresh=True)
        except ops.SecretNotFoundError:
            raise SecretCodeError(
                f"no secret {uri} visible to {self._charm.app.name}: create it and grant it "
                "on this relation"
            ) from None
        except ops.ModelError:
            raise SecretCodeError(
                f"secret {uri} is not readable: grant it to {self._charm.app.name} "
                "on this relation"
            ) from None

    def _report(
        self,
        relation_errors: dict[int, list[str]],
        desired: dict[str, Desired],
        problems: dict[str, str],
    ) -> None:
        """Raise a refused field (5005) or a failed call (4001) on the declaring relation."""
        relations = {r.id: r for r in self._charm.clients.relations}
        for relation_id, refused in relation_errors.items():
            relation = relations.get(relation_id)
            if relation is None:
                continue
            role = f"relation-{relation_id}"
            failed = [
                f"{key}: {problem}"
                for key, problem in sorted(problems.items())
                if key in desired and desired[key].owner == role
            ]
            if refused:
                self._charm.clients.report(relation, invalid_functions("; ".join(refused)))
            elif failed:
                self._charm.clients.report(relation, not_served_yet("; ".join(failed)))

    def with_functions(
        self, enabled: bool, auth: AuthMaterial, status: ops.StatusBase
    ) -> ops.StatusBase:
        """Leader: serve the declared functions; everyone: count them in the status."""
        if enabled and self.worker_state(auth) != READY:
            # Woken by the worker view check once the worker has elected its leader.
            return ops.ActiveStatus(f"{status.message}; functions worker starting")
        if not self._charm.unit.is_leader():
            return status
        declared = self.declared()
        asked = [r for r in self._charm.clients.requests() if r.functions and r.error is None]
        if not declared and not asked and not self.deployed():
            return status
        if not enabled:
            return ops.ActiveStatus(
                f"{status.message}; {len(declared)} function(s) declared but "
                "functions-worker-enabled is false"
            )
        problems = self.converge(auth)
        total = len(self.deployed()) + len([k for k in problems if k not in self.deployed()])
        message = f"{status.message}, {total - len(problems)}/{total} functions"
        if problems:
            key, problem = sorted(problems.items())[0]
            message += f"; {key}: {problem}"
        return ops.ActiveStatus(message)
