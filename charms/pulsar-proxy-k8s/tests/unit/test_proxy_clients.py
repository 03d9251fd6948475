"""The proxy serves the ``pulsar`` client relation by relaying to the brokers (ops.testing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import ops
from ops import testing
from test_proxy_charm import MODEL, container, proxy_relation, proxy_secret

SCHEMAS = Path(__file__).resolve().parents[4] / "interfaces"
PROXY_SERVICE = "pulsar-proxy-k8s.pulsar.svc.cluster.local"
CLIENT_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwcm94eS0zLXJlbGF0aW9uLTcifQ.c2ln"
REQUEST = {"namespace": "shop/orders", "requested-secrets": '["username", "token"]'}


def schema(interface: str, name: str) -> dict:
    return json.loads((SCHEMAS / interface / "v0" / f"{name}.json").read_text())


def client_relation(data: dict[str, str] | None = None, app: str = "shop") -> testing.Relation:
    return testing.Relation(
        "pulsar", remote_app_name=app, remote_app_data=dict(REQUEST if data is None else data)
    )


def broker_client_secret(role: str = "proxy-3-relation-7") -> testing.Secret:
    return testing.Secret(tracked_content={"username": role, "token": CLIENT_TOKEN})


def answers(client: testing.Relation, secret: testing.Secret | None = None, **entry: Any) -> str:
    value: dict[str, Any] = {"namespace": "shop/orders"}
    if secret is not None:
        value["secret-user"] = secret.id
    value.update(entry)
    return json.dumps({str(client.id): value})


def relay_state(
    tmp_path: Path,
    client: testing.Relation,
    *,
    answer: str | None = None,
    extra_secrets: tuple[testing.Secret, ...] = (),
    related: bool = True,
    leader: bool = True,
) -> testing.State:
    offer_secret = proxy_secret()
    relations: list[testing.RelationBase] = [testing.PeerRelation("cluster"), client]
    if related:
        brokers = proxy_relation(offer_secret)
        if answer is not None:
            brokers = proxy_relation(offer_secret, **{"client-answers": answer})
        relations.append(brokers)
    return testing.State(
        leader=leader,
        model=testing.Model(name=MODEL),
        containers={container(tmp_path, running=True)},
        relations=relations,
        secrets={offer_secret, *extra_secrets},
    )


def brokers_of(out: testing.State) -> testing.Relation:
    return next(r for r in out.relations if getattr(r, "endpoint", "") == "pulsar-proxy")  # type: ignore[return-value]


def forwarded(out: testing.State) -> dict[str, Any]:
    return json.loads(brokers_of(out).local_app_data.get("client-requests", "{}"))


def client_status(out: testing.State, client: testing.Relation) -> list[dict[str, Any]]:
    return json.loads(out.get_relation(client.id).local_app_data.get("status", "[]"))


def test_without_a_pulsar_proxy_relation_the_client_is_told_what_is_awaited(ctx, tmp_path):
    client = client_relation()
    out = ctx.run(ctx.on.relation_changed(client), relay_state(tmp_path, client, related=False))
    data = out.get_relation(client.id).local_app_data
    (status,) = client_status(out, client)
    assert status["code"] == 4001
    assert "pulsar-proxy relation" in status["message"]
    assert "secret-user" not in data
    assert out.unit_status == ops.WaitingStatus("waiting for a pulsar-proxy relation")
    # An unchanged reconcile writes nothing new.
    again = ctx.run(ctx.on.update_status(), out)
    assert again.get_relation(client.id).local_app_data == data


def test_leader_forwards_the_request_and_the_client_waits_for_the_brokers(ctx, tmp_path):
    client = client_relation()
    out = ctx.run(ctx.on.relation_changed(client), relay_state(tmp_path, client))
    assert forwarded(out) == {
        str(client.id): {
            "namespace": "shop/orders",
            "extra-user-roles": "produce,consume",
            "requested-secrets": '["username", "token"]',
        }
    }
    jsonschema.Draft202012Validator(schema("pulsar_proxy", "requirer")).validate(
        {"app": dict(brokers_of(out).local_app_data), "unit": {}}
    )
    (status,) = client_status(out, client)
    assert status["code"] == 4001
    assert "secret-user" not in out.get_relation(client.id).local_app_data


def test_the_brokers_answer_reaches_the_client_with_the_proxy_urls(ctx, tmp_path):
    client = client_relation()
    token_secret = broker_client_secret()
    state = relay_state(
        tmp_path, client, answer=answers(client, token_secret), extra_secrets=(token_secret,)
    )
    out = ctx.run(ctx.on.relation_changed(client), state)
    data = out.get_relation(client.id).local_app_data
    assert data["broker-service-url"] == f"pulsar://{PROXY_SERVICE}:6650"
    assert data["web-service-url"] == f"http://{PROXY_SERVICE}:8080"
    assert data["websocket-url"] == f"ws://{PROXY_SERVICE}:8080/ws/v2"
    assert data["endpoints"] == f"{PROXY_SERVICE}:6650"
    assert data["namespace"] == "shop/orders"
    assert "status" not in data
    # The proxy's own secret, granted to the client relation, carries the brokers' token.
    mine = out.get_secret(label=f"pulsar.{client.id}.user.secret")
    assert data["secret-user"] == mine.id
    assert mine.tracked_content == {"username": "proxy-3-relation-7", "token": CLIENT_TOKEN}
    assert mine.remote_grants == {client.id: {"shop"}}
    assert CLIENT_TOKEN not in json.dumps(dict(data))
    jsonschema.Draft202012Validator(schema("pulsar_client", "provider")).validate(
        {"app": dict(data), "unit": {}}
    )
    assert out.unit_status == ops.ActiveStatus("proxy ready (cluster pulsar), 1 client")
    # Nothing changes on the next reconcile.
    again = ctx.run(ctx.on.update_status(), out)
    assert again.get_relation(client.id).local_app_data == data
    assert again.get_secret(id=mine.id).latest_content == mine.latest_content


def test_a_new_token_from_the_brokers_is_republished(ctx, tmp_path):
    client = client_relation()
    token_secret = broker_client_secret()
    state = relay_state(
        tmp_path, client, answer=answers(client, token_secret), extra_secrets=(token_secret,)
    )
    out = ctx.run(ctx.on.relation_changed(client), state)
    rotated = testing.Secret(
        id=token_secret.id,
        tracked_content={"username": "proxy-3-relation-7", "token": CLIENT_TOKEN + "x"},
    )
    secrets = {s for s in out.secrets if s.id != token_secret.id} | {rotated}
    out = ctx.run(
        ctx.on.secret_changed(rotated), testing.State(**{**vars(out), "secrets": secrets})
    )
    mine = out.get_secret(label=f"pulsar.{client.id}.user.secret")
    assert mine.latest_content == {"username": "proxy-3-relation-7", "token": CLIENT_TOKEN + "x"}


def test_a_refusal_from_the_brokers_reaches_the_client(ctx, tmp_path):
    client = client_relation()
    refusal = {"code": 5002, "message": "namespace refused", "resolution": "ask another"}
    out = ctx.run(
        ctx.on.relation_changed(client),
        relay_state(tmp_path, client, answer=answers(client, status=[refusal])),
    )
    assert client_status(out, client) == [refusal]
    assert "secret-user" not in out.get_relation(client.id).local_app_data


def test_an_invalid_request_is_refused_at_the_proxy_and_not_forwarded(ctx, tmp_path):
    client = client_relation({**REQUEST, "namespace": "no-slash"})
    out = ctx.run(ctx.on.relation_changed(client), relay_state(tmp_path, client))
    (status,) = client_status(out, client)
    assert status["code"] == 5002
    assert forwarded(out) == {}


def test_functions_are_refused_at_the_proxy(ctx, tmp_path):
    function = {"name": "f", "className": "x.F", "inputs": ["in"], "py": "def f(): pass"}
    client = client_relation({**REQUEST, "functions": json.dumps([function])})
    out = ctx.run(ctx.on.relation_changed(client), relay_state(tmp_path, client))
    (status,) = client_status(out, client)
    assert status["code"] == 5005
    assert "through the proxy" in status["message"]
    assert forwarded(out) == {}


def test_unreadable_answers_wait_without_a_hook_error(ctx, tmp_path):
    client = client_relation()
    out = ctx.run(
        ctx.on.relation_changed(client), relay_state(tmp_path, client, answer="[not json")
    )
    (status,) = client_status(out, client)
    assert status["code"] == 4001
    assert out.unit_status.name == "active"
    assert "pulsar-proxy relation: client-answers is not JSON" in out.unit_status.message
    # The request is still forwarded.
    assert str(client.id) in forwarded(out)


def test_a_bad_token_secret_is_not_republished(ctx, tmp_path):
    client = client_relation()
    token_secret = testing.Secret(tracked_content={"username": "x y", "token": "t"})
    state = relay_state(
        tmp_path, client, answer=answers(client, token_secret), extra_secrets=(token_secret,)
    )
    out = ctx.run(ctx.on.relation_changed(client), state)
    (status,) = client_status(out, client)
    assert status["code"] == 4001
    assert "username" in status["message"]
    assert "secret-user" not in out.get_relation(client.id).local_app_data


def test_a_removed_client_relation_loses_its_secret_and_its_request(ctx, tmp_path):
    client = client_relation()
    token_secret = broker_client_secret()
    state = relay_state(
        tmp_path, client, answer=answers(client, token_secret), extra_secrets=(token_secret,)
    )
    out = ctx.run(ctx.on.relation_changed(client), state)
    mine = out.get_secret(label=f"pulsar.{client.id}.user.secret")
    broken = ctx.run(ctx.on.relation_broken(out.get_relation(client.id)), out)
    assert all(s.id != mine.id for s in broken.secrets)
    assert forwarded(broken) == {}


def test_non_leader_relays_nothing(ctx, tmp_path):
    client = client_relation()
    out = ctx.run(ctx.on.relation_changed(client), relay_state(tmp_path, client, leader=False))
    assert out.get_relation(client.id).local_app_data == {}
    assert "client-requests" not in brokers_of(out).local_app_data


def test_a_transient_status_next_to_the_answer_is_relayed_with_it(ctx, tmp_path):
    client = client_relation()
    token_secret = broker_client_secret()
    retry = {"code": 4001, "message": "not served yet: boom", "resolution": "none"}
    state = relay_state(
        tmp_path,
        client,
        answer=answers(client, token_secret, status=[retry]),
        extra_secrets=(token_secret,),
    )
    out = ctx.run(ctx.on.relation_changed(client), state)
    data = out.get_relation(client.id).local_app_data
    assert "secret-user" in data
    assert client_status(out, client) == [retry]
    assert "boom" not in out.unit_status.message


def test_an_answer_for_another_namespace_is_not_yet_the_clients(ctx, tmp_path):
    client = client_relation()
    token_secret = broker_client_secret()
    state = relay_state(
        tmp_path,
        client,
        answer=answers(client, token_secret, namespace="shop/old"),
        extra_secrets=(token_secret,),
    )
    out = ctx.run(ctx.on.relation_changed(client), state)
    (status,) = client_status(out, client)
    assert status["code"] == 4001
    assert "secret-user" not in out.get_relation(client.id).local_app_data
