"""The "view" check: a Pebble check that fails while the charm's view of its workload is stale.

Juju delivers ``pebble-check-failed`` when a check's failures reach its threshold and
``pebble-check-recovered`` when it passes again, and nothing for a check that never fails, so a
plain readiness check can miss a workload that becomes ready between two runs. A view check
compares the workload's live state (printed by a charm-specific bash snippet) with the state the
charm last recorded in a file; it fails as soon as they differ, so the charm is woken by a real
event, records what it sees and acts on it. After every record the check passes once (a grace
period), so a later difference is a new failure, hence a new event.

Work that failed and must be retried while nothing else changes (a ZooKeeper operation with the
quorum up, a namespace the broker refused) is woken the same way: the charm records a *retry*
view (:func:`retry_content`), which no live state equals and whose stamp makes it pass only until
the retry is due; then the check fails, Juju raises ``pebble-check-failed`` and the reconcile runs
again (recording the live view clears the retry).

A check runs every 2 s, so a workload that comes up waits a second on average before its charm
hears of it, at every step of a cold start (quorum, writable bookies, ready broker). A starting
service therefore carries a *watcher* (:func:`watched_command`): a background loop started with
the service's process that looks at the live state four times a second and records a Pebble
custom notice (``pebble notify``; Juju: ``pebble-custom-notice``) on each change, until the
service reaches its serving state or a time limit. It costs nothing once the service serves; the
view check stays the guarantee (a change the watcher missed, a restart Pebble made).

Each charm supplies only its state names and the bash that prints the live state.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from charms.pulsar_k8s.v0.workload import WORKLOAD_UID, Workload

LIBID = "def62e14dfd24541af2ded9317797ade"
LIBAPI = 0
LIBPATCH = 5

# A view recorded this recently passes. Longer than two check periods, so at least one run falls
# inside it.
GRACE_S = 5
# The watcher: how often it looks, and for how long at most (the view check covers the rest).
WATCH_PERIOD_S = 0.25
WATCH_LIMIT_S = 600
# Where Juju puts Pebble in a sidecar workload container (its socket is in the environment).
CONTAINER_PEBBLE = "/charm/bin/pebble"
# The view file lives in the pod (not in storage): a new pod starts with no view, hence one event.
VIEW_DIR = "/pulsar/logs/charm-view"


def record_content(state: str, now: float) -> str:
    """Return what the charm writes in its view file: the state it saw and when (epoch s)."""
    return f"{state} {int(now)}"


# The prefix of a retry view: no live state starts with it.
RETRY_PREFIX = "retry:"


def retry_content(state: str, now: float, after_s: float) -> str:
    """Return a view that makes the check fail ``after_s`` from ``now`` (work to retry).

    The live state never equals it, and its stamp keeps it inside the grace period until then.
    """
    return f"{RETRY_PREFIX}{state} {int(now + max(after_s, 0.0)) - GRACE_S}"


def recorded_state(content: str | None) -> str | None:
    """Return the state a view file records (None: nothing recorded)."""
    return content.split()[0] if content and content.split() else None


def record_view(workload: Workload, path: str, state: str, stale: bool = False) -> None:
    """Record the live ``state`` for the view check when it changed.

    ``stale``: the check just failed, so the record is re-stamped even if equal (a new grace
    period, hence a new event on the next difference).
    """
    if stale or recorded_state(workload.read_text(path)) != state:
        workload.push({path: record_content(state, time.time())})


def check_script(live_state_script: str, path: str) -> str:
    """Bash: pass while the live state is the recorded one, or the record is fresh."""
    return (
        f"read -r seen stamp < {path} 2>/dev/null; "
        f'live="$({live_state_script})"; '
        '[ "$live" = "$seen" ] || '
        f"[ $(( $(printf '%(%s)T' -1) - ${{stamp:-0}} )) -lt {GRACE_S} ]"
    )


def exec_check(script: str, level: str | None = None, shell: str = "/bin/bash") -> dict[str, Any]:
    """Return a 2 s Pebble exec check of ``script`` run by the workload's user.

    One failure is enough (threshold 1): a failure is a change of state, the event a charm
    waits for, and a ready check that fails must take the pod out at once. ``level: ready``
    makes it part of Kubernetes' readiness probe.
    """
    check: dict[str, Any] = {
        "override": "replace",
        "period": "2s",
        "timeout": "1s",
        "threshold": 1,
        "exec": {
            "command": shlex.join([shell, "-c", script]),
            "user-id": WORKLOAD_UID,
            "group": "root",
        },
    }
    if level is not None:
        check["level"] = level
    return check


def view_check(live_state_script: str, path: str) -> dict[str, Any]:
    """Return the check: up while the recorded view equals the live state."""
    return exec_check(check_script(live_state_script, path))


def view_layer(summary: str, name: str, live_state_script: str, path: str) -> dict[str, Any]:
    """Return a layer holding only the view check (no level: it says nothing of health)."""
    return {"summary": summary, "checks": {name: view_check(live_state_script, path)}}


def notice_key(charm_name: str) -> str:
    """Return the custom notice key a charm's watcher records (``<domain>/<path>``)."""
    return f"charmhub.io/{charm_name}/view"


def watch_script(
    live_state_script: str, serving_state: str, key: str, pebble: str = CONTAINER_PEBBLE
) -> str:
    """Bash: record the notice ``key`` on each change of the live state until it serves.

    The first look only sets the baseline (nothing changed yet); the loop ends once the live
    state is ``serving_state`` or after :data:`WATCH_LIMIT_S`.
    """
    return (
        f'last=""; end=$((SECONDS + {WATCH_LIMIT_S})); '
        "while [ $SECONDS -lt $end ]; do "
        f'live="$({live_state_script})"; '
        f'if [ -n "$last" ] && [ "$live" != "$last" ]; then '
        f'{pebble} notify {key} state="$live"; fi; '
        f'[ "$live" = {shlex.quote(serving_state)} ] && exit 0; '
        f'last="$live"; sleep {WATCH_PERIOD_S}; done'
    )


def watched_command(command: str, live_state_script: str, serving_state: str, key: str) -> str:
    """Return ``command`` started with its watcher (:func:`watch_script`) beside it.

    The watcher is forked before bash execs the command, so every start of the service, by the
    charm or by Pebble, brings one; it shares the service's process group, so stopping the
    service stops it too. Its output is discarded (the service's log stays the workload's).
    """
    watcher = watch_script(live_state_script, serving_state, key)
    return shlex.join(
        ["/bin/bash", "-c", f"( {watcher} ) </dev/null >/dev/null 2>&1 & exec {command}"]
    )


def with_watcher(
    layer: dict[str, Any], service: str, live_state_script: str, serving_state: str, key: str
) -> dict[str, Any]:
    """Return a copy of ``layer`` whose ``service`` starts with its watcher."""
    services = dict(layer.get("services", {}))
    spec = dict(services[service])
    spec["command"] = watched_command(spec["command"], live_state_script, serving_state, key)
    services[service] = spec
    return {**layer, "services": services}
