"""The proxy's container (the core ``Workload``) and its one HTTP probe.

Pebble failures raise ``WorkloadError`` (the reconcile waits); the probe answers False when the
proxy does not answer.
"""

from __future__ import annotations

import logging
import ssl
import urllib.error
import urllib.request

import ops
from charms.pulsar_k8s.v0.workload import Workload
from proxy_probes import PLAIN_WEB, ProxyWeb
from proxy_render import PRIVATE_PATHS, SERVICE, STATUS_FILE_PATH

logger = logging.getLogger(__name__)

# A local call a live proxy answers in milliseconds: a short timeout keeps a hook on a frozen
# or starting proxy short (the view check wakes the unit when it answers).
STATUS_TIMEOUT_S = 1.0


class ProxyWorkload(Workload):
    def __init__(self, container: ops.Container, address: str):
        super().__init__(container, private_paths=sorted(PRIVATE_PATHS))
        self._address = address

    def proxy_running(self) -> bool:
        return self.is_running(SERVICE)

    def start_proxy(self) -> None:
        """Start with the status file in place (status.html answers 200 only then)."""
        self.push({STATUS_FILE_PATH: "OK\n"})
        # Not running before: no hook waits for the JVM (its checks say when it serves).
        self.replan(wait=False)
        if not self.proxy_running():
            self.start(SERVICE, wait=False)

    def restart_proxy(self) -> None:
        self.push({STATUS_FILE_PATH: "OK\n"})
        self.restart(SERVICE)

    def stop_proxy(self) -> None:
        self.stop(SERVICE)

    def answers(self, web: ProxyWeb = PLAIN_WEB) -> bool:
        """GET /status.html answers 200 (over HTTPS verified against the CA with ``web``)."""
        url = web.status_url(self._address)
        try:
            context = web.ssl_context()
            with urllib.request.urlopen(
                url, timeout=STATUS_TIMEOUT_S, context=context
            ) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError, ssl.SSLError) as exc:
            logger.debug("GET %s failed: %s", url, exc)
            return False
