"""Signing-key rotation on real brokers, under a producer, with two client applications (slow).

The bundle with two brokers and the test client charm twice (``client-a`` on ``team-a/orders``,
``client-b`` on its default namespace), as in ``test_security.py``. Then:

- a ``BackgroundProducer`` on client-a's namespace, authenticated with the token client-a holds
  (the revision of its relation secret its unit tracks, read again on every reconnection), and a
  probe thread that opens a NEW connection for each client every second with the token that
  client holds, recording every refusal;
- ``rotate-signing-key`` on the leader; a second run while the roll is under way changes nothing;
- the roll settles with no update-status needed (Juju's 300 s interval): the brokers restart one
  at a time, the leader drops the old key and re-mints both relations' tokens; each client unit
  receives secret-changed and tracks the new revision.

Asserted: 0 acknowledged messages lost; both clients' actions produce and consume with their new
tokens; the old tokens (and the old admin token) are refused by the brokers afterwards; the new
tokens verify with the new key only. Pulsar 4.0 verifies against one key per broker (see
docs/how-to/rotate-credentials.md), so the probes' refusals are MEASURED, not asserted away:
figures ``rotation.*``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.cluster import workload
from tests.cluster.figures import record
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER, deploy_bundle
from tests.cluster.rig_juju import Model, RigEnv, RigRelation
from tests.cluster.test_security import (
    apps_active,
    client_relation,
    produce_consume,
    produce_direct,
)

pytestmark = pytest.mark.extended

SETTLE = float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900"))
CLIENT_A = "client-a"
CLIENT_B = "client-b"
NAMESPACE_A = "team-a/orders"
NAMESPACE_B = f"{CLIENT_B}/default"
PROBE_PERIOD_S = 1.0


def held_token(model: Model, rel: RigRelation, unit: str) -> str:
    """The token ``unit`` holds: the revision of its relation secret it tracks."""
    secret = model.secrets[model.app_data(rel.id, BROKER)["secret-user"]]
    return secret.content(secret.tracked.get(unit) or secret.latest)["token"]


def internal(model: Model) -> dict[str, str]:
    return model.secret("pulsar-internal", owner=BROKER).content()


def broker_auth_refusals(model: Model) -> list[str]:
    """Lines in which a broker refused a token (bad signature) since the model started."""
    logs = "\n".join(u.pod.service_logs(20000) for u in model.units(BROKER))
    return [
        line
        for line in logs.splitlines()
        if "ServerCnx" in line and "signature does not match" in line
    ]


@dataclass
class Probes:
    """Every second, a new connection per client with the token that client holds."""

    model: Model
    targets: dict[str, tuple[RigRelation, str, str]]
    """client app -> (relation, its unit, topic)."""
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)
    switched: dict[str, float] = field(default_factory=dict)
    """broker unit -> when it first reported the new key (``new_id``, set by the test)."""
    new_id: str = ""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rotation-probes", daemon=True)

    def start(self) -> Probes:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._note_switches()
            for app, (rel, unit, topic) in self.targets.items():
                try:
                    token = held_token(self.model, rel, unit)
                except (KeyError, RuntimeError) as exc:  # a record changing under us
                    self.outcomes.append((time.monotonic(), app, f"no token: {exc!r}"))
                    continue
                outcome = produce_direct(token, topic, b"probe", timeout_s=5)
                self.outcomes.append((time.monotonic(), app, outcome))
            self._stop.wait(PROBE_PERIOD_S)

    def _note_switches(self) -> None:
        if not self.new_id:
            return
        with contextlib.suppress(KeyError, RuntimeError):
            peer = self.model.peer_relation(BROKER)
            for unit in list(peer.unit_data):
                data = self.model.unit_data(peer.id, unit)
                if data.get("signing-key-id") == self.new_id and unit not in self.switched:
                    self.switched[unit] = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def failed(self) -> list[tuple[float, str, str]]:
        return [o for o in self.outcomes if o[2] != "ok"]

    def auth_refused(self) -> list[tuple[float, str, str]]:
        """Refused for the token (not for a broker being unreachable or restarting)."""
        return [o for o in self.failed() if "uthentication" in o[2] or "uthoriz" in o[2]]


@pytest.fixture(scope="module")
def two_clients(rig_env: RigEnv) -> Iterator[Model]:
    from pulsar_client_test_charm import PulsarClientTestCharm  # type: ignore[import-not-found]

    from tests.cluster.conftest import new_model

    model = new_model(rig_env)
    try:
        deploy_bundle(model, brokers=2)
        model.deploy(CLIENT_A, PulsarClientTestCharm, config={"namespace": NAMESPACE_A})
        model.deploy(CLIENT_B, PulsarClientTestCharm)
        model.settle(until=apps_active(model, ZOOKEEPER, BOOKKEEPER, BROKER), timeout=SETTLE)
        workload.Operator.of(model)
        model.integrate(f"{BROKER}:pulsar", f"{CLIENT_A}:pulsar")
        model.integrate(f"{BROKER}:pulsar", f"{CLIENT_B}:pulsar")
        model.settle(timeout=300)
        yield model
    except Exception:
        print(f"\n===== rig report (key rotation) =====\n{model.report()}")
        raise
    finally:
        model.teardown()


def test_signing_key_rotation_under_a_producer_with_two_clients(two_clients: Model):
    from pulsar_tokens import key_id, token_role  # type: ignore[import-not-found]

    model = two_clients
    rel_a, rel_b = client_relation(model, CLIENT_A), client_relation(model, CLIENT_B)
    unit_a, unit_b = f"{CLIENT_A}/0", f"{CLIENT_B}/0"
    old_a, old_b = held_token(model, rel_a, unit_a), held_token(model, rel_b, unit_b)
    old_internal = internal(model)
    topic_a = f"persistent://{NAMESPACE_A}/rotation-{uuid.uuid4().hex[:6]}"
    topic_b = f"persistent://{NAMESPACE_B}/rotation-{uuid.uuid4().hex[:6]}"
    assert produce_direct(old_a, topic_a, b"before") == "ok"
    assert produce_direct(old_b, topic_b, b"before") == "ok"

    producer = workload.BackgroundProducer(
        topic=f"persistent://{NAMESPACE_A}/rotation-producer-{uuid.uuid4().hex[:6]}",
        token=lambda: held_token(model, rel_a, unit_a),
    ).start()
    probes = Probes(
        model, {CLIENT_A: (rel_a, unit_a, topic_a), CLIENT_B: (rel_b, unit_b, topic_b)}
    )
    try:
        producer.wait_acks(50)
        probes.start()
        model.run_for(5)

        leader = model.app(BROKER).leader
        assert leader is not None
        started = time.monotonic()
        results = model.run_action(leader.name, "rotate-signing-key")
        assert results["status"] == "started", results
        new_id = results["key-id"]
        probes.new_id = new_id
        assert results["previous-key-id"] == key_id(old_internal["signing-key"])
        again = model.run_action(leader.name, "rotate-signing-key")
        assert again["status"] in ("in-progress", "started"), again
        if again["status"] == "in-progress":
            assert again["key-id"] == new_id, "a re-run must not start another rotation"

        # The roll: every broker restarts once with the new key, the leader drops the old one.
        model.settle(
            until=lambda: "previous-signing-key" not in internal(model) and model.all_active(),
            timeout=600,
        )
        rolled = time.monotonic()
        content = internal(model)
        assert key_id(content["signing-key"]) == new_id
        # Both clients received the re-minted token through their relation's secret.
        model.settle(
            until=lambda: (
                held_token(model, rel_a, unit_a) != old_a
                and held_token(model, rel_b, unit_b) != old_b
            ),
            timeout=120,
        )
        clients_updated = time.monotonic()
        model.run_for(10)
    finally:
        probes.stop()
        producer.stop()

    # The Python client reports a refused token as a timeout: the brokers' logs say why.
    auth_lines = broker_auth_refusals(model)
    new_a, new_b = held_token(model, rel_a, unit_a), held_token(model, rel_b, unit_b)
    for role_token, rel in ((new_a, rel_a), (new_b, rel_b)):
        assert token_role(content["signing-key"], role_token) == f"relation-{rel.id}"
        assert token_role(old_internal["signing-key"], role_token) is None

    # Every broker restarted once for the key (the lock: one at a time) and serves with it.
    for unit in model.units(BROKER):
        peer = model.peer_relation(BROKER)
        assert model.unit_data(peer.id, unit.name).get("signing-key-id") == new_id

    # Clients keep working through the secret update: their actions use the new tokens.
    produce_consume(model, unit_a, f"persistent://{NAMESPACE_A}/after-{uuid.uuid4().hex[:6]}")
    produce_consume(model, unit_b, f"persistent://{NAMESPACE_B}/after-{uuid.uuid4().hex[:6]}")
    assert produce_direct(new_a, topic_a, b"new") == "ok"
    assert produce_direct(new_b, topic_b, b"new") == "ok"

    # The old tokens are refused by every broker now, and the brokers' logs say so (which also
    # shows that the refusal count taken above can see refusals).
    for old, topic in ((old_a, topic_a), (old_b, topic_b), (old_internal["admin-token"], topic_a)):
        assert produce_direct(old, topic, b"old") != "ok"
    assert len(broker_auth_refusals(model)) > len(auth_lines), "old tokens refused, not logged"

    workload.Operator.of(model)  # the operator re-reads the admin token
    read = producer.check_nothing_lost()
    assert read >= len(producer.acked)

    failed, refused = probes.failed(), probes.auth_refused()
    span = (refused[-1][0] - refused[0][0]) if refused else 0.0
    record("rotation.roll_s", round(rolled - started, 1))
    record("rotation.clients_updated_s", round(clients_updated - started, 1))
    record("rotation.publish_gap_s", round(producer.longest_gap(since=started), 2))
    record("rotation.producer_acked", len(producer.acked))
    record("rotation.producer_failed_sends", producer.failures)
    record("rotation.probe_connections", len(probes.outcomes))
    record("rotation.probe_failures", len(failed))
    record("rotation.probe_auth_refusals", len(refused))
    record("rotation.probe_auth_refusal_span_s", round(span, 1))
    record("rotation.broker_token_refusals", len(auth_lines))
    print("broker token refusals:\n" + "\n".join(line[:160] for line in auth_lines[-8:]))
    print(
        "brokers on the new key at:",
        {u: round(t - started, 1) for u, t in probes.switched.items()},
    )
    print("failed probes:", [(round(t - started, 1), app, o[:70]) for t, app, o in failed])
