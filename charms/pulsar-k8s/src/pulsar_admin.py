"""Small HTTP calls to a broker's web service (admin REST API). Errors are values, never raised."""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from pulsar_render import WEB_SERVICE_PORT

DEFAULT_TIMEOUT = 3.0


def get(url: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
    """``(status, body)``; status 0 when nothing answered (refused, timeout, DNS)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, str(exc)


def broker_ready(address: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Return whether ``GET /admin/v2/brokers/ready`` answers 200 (broker serving topics)."""
    status, _ = get(f"http://{address}:{WEB_SERVICE_PORT}/admin/v2/brokers/ready", timeout)
    return status == 200


def wait_broker_ready(
    address: str,
    deadline_seconds: float,
    *,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] | None = None,
) -> bool:
    """Poll readiness for about ``deadline_seconds``; True as soon as it is ready.

    Bounded by a number of polls rather than a clock, so a stubbed sleep cannot spin forever.
    """
    pause = sleep or time.sleep
    polls = max(1, math.ceil(deadline_seconds / poll_seconds))
    for attempt in range(polls + 1):
        if broker_ready(address):
            return True
        if attempt < polls:
            pause(poll_seconds)
    return False
