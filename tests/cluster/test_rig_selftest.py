"""The rig tested on itself, with a throwaway charm (selftest_charm/): no Pulsar charm needed."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

import ops
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


NOTICE_KEY = "rig.example.com/selftest"


def test_pebble_notify_in_a_pod_is_one_custom_notice_event_per_repeat(alpha: Model):
    unit = f"{ALPHA}/0"
    pod = alpha.pod(unit)
    # What Juju gives the workload container: its Pebble on a fixed path, the socket in the env.
    stdout, _ = pod.run(["sh", "-c", 'echo "$PEBBLE_SOCKET $PEBBLE"; ls /charm/bin'])
    assert stdout.split() == [
        "/charm/container/pebble.socket",
        "/charm/container/pebble",
        "pebble",
    ]

    def notices() -> list[str]:
        return [e.event for e in alpha.events(kind="pebble_custom_notice")]

    assert notices() == []
    pod.run(["/charm/bin/pebble", "notify", NOTICE_KEY, "step=1"])  # as uid 10000
    alpha.settle(until=lambda: len(notices()) >= 1, timeout=30)
    alpha.run_for(3)
    (first,) = alpha.events(kind="pebble_custom_notice")
    assert first.unit == unit and f"key={NOTICE_KEY}" in first.event
    assert first.error is None
    # A repeat is one more event; a notify within --repeat-after is no repeat, so no event.
    pod.run(["/charm/bin/pebble", "notify", NOTICE_KEY, "step=2"])
    alpha.settle(until=lambda: len(notices()) >= 2, timeout=30)
    pod.run(["/charm/bin/pebble", "notify", "--repeat-after=1h", NOTICE_KEY, "step=3"])
    alpha.run_for(3)
    assert len(notices()) == 2
    assert [e.unit for e in alpha.events(kind="pebble_custom_notice")] == [unit, unit]
    # The charm reads the notice from the real Pebble: it has seen all three occurrences.
    (notice,) = pod.client().get_notices(
        users=ops.pebble.NoticesUsers.ALL, keys=[NOTICE_KEY], types=["custom"]
    )
    assert notice.occurrences == 3 and notice.last_data == {"step": "3"}


def test_check_failing_past_its_threshold_then_recovering(alpha: Model):
    unit = f"{ALPHA}/0"
    checks = alpha.events(kind="pebble_check")
    assert checks == []  # a check that passes from the start raises no event
    # The web server stops (Pebble does not restart a stopped service): web-ready fails
    # twice (its threshold), the charm hears it and replans, the check passes again.
    alpha.pod(unit).client().stop_services(["web"])
    alpha.settle(
        until=lambda: bool(alpha.events(unit=unit, kind="pebble_check_recovered")), timeout=60
    )
    alpha.run_for(3)
    kinds = [(e.unit, e.event.split()[0]) for e in alpha.events(kind="pebble_check")]
    assert kinds == [(unit, "pebble_check_failed"), (unit, "pebble_check_recovered")]
    assert all("check=web-ready" in e.event for e in alpha.events(kind="pebble_check"))
    assert alpha.pod(unit).service_pid("web") is not None


def test_update_status_fires_per_unit_at_the_interval(model: Model):
    interval = 2.0
    model.update_status_interval = interval
    model.deploy(ALPHA, RigSelftestCharm, units=1)
    model.settle(timeout=60, tick=None)
    time.sleep(0.7)  # the second unit's agent starts later: its own phase
    model.add_unit(ALPHA)
    model.run_for(12)
    low = (1 - 0.2) * interval - 0.05  # Juju waits 80-120% of the interval
    for unit in model.units(ALPHA):
        times = [e.started for e in model.events(unit=unit.name, kind="update_status")]
        assert len(times) >= 3, (unit.name, times)
        gaps = [b - a for a, b in zip([unit.agent_started, *times], times, strict=False)]
        assert min(gaps) >= low, (unit.name, gaps)  # never more often than Juju would
        assert max(gaps) <= 1.2 * interval + 2.0, (unit.name, gaps)
