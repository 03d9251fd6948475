"""Default run: two Pulsar proxies (pulsar-proxy-k8s) in front of the bundle's brokers.

On the settled bundle, the proxy application (2 units) is related to pulsar-k8s on
``pulsar-proxy``, and two test clients to pulsar-k8s on ``pulsar`` (client-a: ``team-a/orders``,
client-b: its own namespace). Real pulsar-client and WebSocket traffic from the test process:

1. both proxies are active, bind only their own names, and carry no credential in proxy.conf;
2. client-a's relation token produces and consumes through each proxy;
3. at the proxy: no token, a forged token and client-b's token on client-a's namespace are
   refused (binary protocol), and the proxy says so in its log;
4. WebSocket produce/consume with client-a's token directly on the broker and through a proxy;
   client-b's token is refused on client-a's namespace through the proxy;
5. each proxy pod is lost in turn under a producer that lists both proxies: the producer
   reconnects through the other one and no acknowledged message is lost;
6. a test client related to the PROXY's ``pulsar`` endpoint (client-p: ``team-p/orders``) gets
   the proxy's URLs and a token the brokers minted for its own role, produces and consumes
   through the proxy with its actions, and its token is refused on another namespace; the
   relation removed at the proxy: the brokers revoke the role and both secrets go;
7. ``slow``: a second broker, then the broker that owns the producer's topic is lost behind the
   proxies: the producer carries on through them, no acknowledged message is lost.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BROKER, PROXY, small_config
from tests.cluster.rig_juju import Model
from tests.cluster.rig_net import service_fqdn, unit_fqdn

CLIENT_A = "client-a"
CLIENT_B = "client-b"
CLIENT_P = "client-p"
NAMESPACE_A = "team-a/orders"
NAMESPACE_P = "team-p/orders"
PROXIES = 2
SETTLE_S = 300.0


def proxy_url(*numbers: int) -> str:
    return "pulsar://" + ",".join(f"{unit_fqdn(PROXY, n)}:6650" for n in numbers)


def proxy_ws(number: int) -> str:
    return f"ws://{unit_fqdn(PROXY, number)}:8080/ws/v2"


BROKER_WS = f"ws://{unit_fqdn(BROKER, 0)}:8080/ws/v2"


def relation_token(model: Model, app: str) -> str:
    (rel,) = model.relations_of(app, "pulsar")
    return model.secret(model.app_data(rel.id, BROKER)["secret-user"]).content()["token"]


def topic_a(prefix: str) -> str:
    return f"persistent://{NAMESPACE_A}/{prefix}-{uuid.uuid4().hex[:6]}"


def produce(url: str, token: str | None, topic: str, payloads: list[bytes], timeout_s: int = 10):
    """Produce ``payloads`` with a plain pulsar-client; "ok" or the error (bounded)."""
    import pulsar

    outcome: list[str] = []

    def run() -> None:
        c = pulsar.Client(
            url,
            authentication=pulsar.AuthenticationToken(token) if token else None,
            operation_timeout_seconds=timeout_s,
            connection_timeout_ms=5000,
            logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error),
        )
        try:
            producer = c.create_producer(topic, send_timeout_millis=timeout_s * 1000)
            for payload in payloads:
                producer.send(payload)
            outcome.append("ok")
        except Exception as exc:
            outcome.append(repr(exc))
        finally:
            with contextlib.suppress(Exception):
                c.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s * 3 + 10)
    return outcome[0] if outcome else "watchdog: no answer in time"


def consume(url: str, token: str, topic: str, count: int, timeout_s: int = 30) -> list[bytes]:
    import pulsar

    c = pulsar.Client(
        url,
        authentication=pulsar.AuthenticationToken(token),
        operation_timeout_seconds=timeout_s,
        connection_timeout_ms=5000,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error),
    )
    try:
        consumer = c.subscribe(
            topic, "proxy-test", initial_position=pulsar.InitialPosition.Earliest
        )
        got = []
        for _ in range(count):
            message = consumer.receive(timeout_millis=timeout_s * 1000)
            consumer.acknowledge(message)
            got.append(message.data())
        return got
    finally:
        with contextlib.suppress(Exception):
            c.close()


def ws_connect(url: str, token: str | None):
    import websocket

    headers = [f"Authorization: Bearer {token}"] if token else []
    return websocket.create_connection(url, header=headers, timeout=20)


def ws_round_trip(base: str, token: str, topic: str, count: int = 3) -> list[bytes]:
    """Subscribe, produce ``count`` messages and consume them back over WebSocket."""
    path = topic.replace("persistent://", "persistent/")
    consumer = ws_connect(f"{base}/consumer/{path}/ws-sub", token)
    producer = ws_connect(f"{base}/producer/{path}", token)
    sent = [f"ws-{i}".encode() for i in range(count)]
    try:
        for payload in sent:
            producer.send(json.dumps({"payload": base64.b64encode(payload).decode()}))
            answer = json.loads(producer.recv())
            assert answer.get("result") == "ok", answer
        got = []
        for _ in sent:
            message = json.loads(consumer.recv())
            got.append(base64.b64decode(message["payload"]))
            consumer.send(json.dumps({"messageId": message["messageId"]}))
        return got
    finally:
        producer.close()
        consumer.close()


def ws_refused(base: str, token: str | None, topic: str) -> str:
    """The handshake's refusal ("refused <status>"), or "accepted"."""
    import websocket

    path = topic.replace("persistent://", "persistent/")
    try:
        ws_connect(f"{base}/producer/{path}", token).close()
    except websocket.WebSocketBadStatusException as exc:
        return f"refused {exc.status_code}"
    return "accepted"


