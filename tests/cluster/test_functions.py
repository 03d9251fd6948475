"""Pulsar Functions on real processes: the in-broker worker runs a real Python function.

One module-scoped model: the bundle's shape (one broker) with ``functions-worker-enabled``. The
operator deploys a Python function with the ``deploy-function`` action (code inline in the
config dict): it upper-cases each message onto its ``output`` topic and publishes the word count
to the topic named in its ``userConfig``. The tests run in order and share the model:

1. messages produced to the input come out transformed on the output, the word counts on the
   userConfig-named topic, log lines on the log topic; ``function-status`` counts them;
2. a malformed config dict fails the action naming the field, before any call;
3. ``update-function`` with new code changes the output and loses no input message;
4. ``delete-function`` stops it: the worker no longer lists it, new input stays untouched;
5. the test client ``client-a`` declares a function on its relation (config option
   ``function``, its code in a Juju secret granted on the relation: ``function-code-in-secret``):
   the leader deploys it with the relation's role, messages come out transformed;
6. ``client-b`` declares one in client-a's namespace: refused on its relation naming the field,
   nothing deployed; client-a dropping its declaration removes its function.

``slow``: the loss of the (only) broker pod, then a second broker unit and a leader change:
the functions keep running, nothing acknowledged is skipped, the new leader redeploys nothing.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pulsar_admin  # type: ignore[import-not-found]
import pytest
from ops import testing

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BROKER, deploy_bundle
from tests.cluster.rig_juju import Model, RigEnv

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
LEADER = f"{BROKER}/0"
TENANT = "fn"
NAMESPACE = f"{TENANT}/words"
RUN = uuid.uuid4().hex[:6]
INPUT = f"persistent://{NAMESPACE}/in-{RUN}"
OUTPUT = f"persistent://{NAMESPACE}/out-{RUN}"
COUNTS = f"persistent://{NAMESPACE}/counts-{RUN}"
LOGS = f"persistent://{NAMESPACE}/log-{RUN}"
FUNCTION = f"{NAMESPACE}/wordcount"
WEB_URL = workload.SERVICE_URL.replace("pulsar://", "http://").replace(":6650", ":8080")
CLIENT_A = "client-a"
CLIENT_B = "client-b"
NAMESPACE_A = "fn-a/app"
NAMESPACE_B = "fn-b/app"
CLIENT_FUNCTION = f"{NAMESPACE_A}/upper"
UPPER_CODE = """\
from pulsar import Function


class Upper(Function):
    def process(self, input, context):
        return str(input).upper()
"""

CODE_V1 = """\
from pulsar import Function


class WordCount(Function):
    def process(self, input, context):
        text = str(input)
        words = len(text.split())
        context.get_logger().info("counted %d words", words)
        context.publish(context.get_user_config_value("count-topic"), str(words))
        return text.upper()
"""
CODE_V2 = CODE_V1.replace("return text.upper()", 'return "v2 " + text.upper()')


def function_config(code: str) -> str:
    return json.dumps(
        {
            "tenant": TENANT,
            "namespace": "words",
            "name": "wordcount",
            "className": "wordcount.WordCount",
            "py": code,
            "inputs": [INPUT],
            "output": OUTPUT,
            "logTopic": LOGS,
            "userConfig": {"count-topic": COUNTS},
        }
    )


def worker_ready(model: Model) -> Callable[[], bool]:
    def check() -> bool:
        units = model.units(BROKER)
        return all(
            u.unit_status.name == "active"
            and "functions worker starting" not in u.unit_status.message
            for u in units
        )

    return check


def deploy(model: Model, config: str) -> dict[str, Any]:
    """``deploy-function``; the worker answers 503 "Leader not yet ready. Please retry" for a
    moment after its leader is elected (the exclusive metadata producer): retried, bounded."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return action(model, "deploy-function", config=config)
        except testing.ActionFailed as exc:
            if "not yet ready" not in str(exc.message) or time.monotonic() > deadline:
                raise
        time.sleep(2)


