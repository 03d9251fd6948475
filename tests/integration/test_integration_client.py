"""A client application on the pulsar relation, on a real Juju (jubilant).

Deploys the bundle's charms plus the test client ``pulsar-client-test`` (in
``tests/charms/pulsar-client-test``, packed with ``charmcraft pack``), integrates
``pulsar-client-test:pulsar`` with ``pulsar-k8s:pulsar`` and, in order on one model:

1. produces then consumes through the client's actions (counts and payloads checked);
2. a second client application (the same charm under another name, another namespace) is
   refused, with an authorization message, when it consumes from the first one's namespace;
3. a second relation of the first client (its ``pulsar-second`` endpoint) gets a second
   namespace with its own role; the actions move messages there; removing it leaves the first;
4. removes and re-adds the relation: produce/consume works again (new role, new token);
5. scales the brokers to 2: produce/consume still works.

Skipped, with the reason, without a Juju controller (``conftest.py``).
"""

from __future__ import annotations

import os
import pathlib
import re

import jubilant
import pytest

from tools.repo import ROOT, load_yaml

ZOOKEEPER = "pulsar-zookeeper-k8s"
BOOKKEEPER = "bookkeeper-k8s"
BROKER = "pulsar-k8s"
SUITE = (ZOOKEEPER, BOOKKEEPER, BROKER)
CLIENT = "pulsar-client-test"
OTHER = "pulsar-client-other"
CLIENT_NAMESPACE = "itest/orders"
SECOND_NAMESPACE = "itest/audit"
OTHER_NAMESPACE = f"{OTHER}/default"  # the test charm's default when `namespace` is empty
CLIENT_DIR = ROOT / "tests" / "charms" / "pulsar-client-test"
CLIENT_CHARM_VAR = "PULSAR_CLIENT_TEST_CHARM"


def client_charm_file() -> pathlib.Path:
    """$PULSAR_CLIENT_TEST_CHARM, else the one file `charmcraft pack` left in its directory."""
    if os.environ.get(CLIENT_CHARM_VAR):
        path = pathlib.Path(os.environ[CLIENT_CHARM_VAR]).expanduser().resolve()
        if not path.is_file():
            pytest.fail(f"${CLIENT_CHARM_VAR}={path}: no such charm file")
        return path
    candidates = sorted(CLIENT_DIR.glob("pulsar-client-test_*.charm"))
    if len(candidates) != 1:
        pytest.fail(
            f"set ${CLIENT_CHARM_VAR} to the packed test client, or run `charmcraft pack` in "
            f"{CLIENT_DIR.relative_to(ROOT)} so that exactly one pulsar-client-test_*.charm is "
            f"there (found {[c.name for c in candidates]})"
        )
    return candidates[0]


def settled(status: jubilant.Status, *apps: str) -> bool:
    return jubilant.all_active(status, *apps) and jubilant.all_agents_idle(status, *apps)


def wait_active(juju: jubilant.Juju, *clients: str) -> jubilant.Status:
    apps = (*SUITE, *clients)
    return juju.wait(lambda s: settled(s, *apps), error=jubilant.any_error, delay=5, successes=5)


def leader(status: jubilant.Status, app: str) -> str:
    return next(name for name, unit in status.apps[app].units.items() if unit.leader)


def client_message(status: jubilant.Status, app: str) -> str:
    return status.apps[app].units[leader(status, app)].workload_status.message


def produce(juju: jubilant.Juju, unit: str, count: int, prefix: str, topic: str = "test") -> dict:
    task = juju.run(unit, "produce", {"topic": topic, "count": count, "payload-prefix": prefix})
    assert int(task.results["count"]) == count, task.results
    return task.results


def consume(juju: jubilant.Juju, unit: str, count: int, topic: str = "test") -> dict:
    task = juju.run(unit, "consume", {"topic": topic, "count": count, "timeout-seconds": 60})
    return task.results


def produce_then_consume(juju: jubilant.Juju, unit: str, prefix: str, count: int = 10) -> None:
    produced = produce(juju, unit, count, prefix)
    assert produced["topic"] == f"persistent://{CLIENT_NAMESPACE}/test", produced
    consumed = consume(juju, unit, count)
    assert int(consumed["count"]) == count, consumed
    assert consumed["first-payload"] == f"{prefix}-0", consumed
    assert consumed["last-payload"] == f"{prefix}-{count - 1}", consumed


