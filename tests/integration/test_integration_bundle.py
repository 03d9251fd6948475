"""The suite on a real Juju: deploy as bundle.yaml does, scale, re-relate, reconfigure, refresh.

The tests run in order on one model (module-scoped ``juju`` fixture); each leaves the model
all active for the next.
"""

from __future__ import annotations

import pathlib
import re

import jubilant
import pytest

from tools.repo import ROOT, load_yaml

ZOOKEEPER = "pulsar-zookeeper-k8s"
BOOKKEEPER = "bookkeeper-k8s"
BROKER = "pulsar-k8s"
APPS = (ZOOKEEPER, BOOKKEEPER, BROKER)
WRITABLE = re.compile(r"(\d+)/(\d+) writable")


def bundle() -> dict:
    return load_yaml(ROOT / "bundle.yaml")


def all_active(status: jubilant.Status) -> bool:
    return jubilant.all_active(status, *APPS) and jubilant.all_agents_idle(status, *APPS)


def wait_active(juju: jubilant.Juju) -> jubilant.Status:
    return juju.wait(all_active, error=jubilant.any_error, delay=5, successes=5)


def assert_healthy_messages(status: jubilant.Status, units: dict[str, int]) -> None:
    """Every expected unit is there and active, and no status message reports a problem."""
    for app, count in units.items():
        app_status = status.apps[app]
        assert len(app_status.units) == count, f"{app}: {sorted(app_status.units)}"
        for name, unit in app_status.units.items():
            message = unit.workload_status.message
            assert unit.is_active, f"{name}: {unit.workload_status.current} {message!r}"
            assert not re.search(r"error|fail|waiting|blocked", message, re.I), (
                f"{name}: {message!r}"
            )
    for name, unit in status.apps[BOOKKEEPER].units.items():
        match = WRITABLE.search(unit.workload_status.message)
        if match:  # e.g. "bookie writable (3/3 writable)"
            assert match.group(1) == match.group(2) == str(units[BOOKKEEPER]), (
                f"{name}: {unit.workload_status.message!r}"
            )


def test_deploy_the_bundle_shape(
    juju: jubilant.Juju, charm_files: dict[str, pathlib.Path], image_resources: dict[str, str]
):
    apps = bundle()["applications"]
    for app in APPS:
        spec = apps[app]
        juju.deploy(
            charm_files[app],
            app,
            num_units=spec.get("scale", spec.get("num_units", 1)),
            resources=image_resources,
            storage={k: str(v) for k, v in (spec.get("storage") or {}).items()} or None,
            trust=bool(spec.get("trust", False)),
        )
    for first, second in bundle()["relations"]:
        juju.integrate(first, second)
    status = wait_active(juju)
    assert_healthy_messages(
        status, {app: apps[app].get("scale", apps[app].get("num_units", 1)) for app in APPS}
    )


def test_scale_zookeeper_up_and_down(juju: jubilant.Juju):
    juju.add_unit(ZOOKEEPER, num_units=2)
    status = juju.wait(
        lambda s: len(s.apps[ZOOKEEPER].units) == 5 and all_active(s),
        error=jubilant.any_error,
        delay=5,
        successes=5,
    )
    assert_healthy_messages(status, {ZOOKEEPER: 5, BOOKKEEPER: 3, BROKER: 1})
    juju.remove_unit(ZOOKEEPER, num_units=2)
    status = juju.wait(
        lambda s: len(s.apps[ZOOKEEPER].units) == 3 and all_active(s),
        error=jubilant.any_error,
        delay=5,
        successes=5,
    )
    assert_healthy_messages(status, {ZOOKEEPER: 3, BOOKKEEPER: 3, BROKER: 1})


def test_scale_bookkeeper_up(juju: jubilant.Juju):
    juju.add_unit(BOOKKEEPER, num_units=1)
    status = juju.wait(
        lambda s: len(s.apps[BOOKKEEPER].units) == 4 and all_active(s),
        error=jubilant.any_error,
        delay=5,
        successes=5,
    )
    assert_healthy_messages(status, {ZOOKEEPER: 3, BOOKKEEPER: 4, BROKER: 1})


@pytest.mark.parametrize(
    ("broker_end", "other_end"),
    [
        (f"{BROKER}:zookeeper", f"{ZOOKEEPER}:zookeeper"),
        (f"{BROKER}:bookkeeper", f"{BOOKKEEPER}:bookkeeper"),
    ],
    ids=["broker-zookeeper", "broker-bookkeeper"],
)
def test_remove_and_readd_relation(juju: jubilant.Juju, broker_end: str, other_end: str):
    juju.remove_relation(broker_end, other_end)
    # Without the relation the broker cannot be healthy: it must say so, not stay active.
    juju.wait(
        lambda s: not s.apps[BROKER].is_active and not jubilant.any_error(s, BROKER),
        error=lambda s: jubilant.any_error(s, BROKER),
        delay=5,
    )
    juju.integrate(broker_end, other_end)
    status = wait_active(juju)
    assert_healthy_messages(status, {ZOOKEEPER: 3, BOOKKEEPER: 4, BROKER: 1})


def test_cluster_name_is_fixed_after_initialisation(juju: jubilant.Juju):
    original = juju.config(BROKER)["cluster-name"]
    assert isinstance(original, str)
    juju.config(BROKER, {"cluster-name": original + "-renamed"})
    status = juju.wait(
        lambda s: jubilant.all_blocked(s, BROKER), error=jubilant.any_error, delay=5
    )
    message = (
        status.apps[BROKER].app_status.message
        or next(iter(status.apps[BROKER].units.values())).workload_status.message
    )
    assert "cluster-name" in message, message
    juju.config(BROKER, {"cluster-name": original})
    status = wait_active(juju)
    assert_healthy_messages(status, {ZOOKEEPER: 3, BOOKKEEPER: 4, BROKER: 1})


def test_refresh_with_the_same_charm(
    juju: jubilant.Juju, charm_files: dict[str, pathlib.Path], image_resources: dict[str, str]
):
    for app in APPS:
        juju.refresh(app, path=charm_files[app], resources=image_resources)
        wait_active(juju)
    status = wait_active(juju)
    assert_healthy_messages(status, {ZOOKEEPER: 3, BOOKKEEPER: 4, BROKER: 1})
