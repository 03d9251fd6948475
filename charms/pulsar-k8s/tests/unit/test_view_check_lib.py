"""The view-check core library: recording the live state, and the check's builder."""

from __future__ import annotations

import shlex

from charms.pulsar_k8s.v0.view_check import (
    CONTAINER_PEBBLE,
    WATCH_PERIOD_S,
    exec_check,
    notice_key,
    record_content,
    record_view,
    recorded_state,
    watch_script,
    watched_command,
    with_watcher,
)


class FakeWorkload:
    """Files in memory; counts pushes (a reconcile that changes nothing writes nothing)."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.pushes = 0

    def read_text(self, path: str) -> str | None:
        return self.files.get(path)

    def push(self, files: dict[str, str]) -> list[str]:
        self.pushes += 1
        self.files.update(files)
        return list(files)


def test_a_new_state_is_recorded_and_an_equal_one_writes_nothing():
    workload = FakeWorkload()
    record_view(workload, "/v", "ready")  # type: ignore[arg-type]
    assert recorded_state(workload.files["/v"]) == "ready"
    record_view(workload, "/v", "ready")  # type: ignore[arg-type]
    assert workload.pushes == 1
    record_view(workload, "/v", "down")  # type: ignore[arg-type]
    assert recorded_state(workload.files["/v"]) == "down" and workload.pushes == 2


def test_a_stale_view_is_stamped_again_even_if_equal():
    workload = FakeWorkload()
    workload.files["/v"] = record_content("ready", 0)
    record_view(workload, "/v", "ready", stale=True)  # type: ignore[arg-type]
    assert workload.pushes == 1
    assert workload.files["/v"] != record_content("ready", 0)  # a fresh stamp


def test_exec_check_is_a_threshold_one_check_run_by_the_workload_user():
    check = exec_check("test -e /x", level="ready")
    assert check["level"] == "ready" and check["threshold"] == 1
    assert shlex.split(check["exec"]["command"]) == ["/bin/bash", "-c", "test -e /x"]
    assert "level" not in exec_check("true")


# -- the watcher: a notice on each change of the live state, until it serves ----------------


def _watch(tmp_path, states: list[str], serving: str = "serving") -> list[str]:
    """Run the real watcher (bash) against a live state read from a file that goes through
    ``states``; return the data of the notices it recorded (a stand-in for ``pebble``)."""
    import subprocess
    import threading

    state, notices = tmp_path / "state", tmp_path / "notices"
    fake_pebble = tmp_path / "pebble"
    fake_pebble.write_text(f'#!/bin/bash\necho "$*" >> {notices}\n')
    fake_pebble.chmod(0o755)
    state.write_text(states[0])
    script = watch_script(f"cat {state}", serving, "charmhub.io/x/view", pebble=str(fake_pebble))
    watcher = subprocess.Popen(["/bin/bash", "-c", script])
    try:
        for next_state in states[1:]:
            threading.Event().wait(4 * WATCH_PERIOD_S)  # time.sleep is patched out here
            state.write_text(next_state)
        watcher.wait(timeout=10)
    finally:
        watcher.kill()
    return notices.read_text().splitlines() if notices.exists() else []


def test_the_watcher_notifies_each_change_and_stops_once_serving(tmp_path):
    assert _watch(tmp_path, ["down", "up", "serving"]) == [
        "notify charmhub.io/x/view state=up",
        "notify charmhub.io/x/view state=serving",
    ]


def test_the_watcher_of_a_workload_serving_at_its_first_look_records_nothing(tmp_path):
    assert _watch(tmp_path, ["serving"]) == []


def test_a_watched_command_forks_the_watcher_then_execs_the_service(tmp_path):
    layer = {
        "summary": "s",
        "services": {"svc": {"command": "/pulsar/bin/pulsar broker", "user-id": 10000}},
        "checks": {"c": {"level": "alive"}},
    }
    watched = with_watcher(layer, "svc", "printf down", "ready", notice_key("pulsar-k8s"))
    assert layer["services"]["svc"]["command"] == "/pulsar/bin/pulsar broker"  # a copy
    assert watched["checks"] == layer["checks"]
    assert watched["services"]["svc"]["user-id"] == 10000
    argv = shlex.split(watched["services"]["svc"]["command"])
    assert argv[:2] == ["/bin/bash", "-c"] and len(argv) == 3
    assert argv[2].endswith(") </dev/null >/dev/null 2>&1 & exec /pulsar/bin/pulsar broker")
    assert f"{CONTAINER_PEBBLE} notify charmhub.io/pulsar-k8s/view" in argv[2]
    # the service itself runs (bash execs it): a trivial command through the same wrapper
    result = subprocess_run(
        watched_command("echo served", "printf ready", "ready", "charmhub.io/x/view")
    )
    assert result == "served\n"


def subprocess_run(command: str) -> str:
    import subprocess

    return subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=10).stdout
