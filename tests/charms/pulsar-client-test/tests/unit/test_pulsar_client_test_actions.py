"""The produce and consume actions, with pulsar-client faked at make_client."""

from __future__ import annotations

import pulsar
import pytest
from ops import testing
from pulsar_client_test_fakes import BROKER_URL, TOKEN, FakePulsar, answered_relation, token_secret

TOPIC = "persistent://pulsar-client-test/default/test"


def connected_state(**kwargs) -> testing.State:
    secret = token_secret()
    relation = answered_relation(secret)
    return testing.State(leader=True, relations=[relation], secrets=[secret], **kwargs)


def test_produce_reports_count(ctx: testing.Context, fake_pulsar: FakePulsar):
    ctx.run(ctx.on.action("produce", params={"count": 3}), connected_state())
    assert ctx.action_results == {"topic": TOPIC, "count": 3}
    assert fake_pulsar.sent == {TOPIC: [b"message-0", b"message-1", b"message-2"]}
    assert fake_pulsar.clients == [{"url": BROKER_URL, "token": TOKEN}]
    assert fake_pulsar.closed == 1


def test_produce_defaults_and_prefix(ctx: testing.Context, fake_pulsar: FakePulsar):
    ctx.run(
        ctx.on.action("produce", params={"payload-prefix": "p", "topic": "t2"}), connected_state()
    )
    topic = "persistent://pulsar-client-test/default/t2"
    assert ctx.action_results == {"topic": topic, "count": 10}
    assert fake_pulsar.sent[topic][-1] == b"p-9"


def test_consume_returns_payloads(ctx: testing.Context, fake_pulsar: FakePulsar):
    fake_pulsar.sent[TOPIC] = [f"m-{i}".encode() for i in range(5)]
    ctx.run(ctx.on.action("consume", params={"count": 5}), connected_state())
    assert ctx.action_results == {
        "topic": TOPIC,
        "count": 5,
        "requested": 5,
        "timed-out": False,
        "first-payload": "m-0",
        "last-payload": "m-4",
    }
    assert fake_pulsar.acked == [f"m-{i}".encode() for i in range(5)]
    [subscription] = fake_pulsar.subscriptions
    assert subscription["subscription"] == "pulsar-client-test"
    assert subscription["initial_position"] == pulsar.InitialPosition.Earliest


def test_consume_reports_fewer_on_timeout(ctx: testing.Context, fake_pulsar: FakePulsar):
    fake_pulsar.sent[TOPIC] = [b"only"]
    ctx.run(ctx.on.action("consume", params={"count": 4, "timeout-seconds": 1}), connected_state())
    assert ctx.action_results is not None
    assert ctx.action_results["count"] == 1
    assert ctx.action_results["timed-out"] is True
    assert ctx.action_results["first-payload"] == ctx.action_results["last-payload"] == "only"


def test_consume_nothing_has_no_payload_keys(ctx: testing.Context):
    ctx.run(ctx.on.action("consume", params={"timeout-seconds": 1}), connected_state())
    assert ctx.action_results == {"topic": TOPIC, "count": 0, "requested": 10, "timed-out": True}


def test_consume_full_topic_of_another_namespace(ctx: testing.Context, fake_pulsar: FakePulsar):
    other = "persistent://other/ns/test"
    fake_pulsar.sent[other] = [b"x"]
    ctx.run(ctx.on.action("consume", params={"topic": other, "count": 1}), connected_state())
    assert ctx.action_results is not None and ctx.action_results["topic"] == other


@pytest.mark.parametrize("action", ["produce", "consume"])
def test_authorization_error_fails_clearly(
    ctx: testing.Context, fake_pulsar: FakePulsar, action: str
):
    fake_pulsar.error = pulsar.AuthorizationError("Pulsar error: AuthorizationError")
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action(action), connected_state())
    message = failure.value.message
    assert message.startswith("not authorized: role relation-3 may not "), message
    assert action in message and TOPIC in message
    assert "Traceback" not in message
    assert fake_pulsar.closed == 1


def test_authentication_error_fails_clearly(ctx: testing.Context, fake_pulsar: FakePulsar):
    fake_pulsar.error = pulsar.AuthenticationError("Pulsar error: AuthenticationError")
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("produce"), connected_state())
    assert failure.value.message.startswith("authentication refused for role relation-3")


def test_produce_timeout_midway_reports_progress(ctx: testing.Context, fake_pulsar: FakePulsar):
    fake_pulsar.send_error_after = 2
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("produce", params={"count": 5}), connected_state())
    assert failure.value.message == (
        f"timed out trying to produce on {TOPIC} via {BROKER_URL} after 2 of 5 messages"
    )


def test_unexpected_error_fails_with_message(ctx: testing.Context, fake_pulsar: FakePulsar):
    fake_pulsar.error = RuntimeError("boom")
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("consume"), connected_state())
    assert failure.value.message == f"cannot consume on {TOPIC}: RuntimeError: boom"


def test_bad_topic_fails(ctx: testing.Context, fake_pulsar: FakePulsar):
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("produce", params={"topic": "a/b"}), connected_state())
    assert failure.value.message.startswith("topic 'a/b': ")
    assert fake_pulsar.clients == []


def test_actions_without_relation_fail(ctx: testing.Context, fake_pulsar: FakePulsar):
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("produce"), testing.State(leader=True))
    assert failure.value.message == "not connected: no pulsar relation"
    assert fake_pulsar.clients == []


def test_actions_before_answer_fail(ctx: testing.Context):
    relation = testing.Relation("pulsar", remote_app_name="pulsar-k8s")
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("consume"), testing.State(relations=[relation]))
    assert failure.value.message == "not connected: no namespace yet"


def test_actions_with_bad_config_fail(ctx: testing.Context):
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("produce"), connected_state(config={"permissions": "nope"}))
    assert failure.value.message.startswith("not connected: bad config (permissions: ")


def test_actions_use_the_chosen_endpoint_namespace_and_token(
    ctx: testing.Context, fake_pulsar: FakePulsar
):
    orders_secret = token_secret("tok-orders", "relation-3")
    audit_secret = token_secret("tok-audit", "relation-4")
    state = testing.State(
        leader=True,
        relations=[
            answered_relation(orders_secret, "team/orders"),
            answered_relation(audit_secret, "team/audit", endpoint="pulsar-second"),
        ],
        secrets=[orders_secret, audit_secret],
        config={"namespace": "team/orders", "second-namespace": "team/audit"},
    )
    ctx.run(ctx.on.action("produce", params={"count": 1, "endpoint": "pulsar-second"}), state)
    assert ctx.action_results == {"topic": "persistent://team/audit/test", "count": 1}
    ctx.run(ctx.on.action("produce", params={"count": 1}), state)
    assert ctx.action_results == {"topic": "persistent://team/orders/test", "count": 1}
    assert [c["token"] for c in fake_pulsar.clients] == ["tok-audit", "tok-orders"]


def test_action_on_an_unrelated_endpoint_fails(ctx: testing.Context):
    with pytest.raises(testing.ActionFailed) as failure:
        ctx.run(ctx.on.action("consume", params={"endpoint": "pulsar-second"}), connected_state())
    assert failure.value.message == "not connected: no pulsar-second relation"
