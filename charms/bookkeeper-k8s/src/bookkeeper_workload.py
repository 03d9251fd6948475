"""The bookie's container (the core ``Workload``) and the bookie's own HTTP API.

Pebble failures raise ``WorkloadError`` (the reconcile waits); the HTTP API answers None when
the bookie does not answer.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import ops
from bookkeeper_render import HTTP_PORT, JAAS_PATH, SERVICE
from bookkeeper_tls import TLS_PRIVATE_PATHS
from charms.pulsar_k8s.v0.workload import Workload

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 5.0
STATE_TIMEOUT_S = 1.0


class BookieWorkload(Workload):
    def __init__(self, container: ops.Container, address: str):
        super().__init__(container, private_paths=[JAAS_PATH, *TLS_PRIVATE_PATHS])
        self._address = address

    def bookie_running(self) -> bool:
        return self.is_running(SERVICE)

    def start_bookie(self) -> None:
        # replan starts the service (startup: enabled) and (re)starts what changed in the plan;
        # not running before, so no hook waits for the JVM (the view check says when it serves).
        self.replan(wait=False)

    def restart_bookie(self) -> None:
        self.restart(SERVICE)

    def stop_bookie(self) -> None:
        self.stop(SERVICE)

    # --- the bookie's own HTTP API ---------------------------------------------------------

    def is_ready(self) -> bool:
        """GET /api/v1/bookie/is_ready: 200 once the bookie is writable (or read-only ready)."""
        return self._http_get("/api/v1/bookie/is_ready") is not None

    def writable_bookies(self) -> list[str] | None:
        """Ids of the writable bookies the cluster knows, or None when the API does not answer.

        GET /api/v1/bookie/list_bookies?type=rw answers a JSON object whose keys are bookie ids.
        """
        body = self._http_get("/api/v1/bookie/list_bookies?type=rw&print_hostnames=true")
        if body is None:
            return None
        try:
            listed = json.loads(body)
        except ValueError:
            return None
        if not isinstance(listed, dict):
            return None
        return sorted(str(bookie) for bookie in listed)

    def state_json(self, address: str | None = None) -> str | None:
        """GET /api/v1/bookie/state: the bookie's own view of itself (None: no answer).

        A local call a live bookie answers in milliseconds: a short timeout keeps a hook on a
        frozen or starting bookie short (the view check wakes the unit when it answers).
        ``address``: another bookie's (the pre-refresh check asks every bookie).
        """
        if address is not None and address != self._address:
            return self._http_get("/api/v1/bookie/state", timeout=STATE_TIMEOUT_S, host=address)
        return self._http_get("/api/v1/bookie/state", timeout=STATE_TIMEOUT_S)

    def set_read_only(self) -> bool:
        """PUT /api/v1/bookie/state/readonly: the bookie takes no new writes; False: no answer."""
        body = json.dumps({"readOnly": True})
        return self._http_put("/api/v1/bookie/state/readonly", body) is not None

    def _http_put(self, path: str, body: str) -> str | None:
        url = f"http://{self._address}:{HTTP_PORT}{path}"
        request = urllib.request.Request(
            url,
            data=body.encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.info("PUT %s failed: %s", url, exc)
            return None

    def _http_get(
        self, path: str, timeout: float = HTTP_TIMEOUT_S, host: str | None = None
    ) -> str | None:
        url = f"http://{host or self._address}:{HTTP_PORT}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.debug("GET %s failed: %s", url, exc)
            return None