def action(model: Model, name: str, **params: Any) -> dict[str, Any]:
    return model.run_action(LEADER, name, params)


def action_failure(model: Model, name: str, **params: Any) -> str:
    with pytest.raises(testing.ActionFailed) as failed:
        model.run_action(LEADER, name, params)
    return str(failed.value.message)


def wait_running(model: Model, timeout: float = 180.0) -> dict[str, Any]:
    """Poll ``function-status`` until an instance runs (the worker starts a Python process)."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = action(model, "function-status", function=FUNCTION)
        if status.get("running") == "1":
            return status
        time.sleep(2)
    raise AssertionError(f"function not running after {timeout}s: {status}")


def produce(payloads: list[bytes]) -> None:
    c = workload.client()
    try:
        producer = c.create_producer(INPUT)
        for p in payloads:
            producer.send(p)
    finally:
        c.close()


@pytest.fixture(scope="module")
def functions_model(rig_env: RigEnv) -> Iterator[Model]:
    from pulsar_client_test_charm import PulsarClientTestCharm  # type: ignore[import-not-found]

    from tests.cluster.conftest import new_model

    model = new_model(rig_env)
    try:
        deploy_bundle(model, config={BROKER: {"functions-worker-enabled": True}})
        model.deploy(CLIENT_A, PulsarClientTestCharm, config={"namespace": NAMESPACE_A})
        model.deploy(CLIENT_B, PulsarClientTestCharm, config={"namespace": NAMESPACE_B})
        model.integrate(f"{BROKER}:pulsar", f"{CLIENT_A}:pulsar")
        model.integrate(f"{BROKER}:pulsar", f"{CLIENT_B}:pulsar")
        record("functions.bundle_settle_s", model.settle(timeout=SETTLE))
        # The worker elects its leader after the broker is ready; its view check wakes the
        # charm, which then drops "functions worker starting" from its status.
        record("functions.worker_ready_s", model.settle(until=worker_ready(model), timeout=300))
        workload.Operator.of(model)
        action(model, "create-tenant", tenant=TENANT)
        action(model, "create-namespace", namespace=NAMESPACE)
        yield model
    except Exception:
        print(f"\n===== rig report (functions) =====\n{model.report()}")
        raise
    finally:
        model.teardown()


def test_deployed_function_transforms_counts_and_logs(functions_model: Model):
    model = functions_model
    started = time.monotonic()
    result = deploy(model, function_config(CODE_V1))
    assert result["function"] == FUNCTION, result
    wait_running(model)
    record("functions.deploy_to_running_s", time.monotonic() - started)
    payloads = [f"message {i} of {RUN}".encode() for i in range(10)]
    produce(payloads)
    out = workload.read_all(OUTPUT, expected=len(payloads), idle_ms=60_000)
    assert out == [p.upper() for p in payloads], out
    counts = workload.read_all(COUNTS, expected=len(payloads), idle_ms=30_000)
    assert counts == [b"4"] * len(payloads), counts
    logs = workload.read_all(LOGS, idle_ms=10_000)
    assert any(b"counted 4 words" in line for line in logs), logs[:5]
    status = action(model, "function-status", function=FUNCTION)
    assert int(status["processed"]) >= len(payloads), status
    assert status["user-exceptions"] == "0", status
    listed = action(model, "list-functions", namespace=NAMESPACE)
    assert json.loads(listed["worker"]) == ["wordcount"], listed
    managed = json.loads(listed["functions"])
    assert managed[FUNCTION]["owner"] == "operator" and managed[FUNCTION]["deployed"], managed


def test_malformed_config_fails_naming_the_field(functions_model: Model):
    model = functions_model
    bad = json.loads(function_config(CODE_V1))
    bad["parallelism"] = "two"
    assert action_failure(model, "deploy-function", config=json.dumps(bad)).startswith(
        "parallelism:"
    )
    broken = json.loads(function_config("def broken(:\n"))
    assert action_failure(model, "deploy-function", config=json.dumps(broken)).startswith("py:")
    assert action_failure(model, "deploy-function", config="{not: [yaml").startswith("config:")
    again = action_failure(model, "deploy-function", config=function_config(CODE_V1))
    assert "already declared" in again, again


def test_update_changes_output_without_losing_input(functions_model: Model):
    model = functions_model
    sent = [f"before update {i}".encode() for i in range(5)]
    produce(sent)
    started = time.monotonic()
    action(model, "update-function", config=function_config(CODE_V2))
    # Keep producing while the worker swaps the instance: the subscription is durable.
    for i in range(1000):
        probe = f"during update {i}".encode()
        produce([probe])
        sent.append(probe)
        if any(o.startswith(b"v2 ") for o in workload.read_all(OUTPUT, idle_ms=3_000)):
            break
        status = action(model, "function-status", function=FUNCTION)
        assert time.monotonic() < started + 180, f"no output of the new code: {status}"
    record("functions.update_to_v2_output_s", time.monotonic() - started)
    after = [f"after update {i}".encode() for i in range(5)]
    produce(after)
    sent += after
    out = workload.read_all(OUTPUT, idle_ms=30_000)
    transformed = {o.removeprefix(b"v2 ") for o in out}
    missing = [p for p in sent if p.upper() not in transformed]
    assert not missing, f"input lost across the update: {missing}"
    assert all(b"v2 " + p.upper() in out for p in after), out[-5:]


def test_delete_stops_the_function(functions_model: Model):
    model = functions_model
    action(model, "delete-function", function=FUNCTION)
    listed = action(model, "list-functions", namespace=NAMESPACE)
    assert json.loads(listed["worker"]) == [], listed
    assert json.loads(listed["functions"]) == {}, listed
    already = len(workload.read_all(OUTPUT, idle_ms=5_000))
    produce([b"after delete"])
    time.sleep(10)
    assert len(workload.read_all(OUTPUT, idle_ms=5_000)) == already


def client_function(tenant: str, namespace: str) -> str:
    return json.dumps(
        {
            "tenant": tenant,
            "namespace": namespace,
            "name": "upper",
            "className": "upper.Upper",
            "py": UPPER_CODE,
            "inputs": ["in"],
            "output": "out",
        }
    )


def worker_list(model: Model, namespace: str) -> list[str]:
    return json.loads(action(model, "list-functions", namespace=namespace)["worker"])


def worker_has(namespace: str) -> list[str] | None:
    """The worker's list read directly (no hook: usable while the model settles)."""
    body = workload.http_get(f"{WEB_URL}/admin/v3/functions/{namespace}")
    return None if body is None else json.loads(body)


