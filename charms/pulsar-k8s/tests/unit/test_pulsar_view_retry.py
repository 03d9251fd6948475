"""The view check's retry view: work that failed is retried on a real check event."""

from __future__ import annotations

import subprocess
import time

import pytest
from charms.pulsar_k8s.v0.view_check import (
    check_script,
    record_content,
    recorded_state,
    retry_content,
)


def _passes(tmp_path, content: str, live: str = "ready") -> bool:
    view = tmp_path / "view"
    view.write_text(content)
    script = check_script(f"printf {live}", str(view))
    return subprocess.run(["/bin/bash", "-c", script], check=False, timeout=10).returncode == 0


@pytest.mark.parametrize(
    ("scheduled_s_ago", "after_s", "passes"),
    [
        (0, 30, True),  # the retry is not due: the check passes
        (0, 5, True),
        (40, 30, False),  # due: the check fails, Juju raises pebble-check-failed
        (10, 5, False),
        (10, 0, False),
    ],
)
def test_retry_view_fails_the_check_once_due(tmp_path, scheduled_s_ago, after_s, passes):
    content = retry_content("ready", time.time() - scheduled_s_ago, after_s)
    assert _passes(tmp_path, content) is passes


def test_retry_view_is_never_a_live_state(tmp_path):
    content = retry_content("ready", time.time(), 0)
    # a charm that reads it back sees a difference, so its next reconcile records the live view
    recorded = recorded_state(content)
    assert recorded is not None and recorded != "ready"
    assert recorded.startswith("retry:")
    # and the live view recorded again passes
    assert _passes(tmp_path, record_content("ready", time.time() - 60))
