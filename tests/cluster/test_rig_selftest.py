"""The rig tested on itself, with a throwaway charm (selftest_charm/): no Pulsar charm needed."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cluster import rig_pods
from tests.cluster.rig_juju import HookFailedError, Model

sys.path.insert(0, str(Path(__file__).parent / "selftest_charm" / "src"))
from rig_selftest_charm import (  # pyright: ignore[reportMissingImports]
    CONF,
    MARKER,
    RigSelftestCharm,
)

ALPHA, BETA = "selftest-alpha", "selftest-beta"


def fqdn(app: str, n: int) -> str:
    return f"{app}-{n}.{app}-endpoints.rig.svc.cluster.local"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


@pytest.fixture
def alpha(model: Model) -> Model:
    model.deploy(ALPHA, RigSelftestCharm, units=2)
    model.settle(timeout=60)
    return model


def test_pods_have_distinct_views_and_run_as_10000(alpha: Model):
    for n in (0, 1):
        pod = alpha.pod(f"{ALPHA}/{n}")
        conf = json.loads(pod.read(CONF))
        assert conf["fqdn"] == fqdn(ALPHA, n)
        # Each pod's own listener, reached by its name from the test process.
        assert json.loads(get(f"http://{fqdn(ALPHA, n)}:8080/rig-selftest.conf")) == conf
        # The service runs as the image's user.
        pid = pod.service_pid("web")
        assert pid is not None
        uids = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:1]
        assert uids == ["10000"]
        stdout, _ = pod.run(["sh", "-c", "id -u; id -g; hostname; echo $HOME"])
        assert stdout.split() == ["10000", "0", f"{ALPHA}-{n}", "/pulsar/data"]
        # The image's read-only tree is shared, conf and storage are the pod's own.
        with pytest.raises(Exception, match="Read-only"):
            pod.run(["touch", "/pulsar/lib/x"])
        assert pod.host_path(MARKER).read_text() == f"{ALPHA}/{n}"
    # Nothing binds the wildcard address.
    assert rig_pods.wildcard_listeners([u.pod for u in alpha.units()]) == []
    # Peer data: each unit's address, and the leader's view of all members.
    peers = alpha.peer_relation(ALPHA)
    assert alpha.unit_data(peers.id, f"{ALPHA}/1")["address"] == fqdn(ALPHA, 1)
    assert json.loads(alpha.app_data(peers.id, ALPHA)["members"]) == [
        fqdn(ALPHA, 0),
        fqdn(ALPHA, 1),
    ]
    # The chown ran as root through Pebble, once per unit (storage is root-owned at first).
    chowns = alpha.execs(contains="chown")
    assert sorted(c.unit for c in chowns) == [f"{ALPHA}/0", f"{ALPHA}/1"]
    assert all(c.exit_code == 0 and c.args["user_id"] is None for c in chowns)
    # Events arrived as Juju delivers them on deploy.
    kinds = [e.event.split()[0] for e in alpha.events(unit=f"{ALPHA}/1")]
    assert kinds[:5] == [
        "storage_attached",
        "install",
        "relation_created",
        "config_changed",
        "start",
    ]
    assert "pebble_ready" in kinds
    assert "leader_elected" not in kinds
    assert "leader_elected" in [e.event for e in alpha.events(unit=f"{ALPHA}/0")]


def test_relation_data_and_secret_flow_between_apps(alpha: Model):
    alpha.deploy(BETA, RigSelftestCharm, units=1)
    rel = alpha.integrate(f"{ALPHA}:greeting", f"{BETA}:upstream")
    alpha.settle(until=lambda: alpha.unit(f"{BETA}/0").status.message != "", timeout=60)
    beta = alpha.unit(f"{BETA}/0")
    assert beta.status == alpha.unit(f"{BETA}/0").status
    assert beta.status.message == "upstream: hello/token-hello"
    secret = alpha.secret("greeting-token", ALPHA)
    assert secret.owner_app == ALPHA and rel.id in secret.grants
    # A config change on the provider: new secret revision -> secret-changed on the consumer.
    alpha.config(ALPHA, message="bonjour")
    alpha.settle(
        until=lambda: beta.status.message == "upstream: bonjour/token-bonjour", timeout=60
    )
    assert alpha.secret_content("greeting-token", ALPHA) == {"token": "token-bonjour"}
    assert secret.latest == 2
    assert alpha.events(unit=beta.name, kind="secret_changed")
    assert json.loads(beta.pod.read(CONF))["upstream"] == "bonjour/token-bonjour"
    # Removing the relation: departed + broken, grants dropped.
    alpha.remove_relation(rel.id)
    alpha.settle(until=lambda: rel.id not in alpha.relations, timeout=60)
    assert alpha.events(unit=beta.name, kind="relation_broken")
    assert rel.id not in alpha.secret("greeting-token", ALPHA).grants


def test_pod_loss_keeps_storage_and_redelivers_events(alpha: Model):
    unit = alpha.unit(f"{ALPHA}/1")
    pid_before = unit.pod.service_pid("web")
    (unit.pod.host_path("/pulsar/data") / "keep").write_text("kept")
    (unit.pod.rootfs / "logs" / "ephemeral").write_text("lost")
    seen = len(alpha.events(unit=unit.name))
    alpha.lose_pod(unit.name)
    assert unit.pod.generation == 2
    assert not (unit.pod.rootfs / "logs" / "ephemeral").exists()
    alpha.settle(timeout=60)
    assert unit.pod.read("/pulsar/data/keep") == "kept"
    assert unit.pod.read(MARKER) == unit.name  # written at first boot only
    assert unit.pod.service_pid("web") not in (None, pid_before)
    kinds = [e.event for e in alpha.events(unit=unit.name)[seen:]]
    assert kinds[:4] == ["upgrade_charm", "config_changed", "start", "pebble_ready"]
    assert get(f"http://{fqdn(ALPHA, 1)}:8080/rig-selftest.conf")


def test_kill_service_and_pebble_restarts_it(alpha: Model):
    pod = alpha.pod(f"{ALPHA}/0")
    pid = alpha.kill_service(f"{ALPHA}/0", "web")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = pod.service_pid("web")
        if new not in (None, pid):
            break
        time.sleep(0.2)
    else:
        pytest.fail("Pebble did not restart the killed service")


def test_scale_down_and_leader_change(alpha: Model):
    alpha.add_unit(ALPHA)
    alpha.settle(timeout=60)
    peers = alpha.peer_relation(ALPHA)
    assert len(json.loads(alpha.app_data(peers.id, ALPHA)["members"])) == 3
    alpha.set_leader(f"{ALPHA}/1")
    alpha.remove_unit(ALPHA)  # the highest ordinal goes
    alpha.settle(timeout=60)
    assert [u.name for u in alpha.units(ALPHA)] == [f"{ALPHA}/0", f"{ALPHA}/1"]
    assert json.loads(alpha.app_data(peers.id, ALPHA)["members"]) == [
        fqdn(ALPHA, 0),
        fqdn(ALPHA, 1),
    ]
    departed = alpha.events(unit=f"{ALPHA}/0", kind="relation_departed")
    assert departed and f"{ALPHA}/2" in departed[-1].event
    assert alpha.events(unit=f"{ALPHA}/1", kind="leader_elected")


def test_real_distribution_runs_in_the_pod(alpha: Model):
    alpha.config(ALPHA, **{"run-version": True})
    alpha.settle(timeout=120)
    out = alpha.pod(f"{ALPHA}/0").read("/pulsar/data/version.txt")
    assert "4.0" in out
    (call,) = alpha.execs(unit=f"{ALPHA}/0", contains="/pulsar/bin/pulsar")
    assert call.command == ["/pulsar/bin/pulsar", "version"] and call.exit_code == 0
    assert call.args["user_id"] == 10000


def test_hook_error_is_reported(model: Model):
    class Broken(RigSelftestCharm):
        def _reconcile(self, event):
            raise RuntimeError("boom")

    Broken.__module__ = RigSelftestCharm.__module__
    model.deploy(ALPHA, Broken)
    with pytest.raises(HookFailedError, match="boom"):
        model.settle(timeout=10)


def test_refresh_replaces_pods_one_by_one(alpha: Model):
    seen = len(alpha.recorder.events)
    alpha.upgrade_charm(ALPHA)
    alpha.settle(timeout=60)
    assert [alpha.pod(f"{ALPHA}/{n}").generation for n in (0, 1)] == [2, 2]
    upgrades = [e.unit for e in alpha.recorder.events[seen:] if e.event == "upgrade_charm"]
    assert upgrades == [f"{ALPHA}/1", f"{ALPHA}/0"]  # highest ordinal first