def proxies_active(model: Model) -> bool:
    units = model.units(PROXY)
    return len(units) == PROXIES and all(u.unit_status.name == "active" for u in units)


@pytest.fixture(scope="module")
def proxied(bundle: Model) -> Iterator[Model]:
    from proxy_charm import PulsarProxyCharm  # type: ignore[import-not-found]
    from pulsar_client_test_charm import PulsarClientTestCharm  # type: ignore[import-not-found]

    model = bundle
    try:
        started = time.monotonic()
        model.deploy(
            PROXY, PulsarProxyCharm, units=PROXIES, config=small_config(PROXY, PulsarProxyCharm)
        )
        model.integrate(f"{BROKER}:pulsar-proxy", f"{PROXY}:pulsar-proxy")
        model.deploy(CLIENT_A, PulsarClientTestCharm, config={"namespace": NAMESPACE_A})
        model.deploy(CLIENT_B, PulsarClientTestCharm)
        model.integrate(f"{BROKER}:pulsar", f"{CLIENT_A}:pulsar")
        model.integrate(f"{BROKER}:pulsar", f"{CLIENT_B}:pulsar")
        model.deploy(CLIENT_P, PulsarClientTestCharm, config={"namespace": NAMESPACE_P})
        model.integrate(f"{PROXY}:pulsar", f"{CLIENT_P}:pulsar")
        model.settle(timeout=SETTLE_S)
        record("proxy.ready_s", time.monotonic() - started)
        yield model
    except Exception:
        print(f"\n===== rig report (proxy) =====\n{model.report()}")
        raise


def test_proxies_active_bound_to_their_names_without_credentials(proxied: Model):
    model = proxied
    assert proxies_active(model), [(u.name, u.unit_status) for u in model.units(PROXY)]
    secret_values = list(model.secret_content("pulsar-internal", owner=BROKER).values())
    for n in range(PROXIES):
        conf = model.pod(f"{PROXY}/{n}").read("/pulsar/conf/proxy.conf")
        assert "0.0.0.0" not in conf
        assert f"bindAddress={unit_fqdn(PROXY, n)}" in conf
        assert "forwardAuthorizationCredentials=true" in conf
        for value in secret_values:
            assert value not in conf


def test_client_token_produces_and_consumes_through_each_proxy(proxied: Model):
    token = relation_token(proxied, CLIENT_A)
    for n in range(PROXIES):
        topic = topic_a(f"via-proxy-{n}")
        payloads = [f"p{n}-{i}".encode() for i in range(5)]
        assert produce(proxy_url(n), token, topic, payloads) == "ok"
        assert consume(proxy_url(n), token, topic, len(payloads)) == payloads


