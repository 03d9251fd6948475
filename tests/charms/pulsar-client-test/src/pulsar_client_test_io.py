"""Produce and consume with the Python pulsar-client; the only module that imports it.

Every call is bounded (connection, operation, send and receive timeouts) and every failure is
raised as :class:`ClientIOError` whose message says what failed and why, so that an action can
``event.fail`` with it: an authorization error becomes a clear message, never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import pulsar

SUBSCRIPTION = "pulsar-client-test"
TOPIC_PREFIXES = ("persistent://", "non-persistent://")
# Bounds of every broker call (the client retries lookups and reconnects within them).
OPERATION_TIMEOUT_SECONDS = 30
CONNECTION_TIMEOUT_MS = 10_000
SEND_TIMEOUT_MS = 30_000


class ClientIOError(Exception):
    """A produce or consume that did not complete; the message is for the operator."""


@dataclass(frozen=True)
class Target:
    """Where to connect and as whom; ``token`` is a secret: never logged."""

    broker_service_url: str
    namespace: str
    role: str
    token: str = field(repr=False)
    # The CA (PEM) the relation published for pulsar+ssl URLs; empty for plain pulsar://.
    tls_ca: str = ""


@dataclass(frozen=True)
class Received:
    """What a consume got: the payloads in arrival order, and whether it waited in vain."""

    topic: str
    payloads: list[str]
    timed_out: bool


def topic_url(namespace: str, topic: str) -> str:
    """``persistent://<namespace>/<topic>``; a full topic URL is returned unchanged."""
    topic = topic.strip()
    if topic.startswith(TOPIC_PREFIXES):
        return topic
    if not topic or "/" in topic:
        raise ClientIOError(
            f"topic {topic!r}: a topic name (no '/') or a full persistent://tenant/ns/topic"
        )
    return f"persistent://{namespace}/{topic}"


def ca_file(ca_pem: str) -> str:
    """Write the CA to a file named by its digest (the client library takes a path)."""
    digest = hashlib.sha256(ca_pem.encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"pulsar-client-test-ca-{digest}.pem")
    if not os.path.exists(path):
        with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), delete=False) as f:
            f.write(ca_pem)
        os.replace(f.name, path)
    return path


def make_client(target: Target) -> Any:
    """The seam the unit tests replace: a real ``pulsar.Client`` with the relation's token.

    With a CA (pulsar+ssl URL) it trusts only that CA and checks the broker's host name.
    """
    tls: dict[str, Any] = {}
    if target.tls_ca:
        tls = {
            "tls_trust_certs_file_path": ca_file(target.tls_ca),
            "tls_allow_insecure_connection": False,
            "tls_validate_hostname": True,
        }
    return pulsar.Client(
        target.broker_service_url,
        authentication=pulsar.AuthenticationToken(target.token),
        operation_timeout_seconds=OPERATION_TIMEOUT_SECONDS,
        connection_timeout_ms=CONNECTION_TIMEOUT_MS,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
        **tls,
    )


def describe(exc: BaseException, target: Target, what: str, topic: str) -> str:
    """One line saying what failed; authorization and authentication named explicitly."""
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, pulsar.AuthorizationError):
        return f"not authorized: role {target.role} may not {what} on {topic} ({detail})"
    if isinstance(exc, pulsar.AuthenticationError):
        return f"authentication refused for role {target.role} ({detail})"
    if isinstance(exc, pulsar.Timeout):
        return f"timed out trying to {what} on {topic} via {target.broker_service_url}"
    if isinstance(exc, pulsar.ConnectError):
        return f"cannot connect to {target.broker_service_url} ({detail})"
    return f"cannot {what} on {topic}: {type(exc).__name__}: {detail}"


def produce(target: Target, topic: str, count: int, payload_prefix: str) -> tuple[str, int]:
    """Send ``count`` messages ``<prefix>-<i>``; return the topic URL and how many were sent."""
    url = topic_url(target.namespace, topic)
    client = None
    sent = 0
    try:
        client = make_client(target)
        producer = client.create_producer(url, send_timeout_millis=SEND_TIMEOUT_MS)
        for i in range(count):
            producer.send(f"{payload_prefix}-{i}".encode())
            sent += 1
        producer.close()
    except Exception as exc:
        message = describe(exc, target, "produce", url)
        if sent:
            message += f" after {sent} of {count} messages"
        raise ClientIOError(message) from exc
    finally:
        _close(client)
    return url, sent


def consume(
    target: Target,
    topic: str,
    count: int,
    timeout_seconds: float,
    subscription: str = SUBSCRIPTION,
) -> Received:
    """Receive up to ``count`` messages within ``timeout_seconds`` from the earliest unacked."""
    url = topic_url(target.namespace, topic)
    deadline = time.monotonic() + timeout_seconds
    payloads: list[str] = []
    timed_out = False
    client = None
    try:
        client = make_client(target)
        consumer = client.subscribe(
            url,
            subscription,
            consumer_type=pulsar.ConsumerType.Shared,
            initial_position=pulsar.InitialPosition.Earliest,
        )
        while len(payloads) < count:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                timed_out = True
                break
            try:
                message = consumer.receive(timeout_millis=remaining_ms)
            except pulsar.Timeout:
                timed_out = True
                break
            payloads.append(message.data().decode(errors="replace"))
            consumer.acknowledge(message)
        consumer.close()
    except Exception as exc:
        raise ClientIOError(describe(exc, target, "consume", url)) from exc
    finally:
        _close(client)
    return Received(url, payloads, timed_out)


def _close(client: Any) -> None:
    if client is None:
        return
    # Closing after a failure must not hide the failure.
    with contextlib.suppress(Exception):
        client.close()
