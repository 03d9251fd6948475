"""Refreshes: the shared ``refresh`` library, and pulsar-k8s's pre-refresh check and downgrade
refusal (the other charms' wiring is tested in their own suites)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import ops
import pulsar_admin
import pytest
from charms.pulsar_k8s.v0.observability import WORKLOAD_VERSION_KEY
from charms.pulsar_k8s.v0.refresh import (
    HIGHEST_VERSION_KEY,
    downgrade_problem,
    newest,
    parse_version,
    progress,
    ready_gate,
)
from charms.pulsar_k8s.v0.workload import unit_fqdn
from ops import testing
from test_pulsar_charm import (
    APP,
    MODEL,
    SECRET,
    bk_relation,
    expected_files,
    full_state,
    peers,
    zk_relation,
)

JAR = "org.apache.pulsar-pulsar-broker-common-{}.jar"

# -- the library ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4.1.8", (4, 1, 8)),
        ("4.2.0-SNAPSHOT", (4, 2, 0)),
        ("10.20.30", (10, 20, 30)),
        ("4.0", None),
        ("v4.1.8", None),
        ("4.1.8 ", None),
        ("4.1.8\n${x}", None),
        (None, None),
        (408, None),
    ],
)
def test_parse_version(text: object, expected: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == expected


def test_newest_compares_numerically_and_ignores_garbage() -> None:
    assert newest(["4.1.8", "4.1.10", "junk", ""]) == "4.1.10"
    assert newest(["junk"]) is None


@pytest.mark.parametrize(
    ("running", "highest", "refused"),
    [
        ("4.1.8", None, False),  # nothing recorded yet: a fresh deployment
        ("4.1.8", "4.1.6", False),  # upgrade
        ("4.1.6", "4.1.8", False),  # rollback within the minor: same metadata format
        ("4.1.8", "4.2.0", True),  # below the minor version once run
        ("3.3.9", "4.1.8", True),
        ("4.2.0", "4.1.8", False),
        ("4.1.8", "garbage", False),  # an unreadable record refuses nothing
    ],
)
def test_downgrade_problem(running: str, highest: str | None, refused: bool) -> None:
    problem = downgrade_problem(running, highest)
    assert (problem is not None) == refused
    if problem:
        assert running in problem and str(highest) in problem


def test_progress_counts_units_on_the_newest_version() -> None:
    assert progress({"a/0": "4.1.6", "a/1": "4.1.8", "a/2": "4.1.6"}) == (
        "refresh in progress: 1/3 units on 4.1.8"
    )
    assert progress({"a/0": "4.1.8", "a/1": "4.1.8"}) is None
    assert progress({"a/0": "4.1.8", "a/1": "not-a-version"}) is None
    assert progress({}) is None


@pytest.mark.parametrize(
    ("content", "ready"),
    [
        ("serving 1733150000", True),
        ("retry:serving 1733150000", True),
        ("up 1733150000", False),
        ("servingx 1", False),
        ("", False),
        (None, False),  # nothing recorded yet (a new pod)
    ],
)
def test_ready_gate_passes_only_on_the_healthy_recorded_view(
    tmp_path: Path, content: str | None, ready: bool
) -> None:
    view = tmp_path / "view"
    if content is not None:
        view.write_text(content)
    check = ready_gate(str(view), "serving")
    assert (check["level"], check["threshold"], check["override"]) == ("ready", 1, "replace")
    result = subprocess.run(shlex.split(check["exec"]["command"]), check=False)
    assert (result.returncode == 0) == ready


# -- pulsar-k8s -------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The container's /pulsar tree (as in test_pulsar_charm)."""
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


def address(n: int) -> str:
    return unit_fqdn(f"{APP}/{n}", APP, MODEL)


@pytest.fixture
def ready_brokers(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Broker address -> whether /admin/v2/brokers/ready answers 200 (default: yes)."""
    answers: dict[str, bool] = {}
    monkeypatch.setattr(
        pulsar_admin,
        "broker_ready",
        lambda a, timeout=0, token=None, web=None: answers.get(a, True),
    )
    return answers


def two_brokers(
    root: Path,
    app_data: dict[str, str] | None = None,
    jar: str | None = None,
    running: bool = True,
) -> testing.State:
    if jar:
        (root / "lib").mkdir(exist_ok=True)
        (root / "lib" / JAR.format(jar)).write_text("")
    peer = peers(app_data=app_data, peer_units={1: {WORKLOAD_VERSION_KEY: "4.1.8"}})
    return full_state(
        root,
        running=running,
        files=expected_files(),
        relations=[zk_relation(SECRET), bk_relation(), peer],
    )


def test_pre_refresh_check_passes_when_every_broker_serves(ctx, root, ready_brokers):
    ctx.run(ctx.on.action("pre-refresh-check"), two_brokers(root))
    assert ctx.action_results == {
        "result": "healthy: ready to refresh",
        "workload-version": "4.1.8",
    }


def test_pre_refresh_check_fails_naming_a_broker_not_serving(ctx, root, ready_brokers):
    ready_brokers[address(1)] = False
    with pytest.raises(testing.ActionFailed) as failed:
        ctx.run(ctx.on.action("pre-refresh-check"), two_brokers(root))
    assert failed.value.message == "pre-refresh check failed: pulsar-k8s/1 broker not serving"


def test_downgrade_across_a_minor_version_is_refused_and_starts_nothing(ctx, root):
    before = two_brokers(root, app_data={HIGHEST_VERSION_KEY: "4.2.0"}, jar="4.1.8", running=False)
    out = ctx.run(ctx.on.pebble_ready(before.get_container("pulsar")), before)
    assert out.unit_status == ops.BlockedStatus(
        "refresh refused: Pulsar 4.1.8 is older than 4.2.0, which this application has run "
        "(downgrades across minor versions are not supported)"
    )
    assert "broker" not in out.get_container("pulsar").plan.services
    # and its pod never turns ready: Kubernetes replaces no further pod
    assert (
        out.get_container("pulsar").plan.checks["refresh-refused"].level
        == ops.pebble.CheckLevel.READY
    )
    assert not ctx.exec_history.get("pulsar")  # no metadata initialisation either


def test_leader_records_the_highest_version_and_shows_the_refresh(ctx, root, ready_brokers):
    before = two_brokers(root, jar="4.1.6")
    out = ctx.run(ctx.on.update_status(), before)
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert out.get_relation(peer.id).local_app_data[HIGHEST_VERSION_KEY] == "4.1.8"
    assert out.unit_status.name == "active"
    assert out.unit_status.message.startswith("refresh in progress: 1/2 units on 4.1.8; ")