def declare_client_a_function(model: Model) -> None:
    """client-a declares ``upper``, its code in a Juju secret granted on the relation."""
    model.config(
        CLIENT_A, **{"function": client_function("fn-a", "app"), "function-code-in-secret": True}
    )
    model.settle(until=lambda: "upper" in (worker_has(NAMESPACE_A) or []), timeout=300)
    (rel,) = model.relations_of(CLIENT_A, "pulsar")
    (declared,) = json.loads(model.app_data(rel.id, CLIENT_A)["functions"])
    assert "py" not in declared, declared
    assert model.secret_content(declared["code-secret"]) == {"code": UPPER_CODE}


def withdraw_client_a_function(model: Model) -> None:
    model.config(CLIENT_A, **{"function": "", "function-code-in-secret": False})
    model.settle(until=lambda: worker_has(NAMESPACE_A) == [], timeout=120)


def test_a_client_relation_deploys_a_function_with_its_role(functions_model: Model):
    model = functions_model
    declare_client_a_function(model)
    managed = json.loads(action(model, "list-functions")["functions"])
    (rel,) = model.relations_of(CLIENT_A, "pulsar")
    assert managed[CLIENT_FUNCTION]["owner"] == f"relation-{rel.id}", managed
    deadline = time.monotonic() + 180
    while action(model, "function-status", function=CLIENT_FUNCTION).get("running") != "1":
        assert time.monotonic() < deadline, "the client's function is not running"
        time.sleep(2)
    c = workload.client()
    try:
        producer = c.create_producer(f"persistent://{NAMESPACE_A}/in")
        for i in range(3):
            producer.send(f"from client a {i}".encode())
    finally:
        c.close()
    out = workload.read_all(f"persistent://{NAMESPACE_A}/out", expected=3, idle_ms=60_000)
    assert out == [f"FROM CLIENT A {i}".encode() for i in range(3)], out


