"""Fakes and helpers of the pulsar-client-test unit tests: no real broker, pulsar-client faked.

The module name is unique across the repository: every charm's tests share one ``sys.path``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulsar
import pulsar_client_test_io
from ops import testing

TOKEN = "eyJhbGciOiJIUzI1NiJ9.test-token.sig"
BROKER_URL = "pulsar://pulsar-k8s-0.pulsar-k8s-endpoints.m.svc.cluster.local:6650"


@dataclass
class FakeMessage:
    payload: bytes

    def data(self) -> bytes:
        return self.payload


@dataclass
class FakePulsar:
    """Stands in for the broker: records what the charm does, raises what a test sets."""

    clients: list[dict[str, Any]] = field(default_factory=list)
    sent: dict[str, list[bytes]] = field(default_factory=dict)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    acked: list[bytes] = field(default_factory=list)
    closed: int = 0
    # Raised by create_producer/subscribe when set (e.g. pulsar.AuthorizationError).
    error: Exception | None = None
    # Raised by producer.send after this many messages, when set.
    send_error_after: int | None = None

    def client(self, target: pulsar_client_test_io.Target) -> FakeClient:
        self.clients.append({"url": target.broker_service_url, "token": target.token})
        return FakeClient(self)


class FakeClient:
    def __init__(self, fake: FakePulsar):
        self.fake = fake

    def create_producer(self, topic: str, **kwargs: Any) -> FakeProducer:
        if self.fake.error is not None:
            raise self.fake.error
        return FakeProducer(self.fake, topic)

    def subscribe(self, topic: str, subscription: str, **kwargs: Any) -> FakeConsumer:
        if self.fake.error is not None:
            raise self.fake.error
        self.fake.subscriptions.append({"topic": topic, "subscription": subscription, **kwargs})
        return FakeConsumer(self.fake, topic)

    def close(self) -> None:
        self.fake.closed += 1


class FakeProducer:
    def __init__(self, fake: FakePulsar, topic: str):
        self.fake, self.topic = fake, topic

    def send(self, payload: bytes) -> None:
        sent = self.fake.sent.setdefault(self.topic, [])
        if self.fake.send_error_after is not None and len(sent) >= self.fake.send_error_after:
            raise pulsar.Timeout("send timed out")
        sent.append(payload)

    def close(self) -> None:
        pass


class FakeConsumer:
    def __init__(self, fake: FakePulsar, topic: str):
        self.fake, self.topic = fake, topic
        self.position = 0

    def receive(self, timeout_millis: int) -> FakeMessage:
        assert timeout_millis > 0
        backlog = self.fake.sent.get(self.topic, [])
        if self.position >= len(backlog):
            raise pulsar.Timeout("Pulsar error: TimeOut")
        self.position += 1
        return FakeMessage(backlog[self.position - 1])

    def acknowledge(self, message: FakeMessage) -> None:
        self.fake.acked.append(message.payload)

    def close(self) -> None:
        pass


def token_secret(token: str = TOKEN, role: str = "relation-3") -> testing.Secret:
    """The provider's per-relation user secret, granted to this application."""
    content = {"username": role, "token": token}
    return testing.Secret(tracked_content=content, latest_content=content)


def answered_relation(
    secret: testing.Secret,
    namespace: str = "pulsar-client-test/default",
    endpoint: str = "pulsar",
    **local: str,
) -> testing.Relation:
    """A relation of ``endpoint`` once pulsar-k8s has answered (role: in the secret)."""
    return testing.Relation(
        endpoint,
        remote_app_name="pulsar-k8s",
        local_app_data=dict(local),
        remote_app_data={
            "broker-service-url": BROKER_URL,
            "web-service-url": "http://pulsar-k8s-0.pulsar-k8s-endpoints.m.svc.cluster.local:8080",
            "websocket-url": "ws://pulsar-k8s-0.pulsar-k8s-endpoints.m.svc.cluster.local:8080/ws/v2",
            "endpoints": BROKER_URL.removeprefix("pulsar://"),
            "namespace": namespace,
            "tls": "disabled",
            "secret-user": secret.id,
        },
    )


def request_of(relation: testing.RelationBase) -> dict[str, Any]:
    data: dict[str, Any] = dict(relation.local_app_data)
    if "requested-secrets" in data:
        data["requested-secrets"] = json.loads(data["requested-secrets"])
    return data
