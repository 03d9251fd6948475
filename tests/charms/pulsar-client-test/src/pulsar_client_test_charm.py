"""The pulsar-client-test charm: asks for a namespace, then produces/consumes on demand.

Every observed event runs the same ``_reconcile``: validate config, write the request (leader),
set the status from the relation's answer. The ``produce`` and ``consume`` actions use the
connection the relation publishes (``PulsarClientRequirer.connection()``).
"""

from __future__ import annotations

import logging

import ops
import pulsar_client_test_io as client_io
from charms.pulsar_k8s.v0.pulsar_client import PulsarClientRequirer
from pulsar_client_test_config import ClientTestConfig

logger = logging.getLogger(__name__)

RELATION = "pulsar"


class PulsarClientTestCharm(ops.CharmBase):
    """A test client of the pulsar_client interface (no workload container)."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        # The library refuses an invalid namespace at construction: build it only from a valid
        # config (a bad value blocks the charm and nothing is requested).
        self.pulsar: PulsarClientRequirer | None = None
        config = self._config()
        if isinstance(config, ClientTestConfig):
            self.pulsar = PulsarClientRequirer(
                self,
                RELATION,
                namespace=config.requested_namespace,
                permissions=config.permission_list(),
            )
            for event in (
                self.pulsar.on.namespace_ready,
                self.pulsar.on.endpoints_changed,
                self.pulsar.on.token_rotated,
            ):
                framework.observe(event, self._reconcile)
        for event in (
            self.on.install,
            self.on.start,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.leader_elected,
            self.on.update_status,
            self.on.secret_changed,
            self.on[RELATION].relation_created,
            self.on[RELATION].relation_joined,
            self.on[RELATION].relation_changed,
            self.on[RELATION].relation_departed,
            self.on[RELATION].relation_broken,
        ):
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
        if not isinstance(config, ClientTestConfig) or self.pulsar is None:
            return ops.BlockedStatus(str(config))
        self.pulsar.request()  # leader only, only when it differs
        relation = self.pulsar.relation
        if relation is None or (
            isinstance(event, ops.RelationBrokenEvent) and event.relation.id == relation.id
        ):
            return ops.WaitingStatus("waiting for pulsar relation")
        error = self.pulsar.error()
        if error:
            return ops.BlockedStatus(f"pulsar refused the request: {error}")
        connection = self.pulsar.connection()
        wanted = self.pulsar.namespace
        if connection is None or connection.namespace != wanted:
            return ops.WaitingStatus(f"waiting for namespace {wanted}")
        return ops.ActiveStatus(f"namespace {connection.namespace} ready (role {connection.role})")

    def _target(self) -> client_io.Target | None:
        if self.pulsar is None:
            return None
        connection = self.pulsar.connection()
        if connection is None:
            return None
        return client_io.Target(
            connection.broker_service_url, connection.namespace, connection.role, connection.token
        )

    def _not_connected(self, event: ops.ActionEvent) -> None:
        config = self._config()
        if not isinstance(config, ClientTestConfig):
            event.fail(f"not connected: bad config ({config})")
        elif self.pulsar is None or self.pulsar.relation is None:
            event.fail("not connected: no pulsar relation")
        else:
            error = self.pulsar.error()
            reason = f"pulsar refused the request: {error}" if error else "no namespace yet"
            event.fail(f"not connected: {reason}")

    def _on_produce(self, event: ops.ActionEvent) -> None:
        target = self._target()
        if target is None:
            self._not_connected(event)
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
        target = self._target()
        if target is None:
            self._not_connected(event)
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