def test_a_client_cannot_deploy_into_another_namespace(functions_model: Model):
    model = functions_model
    model.config(CLIENT_B, function=client_function("fn-a", "app"))
    (rel,) = model.relations_of(CLIENT_B, "pulsar")

    def refused() -> bool:
        (unit,) = model.units(CLIENT_B)
        status = model.app_data(rel.id, BROKER).get("status", "")
        return "functions: [0].namespace" in status and unit.unit_status.name == "blocked"

    model.settle(until=refused, timeout=120)
    status = json.loads(model.app_data(rel.id, BROKER)["status"])[0]
    assert status["code"] == 5005, status
    assert "fn-a/app is not this relation's namespace (fn-b/app)" in status["message"], status
    (unit,) = model.units(CLIENT_B)
    assert unit.unit_status.name == "blocked", unit.unit_status
    assert worker_list(model, NAMESPACE_A) == ["upper"]  # client-a's only
    assert worker_list(model, NAMESPACE_B) == []
    # client-a withdraws its declaration: the leader removes the function.
    withdraw_client_a_function(model)


@pytest.mark.extended
def test_a_broker_pod_loss_leaves_the_function_running_nothing_skipped(functions_model: Model):
    """At-least-once across the loss of the (only) broker pod: the worker brings the function
    back from its metadata, the charm redeploys nothing, every acknowledged input comes out."""
    model = functions_model
    name = "survivor"
    source = f"persistent://{NAMESPACE}/survivor-in-{RUN}"
    sink = f"persistent://{NAMESPACE}/survivor-out-{RUN}"
    config = {
        "tenant": TENANT,
        "namespace": "words",
        "name": name,
        "className": "upper.Upper",
        "py": UPPER_CODE,
        "inputs": [source],
        "output": sink,
    }
    digest = deploy(model, json.dumps(config))["digest"]
    key = f"{NAMESPACE}/{name}"
    deadline = time.monotonic() + 180
    while action(model, "function-status", function=key).get("running") != "1":
        assert time.monotonic() < deadline, "not running"
        time.sleep(2)
    producer = workload.BackgroundProducer(topic=source, interval=0.05).start()
    try:
        producer.wait_acks(20)
        lost = time.monotonic()
        model.lose_pod(LEADER)
        model.settle(until=worker_ready(model), timeout=600)
        record("functions.pod_loss_to_worker_ready_s", time.monotonic() - lost)
        producer.wait_acks(len(producer.acked) + 20, timeout=300)
    finally:
        producer.stop()
    deadline = time.monotonic() + 180
    while action(model, "function-status", function=key).get("running") != "1":
        assert time.monotonic() < deadline, "the function did not come back"
        time.sleep(2)
    out = set(workload.read_all(sink, idle_ms=30_000))
    skipped = [p for p in producer.acked if p.upper() not in out]
    assert not skipped, f"{len(skipped)} of {len(producer.acked)} inputs skipped: {skipped[:3]}"
    managed = json.loads(action(model, "list-functions")["functions"])
    assert managed[key]["digest"] == digest, managed  # the declaration record is unchanged