def test_deploy_bundle_and_client(
    juju: jubilant.Juju, charm_files: dict[str, pathlib.Path], image_resources: dict[str, str]
):
    client_charm = client_charm_file()
    apps = load_yaml(ROOT / "bundle.yaml")["applications"]
    for app in SUITE:
        spec = apps[app]
        juju.deploy(
            charm_files[app],
            app,
            num_units=spec.get("scale", spec.get("num_units", 1)),
            resources=image_resources,
            storage={k: str(v) for k, v in (spec.get("storage") or {}).items()} or None,
            trust=bool(spec.get("trust", False)),
        )
    for first, second in load_yaml(ROOT / "bundle.yaml")["relations"]:
        juju.integrate(first, second)
    juju.deploy(client_charm, CLIENT, config={"namespace": CLIENT_NAMESPACE})
    juju.wait(
        lambda s: "waiting for pulsar relation" in client_message(s, CLIENT),
        error=jubilant.any_error,
        delay=5,
    )
    juju.integrate(f"{CLIENT}:pulsar", f"{BROKER}:pulsar")
    status = wait_active(juju, CLIENT)
    message = client_message(status, CLIENT)
    assert re.fullmatch(rf"namespace {CLIENT_NAMESPACE} ready \(role relation-\d+\)", message)


def test_produce_then_consume(juju: jubilant.Juju):
    unit = leader(juju.status(), CLIENT)
    produce_then_consume(juju, unit, "first")


def test_other_application_cannot_consume_first_namespace(juju: jubilant.Juju):
    juju.deploy(client_charm_file(), OTHER)
    juju.integrate(f"{OTHER}:pulsar", f"{BROKER}:pulsar")
    status = wait_active(juju, CLIENT, OTHER)
    assert client_message(status, OTHER).startswith(f"namespace {OTHER_NAMESPACE} ready")
    other = leader(status, OTHER)
    # Its own namespace works...
    produce(juju, other, 2, "other")
    assert int(consume(juju, other, 2)["count"]) == 2
    # ...the first application's namespace does not.
    first_topic = f"persistent://{CLIENT_NAMESPACE}/test"
    produce(juju, leader(status, CLIENT), 1, "private")
    for action, params in (
        ("consume", {"topic": first_topic, "count": 1, "timeout-seconds": 30}),
        ("produce", {"topic": first_topic, "count": 1}),
    ):
        with pytest.raises(jubilant.TaskError) as failure:
            juju.run(other, action, params)
        message = failure.value.task.message
        assert "not authorized" in message, (action, message)
        assert "Traceback" not in message + failure.value.task.stderr
    # The refused attempt consumed nothing: the owner still gets its message.
    consumed = consume(juju, leader(status, CLIENT), 1)
    assert consumed["first-payload"] == "private-0", consumed


def test_second_relation_gives_a_second_namespace(juju: jubilant.Juju):
    juju.config(CLIENT, {"second-namespace": SECOND_NAMESPACE})
    juju.integrate(f"{CLIENT}:pulsar-second", f"{BROKER}:pulsar")
    status = wait_active(juju, CLIENT, OTHER)
    message = client_message(status, CLIENT)
    roles = re.fullmatch(
        rf"namespace {CLIENT_NAMESPACE} ready \(role (relation-\d+)\); "
        rf"namespace {SECOND_NAMESPACE} ready \(role (relation-\d+)\)",
        message,
    )
    assert roles and roles[1] != roles[2], message
    unit = leader(status, CLIENT)
    params = {"count": 2, "payload-prefix": "audit", "endpoint": "pulsar-second"}
    sent = juju.run(unit, "produce", params).results
    assert sent["topic"] == f"persistent://{SECOND_NAMESPACE}/test", sent
    got = juju.run(unit, "consume", {"count": 2, "endpoint": "pulsar-second"}).results
    assert (int(got["count"]), got["first-payload"]) == (2, "audit-0"), got
    produce_then_consume(juju, unit, "beside-audit", count=2)

    juju.remove_relation(f"{CLIENT}:pulsar-second", f"{BROKER}:pulsar")
    status = juju.wait(
        lambda s: SECOND_NAMESPACE not in client_message(s, CLIENT) and settled(s, CLIENT),
        error=jubilant.any_error,
        delay=5,
    )
    assert client_message(status, CLIENT).startswith(f"namespace {CLIENT_NAMESPACE} ready")


def test_remove_and_readd_relation(juju: jubilant.Juju):
    juju.remove_relation(f"{CLIENT}:pulsar", f"{BROKER}:pulsar")
    juju.wait(
        lambda s: "waiting for pulsar relation" in client_message(s, CLIENT),
        error=jubilant.any_error,
        delay=5,
    )
    unit = leader(juju.status(), CLIENT)
    with pytest.raises(jubilant.TaskError) as failure:
        juju.run(unit, "produce", {"count": 1})
    assert "not connected" in failure.value.task.message
    juju.integrate(f"{CLIENT}:pulsar", f"{BROKER}:pulsar")
    wait_active(juju, CLIENT, OTHER)
    produce_then_consume(juju, unit, "again")


def test_scale_brokers_to_two(juju: jubilant.Juju):
    juju.add_unit(BROKER, num_units=1)
    status = juju.wait(
        lambda s: len(s.apps[BROKER].units) == 2 and settled(s, *SUITE, CLIENT, OTHER),
        error=jubilant.any_error,
        delay=5,
        successes=5,
    )
    assert client_message(status, CLIENT).startswith(f"namespace {CLIENT_NAMESPACE} ready")
    produce_then_consume(juju, leader(status, CLIENT), "scaled")
