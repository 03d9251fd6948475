"""The pulsar-client-test charm: asks for namespaces, then produces/consumes on demand.

Every observed event runs the same ``_reconcile``: validate config, write the request of each
endpoint (leader), set the status from the relations' answers. The ``produce`` and ``consume``
actions use the connection the chosen endpoint's relation publishes.
"""

from __future__ import annotations

import logging

import ops
import pulsar_client_test_io as client_io
from charms.pulsar_k8s.v0.pulsar_client import PulsarClientRequirer
from pulsar_client_test_config import ClientTestConfig

logger = logging.getLogger(__name__)

ENDPOINTS = ("pulsar", "pulsar-second")


class PulsarClientTestCharm(ops.CharmBase):
    """A test client of the pulsar_client interface (no workload container)."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        # The library refuses an invalid namespace at construction: build the requirers only
        # from a valid config (a bad value blocks the charm and nothing is requested).
        self.requirers: dict[str, PulsarClientRequirer] = {}
        config = self._config()
        if isinstance(config, ClientTestConfig):
            namespaces = config.namespaces(self.app.name)
            for endpoint in ENDPOINTS:
                requirer = PulsarClientRequirer(
                    self,
                    endpoint,
                    namespace=namespaces[endpoint],
                    extra_user_roles=config.permission_list(),
                    functions=[
                        f for f in [config.function_config()] if f and endpoint == "pulsar"
                    ],
                    function_code=(
                        config.function_code() if config.function_code_in_secret else None
                    ),
                )
                self.requirers[endpoint] = requirer
                for event in (
                    requirer.on.namespace_created,
                    requirer.on.endpoints_changed,
                    requirer.on.token_changed,
                    requirer.on.status_raised,
                    requirer.on.status_resolved,
                ):
                    framework.observe(event, self._reconcile)
        observed = [
            self.on.install,
            self.on.start,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.update_status,
            self.on.secret_changed,
        ]
        for endpoint in ENDPOINTS:
            observed += [
                self.on[endpoint].relation_created,
                self.on[endpoint].relation_joined,
                self.on[endpoint].relation_changed,
                self.on[endpoint].relation_departed,
                self.on[endpoint].relation_broken,
            ]
        for event in observed:
            framework.observe(event, self._reconcile)
        framework.observe(self.on.produce_action, self._on_produce)
        framework.observe(self.on.consume_action, self._on_consume)

    def _config(self) -> ClientTestConfig | str:
        """The validated config, or the Blocked message naming the bad option."""
        try:
            return self.load_config(ClientTestConfig)
        except (ValueError, TypeError) as exc:
            return str(exc)

    def _reconcile(self, event: ops.EventBase) -> None:
        self.unit.status = self._converge(event)

    def _converge(self, event: ops.EventBase) -> ops.StatusBase:
        config = self._config()
        if not isinstance(config, ClientTestConfig) or not self.requirers:
            return ops.BlockedStatus(str(config))
        broken = event.relation.id if isinstance(event, ops.RelationBrokenEvent) else None
        ready: list[str] = []
        waiting: list[str] = []
        for endpoint, requirer in self.requirers.items():
            requirer.request()  # leader only, only when it differs
            relation = requirer.relation
            if relation is None or relation.id == broken:
                continue
            refused = [s for s in requirer.statuses(relation) if s.is_fatal]
            if refused:
                why = "; ".join(f"{s.message} ({s.resolution})" for s in refused)
                return ops.BlockedStatus(f"pulsar refused the request on {endpoint}: {why}")
            connection = requirer.connection(relation)
            if connection is None or connection.namespace != requirer.namespace:
                waiting.append(requirer.namespace)
            else:
                ready.append(f"namespace {connection.namespace} ready (role {connection.role})")
        if waiting:
            return ops.WaitingStatus(f"waiting for namespace {', '.join(waiting)}")
        if not ready:
            return ops.WaitingStatus("waiting for pulsar relation")
        return ops.ActiveStatus("; ".join(ready))

    def _target(self, endpoint: str) -> client_io.Target | None:
        requirer = self.requirers.get(endpoint)
        connection = requirer.connection() if requirer else None
        if connection is None:
            return None
        return client_io.Target(
            connection.broker_service_url,
            connection.namespace,
            connection.role,
            connection.token,
            connection.tls_ca,
        )

    def _not_connected(self, event: ops.ActionEvent, endpoint: str) -> None:
        config = self._config()
        requirer = self.requirers.get(endpoint)
        if not isinstance(config, ClientTestConfig):
            event.fail(f"not connected: bad config ({config})")
        elif requirer is None or requirer.relation is None:
            event.fail(f"not connected: no {endpoint} relation")
        else:
            error = requirer.error()
            reason = f"pulsar refused the request: {error}" if error else "no namespace yet"
            event.fail(f"not connected: {reason}")

    def _on_produce(self, event: ops.ActionEvent) -> None:
        endpoint = str(event.params.get("endpoint", "pulsar"))
        target = self._target(endpoint)
        if target is None:
            self._not_connected(event, endpoint)
            return
        topic = str(event.params.get("topic", "test"))
        count = int(event.params.get("count", 10))
        prefix = str(event.params.get("payload-prefix", "message"))
        if count < 1:
            event.fail("count: must be at least 1")
            return
        try:
            url, sent = client_io.produce(target, topic, count, prefix)
        except client_io.ClientIOError as exc:
            logger.warning("produce failed: %s", exc)
            event.fail(str(exc))
            return
        event.set_results({"topic": url, "count": sent})

    def _on_consume(self, event: ops.ActionEvent) -> None:
        endpoint = str(event.params.get("endpoint", "pulsar"))
        target = self._target(endpoint)
        if target is None:
            self._not_connected(event, endpoint)
            return
        topic = str(event.params.get("topic", "test"))
        count = int(event.params.get("count", 10))
        timeout = float(event.params.get("timeout-seconds", 30))
        if count < 1 or timeout <= 0:
            event.fail("count and timeout-seconds: must be positive")
            return
        try:
            received = client_io.consume(target, topic, count, timeout)
        except client_io.ClientIOError as exc:
            logger.warning("consume failed: %s", exc)
            event.fail(str(exc))
            return
        results: dict[str, object] = {
            "topic": received.topic,
            "count": len(received.payloads),
            "requested": count,
            "timed-out": received.timed_out,
        }
        if received.payloads:
            results["first-payload"] = received.payloads[0]
            results["last-payload"] = received.payloads[-1]
        event.set_results(results)
