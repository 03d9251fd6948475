"""The view-check core library: recording the live state, and the check's builder."""

from __future__ import annotations

import shlex

from charms.pulsar_k8s.v0.view_check import (
    exec_check,
    record_content,
    record_view,
    recorded_state,
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