def test_no_token_forged_token_and_other_namespace_token_refused_at_the_proxy(
    proxied: Model,
):
    from pulsar_tokens import generate_key, mint_token  # type: ignore[import-not-found]

    model = proxied
    forged = mint_token(generate_key(), "admin")
    token_b = relation_token(model, CLIENT_B)
    pod = model.pod(f"{PROXY}/0")
    before = set(pod.service_logs(lines=5000).splitlines())
    outcomes = {
        name: produce(proxy_url(0), token, topic_a(name), [b"x"])
        for name, token in (("no_token", None), ("forged", forged), ("client_b", token_b))
    }
    for name, outcome in outcomes.items():
        assert outcome != "ok", f"{name} produced through the proxy"
    # The proxy itself refused the connections that carried no valid token.
    new = [line for line in pod.service_logs(lines=5000).splitlines() if line not in before]
    assert any("authenticat" in line.lower() for line in new), "\n".join(new[-40:])
    # And client-a's token still works there: the refusals were about the tokens.
    token_a = relation_token(model, CLIENT_A)
    assert produce(proxy_url(0), token_a, topic_a("still"), [b"ok"]) == "ok"


def test_websocket_with_a_client_token_on_the_broker_and_through_the_proxy(proxied: Model):
    model = proxied
    token = relation_token(model, CLIENT_A)
    direct = ws_round_trip(BROKER_WS, token, topic_a("ws-direct"))
    assert direct == [b"ws-0", b"ws-1", b"ws-2"]
    for n in range(PROXIES):
        through = ws_round_trip(proxy_ws(n), token, topic_a(f"ws-proxy-{n}"))
        assert through == [b"ws-0", b"ws-1", b"ws-2"]
    # Another namespace's token and no token are refused at the proxy's WebSocket handshake.
    token_b = relation_token(model, CLIENT_B)
    assert ws_refused(proxy_ws(0), token_b, topic_a("ws-b")).startswith("refused 40")
    assert ws_refused(proxy_ws(0), None, topic_a("ws-none")).startswith("refused 40")


def test_a_client_related_to_the_proxy_is_served_through_it(proxied: Model):
    model = proxied
    (rel,) = model.relations_of(CLIENT_P, "pulsar")
    data = model.app_data(rel.id, PROXY)
    service = service_fqdn(PROXY)
    assert data["broker-service-url"] == f"pulsar://{service}:6650"
    assert data["web-service-url"] == f"http://{service}:8080"
    assert data["websocket-url"] == f"ws://{service}:8080/ws/v2"
    assert data["namespace"] == NAMESPACE_P
    assert "status" not in data, data
    # The proxy's secret carries the token the brokers minted for this client's own role.
    content = model.secret(data["secret-user"]).content()
    role, token = content["username"], content["token"]
    assert role.startswith("proxy-") and role.endswith("-relation-" + str(rel.id)), role
    (unit,) = model.units(CLIENT_P)
    assert unit.unit_status.name == "active", unit.unit_status
    assert NAMESPACE_P in unit.unit_status.message
    # The client charm's own actions produce and consume through the proxy's Service.
    started = time.monotonic()
    sent = model.run_action(unit.name, "produce", {"topic": "through-proxy", "count": 5})
    assert int(sent["count"]) == 5
    got = model.run_action(unit.name, "consume", {"topic": "through-proxy", "count": 5})
    assert int(got["count"]) == 5, got
    record("proxy.client_relation.produce_consume_s", time.monotonic() - started)
    # Its token opens only its namespace, at the proxy as on the brokers.
    assert produce(proxy_url(0), token, topic_a("p-on-a"), [b"x"]) != "ok"
    token_a = relation_token(model, CLIENT_A)
    topic_p = f"persistent://{NAMESPACE_P}/a-on-p-{uuid.uuid4().hex[:6]}"
    assert produce(proxy_url(1), token_a, topic_p, [b"x"]) != "ok"
    assert produce(proxy_url(1), token, topic_p, [b"x"]) == "ok"