def record_worker_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record every functions-worker call the charms make from now on (they run in-process)."""
    calls: list[tuple[str, str]] = []
    for name in ("list_functions", "create_function", "update_function", "delete_function"):
        original = getattr(pulsar_admin.PulsarAdmin, name)

        def recorded(self: Any, target: Any, *args: Any, _name=name, _original=original) -> Any:
            calls.append((_name, str(getattr(target, "key", target))))
            return _original(self, target, *args)

        monkeypatch.setattr(pulsar_admin.PulsarAdmin, name, recorded)
    return calls


def wait_unit_running(model: Model, unit: str, key: str, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = model.run_action(unit, "function-status", {"function": key})
        if status.get("running") == "1":
            return status
        assert time.monotonic() < deadline, f"{key} not running on {unit}'s view: {status}"
        time.sleep(2)


@pytest.mark.extended
def test_a_leader_change_leaves_the_functions_running_nothing_redeployed(
    functions_model: Model, monkeypatch: pytest.MonkeyPatch
):
    """A second broker, then ``pulsar-k8s/1`` becomes the leader: the operator's function and
    client-a's (code in a secret the new leader reads) keep running, every acknowledged input
    comes out, and the new leader's reconcile lists the worker but creates, updates and
    deletes nothing; ``function-status`` answers on the new leader."""
    model = functions_model
    new_leader = f"{BROKER}/1"
    name = "relay"
    source = f"persistent://{NAMESPACE}/relay-in-{RUN}"
    sink = f"persistent://{NAMESPACE}/relay-out-{RUN}"
    config = {
        "tenant": TENANT,
        "namespace": "words",
        "name": name,
        "className": "upper.Upper",
        "py": UPPER_CODE,
        "inputs": [source],
        "output": sink,
    }
    key = f"{NAMESPACE}/{name}"
    deploy(model, json.dumps(config))
    wait_unit_running(model, LEADER, key)
    declare_client_a_function(model)
    wait_unit_running(model, LEADER, CLIENT_FUNCTION)
    before = json.loads(action(model, "list-functions")["functions"])
    calls = record_worker_writes(monkeypatch)
    producer = workload.BackgroundProducer(topic=source, interval=0.05).start()
    try:
        producer.wait_acks(20)
        started = time.monotonic()
        model.add_unit(BROKER)
        model.settle(until=worker_ready(model), timeout=600)
        record("functions.second_broker_worker_ready_s", time.monotonic() - started)
        assert len(model.units(BROKER)) == 2
        producer.wait_acks(len(producer.acked) + 20, timeout=120)
        joined = [c for c in calls if c[0] != "list_functions"]
        assert joined == [], f"a joining broker made the leader rewrite functions: {joined}"
        calls.clear()
        model.set_leader(new_leader)
        model.settle(until=worker_ready(model), timeout=300)
        producer.wait_acks(len(producer.acked) + 20, timeout=120)
    finally:
        producer.stop()
    leader_runs = model.events(unit=new_leader, kind="leader_elected")
    assert leader_runs, "the new leader never ran leader-elected"
    listed = {c[1] for c in calls if c[0] == "list_functions"}
    assert {NAMESPACE, NAMESPACE_A} <= listed, calls  # the new leader did reconcile
    writes = [c for c in calls if c[0] != "list_functions"]
    assert writes == [], f"the new leader rewrote functions: {writes}"
    wait_unit_running(model, new_leader, key)
    status = wait_unit_running(model, new_leader, CLIENT_FUNCTION)
    assert status["instances"] == "1", status
    after = json.loads(model.run_action(new_leader, "list-functions", {})["functions"])
    assert {k: (v["owner"], v["digest"]) for k, v in after.items()} == {
        k: (v["owner"], v["digest"]) for k, v in before.items()
    }, (before, after)
    out = set(workload.read_all(sink, idle_ms=30_000))
    skipped = [p for p in producer.acked if p.upper() not in out]
    assert not skipped, f"{len(skipped)} of {len(producer.acked)} inputs skipped: {skipped[:3]}"
    record("functions.leader_change_inputs_acked", len(producer.acked))
