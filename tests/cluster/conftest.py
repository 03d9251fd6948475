"""Fixtures of the real-workload rig: namespace + hosts, state directory, models, teardown."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import rig_net, rig_pods
from tests.cluster.rig_juju import Model, RigEnv

_STATE_DIR: Path | None = None
_PLAN: rig_net.AddressPlan | None = None
_SKIP_REASON: str | None = None
_MODELS: list[Model] = []
_counter = itertools.count()

UPDATE_STATUS_INTERVAL_UNTIL_ISSUE_7 = None
"""The update-status cadence the charms still lean on (issue 7): Juju's is 300 s (the rig's
default, :data:`tests.cluster.rig_juju.UPDATE_STATUS_INTERVAL`). Set this to ``None`` once the
charms are woken by Pebble check events and custom notices instead."""


def pytest_configure(config: pytest.Config) -> None:
    """Enter the rig's mount namespace before anything starts a thread."""
    global _STATE_DIR, _PLAN, _SKIP_REASON
    if _STATE_DIR is not None or _SKIP_REASON is not None:
        return
    if os.geteuid() != 0:
        _SKIP_REASON = "the rig needs root (mount namespaces, bind mounts, uid 10000)"
        return
    base = os.environ.get("PULSAR_RIG_STATE") or None
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    _STATE_DIR = Path(tempfile.mkdtemp(prefix="pulsar-rig-", dir=base))
    _PLAN = rig_net.AddressPlan(_STATE_DIR / "hosts")
    for app in rig_net.KNOWN_SUBNETS:
        _PLAN.add_app(app)
    rig_net.enter_rig_namespace(_STATE_DIR, _PLAN)
    atexit.register(_kill_everything)


def _kill_everything() -> None:
    for model in _MODELS:
        for pod in model._pods:
            try:
                pod.kill_all()
            except Exception as exc:  # pragma: no cover - best effort at exit
                print(f"rig: could not kill pod {pod.name}: {exc}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    setattr(item, f"rig_report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def rig_env() -> Iterator[RigEnv]:
    """The session's rig: private namespace entered, image cached, stale pods killed."""
    if _SKIP_REASON:
        if os.environ.get("CI"):
            # CI's proof is this rig: a rig that cannot run is a failure there, never a skip.
            pytest.fail(_SKIP_REASON)
        pytest.skip(_SKIP_REASON)
    assert _STATE_DIR is not None and _PLAN is not None
    stale = rig_pods.kill_stale_processes()
    if stale:
        print(f"rig: killed {len(stale)} processes left by an earlier, killed run")
    env = RigEnv(state_dir=_STATE_DIR, image=rig_pods.Image.from_cache(), plan=_PLAN)
    yield env
    _kill_everything()
    if not os.environ.get("PULSAR_RIG_KEEP"):
        shutil.rmtree(_STATE_DIR, ignore_errors=True)
    else:
        print(f"rig: state kept in {_STATE_DIR}")


def new_model(env: RigEnv, **kwargs: object) -> Model:
    """A fresh model with its own state directory (short path: AF_UNIX socket limit)."""
    sub = RigEnv(state_dir=env.state_dir / f"m{next(_counter)}", image=env.image, plan=env.plan)
    kwargs.setdefault("update_status_interval", UPDATE_STATUS_INTERVAL_UNTIL_ISSUE_7)
    model = Model(sub, **kwargs)  # type: ignore[arg-type]
    _MODELS.append(model)
    return model


@pytest.fixture
def model(rig_env: RigEnv, request: pytest.FixtureRequest) -> Iterator[Model]:
    """A fresh, empty model; torn down (every pod process killed) even on failure."""
    m = new_model(rig_env)
    yield m
    report = getattr(request.node, "rig_report_call", None)
    if report is not None and report.failed:
        print(f"\n===== rig report for {request.node.nodeid} =====\n{m.report()}")
    m.teardown()


@pytest.fixture(scope="module")
def module_model(rig_env: RigEnv) -> Iterator[Model]:
    """A model shared by a module's tests (for expensive clusters)."""
    m = new_model(rig_env)
    yield m
    m.teardown()


@pytest.fixture(scope="module")
def bundle(rig_env: RigEnv) -> Iterator[Model]:
    """The bundle's shape, settled to all-active (module-scoped: a cluster takes minutes)."""
    from tests.cluster.rig_bundle import deploy_bundle

    m = new_model(rig_env)
    try:
        deploy_bundle(m)
        m.settle(timeout=float(os.environ.get("PULSAR_RIG_SETTLE_TIMEOUT", "900")))
        from tests.cluster.workload import Operator

        Operator.of(m)
        yield m
    except Exception:
        print(f"\n===== rig report (bundle) =====\n{m.report()}")
        raise
    finally:
        m.teardown()