def test_a_client_relation_removed_at_the_proxy_is_revoked_by_the_brokers(proxied: Model):
    model = proxied
    (rel,) = model.relations_of(CLIENT_P, "pulsar")
    (proxy_rel,) = model.relations_of(PROXY, "pulsar-proxy")
    mine = model.app_data(rel.id, PROXY)["secret-user"]
    content = model.secret(mine).content()
    role, token = content["username"], content["token"]
    answers = json.loads(model.app_data(proxy_rel.id, BROKER)["client-answers"])
    brokers_secret = answers[str(rel.id)]["secret-user"]
    topic = f"persistent://{NAMESPACE_P}/revoked-{uuid.uuid4().hex[:6]}"
    assert produce(proxy_url(0), token, topic, [b"before"]) == "ok"

    started = time.monotonic()
    model.remove_relation(rel.id)
    model.settle(until=lambda: True, timeout=SETTLE_S)
    served = model.peer_relation(BROKER).app_data.get(BROKER, {}).get("clients", "{}")
    assert role not in served, served
    assert mine not in model.secrets and brokers_secret not in model.secrets
    answers = json.loads(model.app_data(proxy_rel.id, BROKER).get("client-answers", "{}"))
    assert str(rel.id) not in answers, answers
    assert str(rel.id) not in model.app_data(proxy_rel.id, PROXY).get("client-requests", "")
    # The old token, through the proxy: refused within a bounded time.
    deadline = time.monotonic() + 60
    while True:
        outcome = produce(proxy_url(0), token, topic, [b"after"])
        if outcome != "ok" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert outcome != "ok", "still producing through the proxy 60 s after the removal"
    record("proxy.client_relation.revocation_s", time.monotonic() - started)


def test_proxy_pod_lost_under_a_producer_loses_nothing(proxied: Model):
    model = proxied
    token = relation_token(model, CLIENT_A)
    producer = workload.BackgroundProducer(
        topic=topic_a("proxy-loss"), url=proxy_url(0, 1), token=token
    ).start()
    try:
        producer.wait_acks(50)
        for n in range(PROXIES):
            before = len(producer.acked)
            lost_at = time.monotonic()
            model.lose_pod(f"{PROXY}/{n}")
            # The producer keeps going through the other proxy while this one comes back.
            producer.wait_acks(before + 50, timeout=120)
            record(f"proxy.loss_{n}.longest_ack_gap_s", producer.longest_gap(since=lost_at))
            model.settle(until=lambda: proxies_active(model), timeout=SETTLE_S)
        producer.wait_acks(len(producer.acked) + 20, timeout=60)
    finally:
        producer.stop()
    got = workload.read_all(producer.topic, url=proxy_url(0, 1))
    ok, index = workload.is_subsequence(producer.acked, got)
    assert ok, f"acknowledged message #{index} missing; {len(producer.acked)} acked"
    record("proxy.loss.acked", len(producer.acked))
    record("proxy.loss.send_failures", producer.failures)


@pytest.mark.slow
def test_broker_pod_lost_behind_the_proxies_loses_nothing(proxied: Model):
    """A second broker, then the broker owning the topic is lost under a producer."""
    model = proxied
    model.add_unit(BROKER)
    model.settle(timeout=SETTLE_S)
    token = relation_token(model, CLIENT_A)
    producer = workload.BackgroundProducer(
        topic=topic_a("broker-loss"), url=proxy_url(0, 1), token=token
    ).start()
    try:
        producer.wait_acks(50)
        name = producer.topic.rsplit("/", 1)[1]
        lookup = workload.http_get(
            f"http://{unit_fqdn(BROKER, 0)}:8080/lookup/v2/topic/persistent/{NAMESPACE_A}/{name}"
        )
        assert lookup, "the topic has no owner"
        owner = next(n for n in range(2) if unit_fqdn(BROKER, n) in lookup)
        before = len(producer.acked)
        lost_at = time.monotonic()
        model.lose_pod(f"{BROKER}/{owner}")
        # Juju runs meanwhile (the new pod's broker is started by its charm): the rig's Service
        # name resolves to broker 0 only, so the proxies' lookups need it back if it was lost.
        model.settle(until=lambda: len(producer.acked) >= before + 50, timeout=240)
        record("proxy.broker_loss.longest_ack_gap_s", producer.longest_gap(since=lost_at))
        model.settle(timeout=SETTLE_S)
    finally:
        producer.stop()
    got = workload.read_all(producer.topic, url=proxy_url(0, 1))
    ok, index = workload.is_subsequence(producer.acked, got)
    assert ok, f"acknowledged message #{index} missing; {len(producer.acked)} acked"
    record("proxy.broker_loss.acked", len(producer.acked))
