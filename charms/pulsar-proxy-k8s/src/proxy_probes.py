"""How the charm reaches its own proxy's web service: HTTP 8080, or HTTPS 8443 with the CA.

With this unit's certificate and ``tls-plaintext-enabled=false`` the proxy serves no plain web
port (``webServicePort`` empty: no HTTP connector), so the charm's own probes of
``/status.html`` go over ``https://<pod stable name>:8443``, checking the chain against the CA
and the host name (the certificate names the pod): the Pebble checks and the view check with
``curl --cacert`` (the apachepulsar/pulsar image ships curl), the charm's own probe with
Python's ``ssl``, the Prometheus scrape job with ``scheme: https`` and the CA. Without TLS, or
with plain text kept open, nothing changes (HTTP checks, bash ``/dev/tcp``, no curl).

The trusted CAs are ``PROBE_CA_PATH``: the provider's CA and the one it replaced, because the
proxy re-reads a new certificate up to 60 s after it is pushed and presents the old chain
meanwhile (the broker charm's pulsar_probes does the same for the brokers).

Pure functions only.
"""

from __future__ import annotations

import shlex
import ssl
from dataclasses import dataclass, field
from typing import Any

from charms.pulsar_k8s.v0.tls import PULSAR_TLS_DIR, ServingTls

WEB_SERVICE_PORT = 8080
WEB_SERVICE_PORT_TLS = 8443
STATUS_PATH = "/status.html"
PROBE_CA_PATH = f"{PULSAR_TLS_DIR}/probe-ca.pem"
CHECK_MAX_TIME_S = "2"


@dataclass(frozen=True)
class ProxyWeb:
    """Where the charm's own probes reach the proxy's web service (``ca``: PEM content)."""

    tls: bool = False
    ca: str = field(default="", repr=False)

    @property
    def port(self) -> int:
        return WEB_SERVICE_PORT_TLS if self.tls else WEB_SERVICE_PORT

    def status_url(self, address: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{address}:{self.port}{STATUS_PATH}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """Return a context trusting only the CA, host names checked (None: plain HTTP)."""
        if not self.tls:
            return None
        if not self.ca.strip():
            raise ValueError("no CA to trust")
        return ssl.create_default_context(cadata=self.ca)


PLAIN_WEB = ProxyWeb()


def plain_web_open(tls: ServingTls) -> bool:
    """Whether the proxy serves HTTP on 8080 (``webServicePort``)."""
    return not (tls.enabled and not tls.plaintext)


def proxy_web(tls: ServingTls, ca: str | None) -> ProxyWeb:
    """HTTPS with the CA when the proxy has TLS and plain text is closed; else plain HTTP."""
    if not plain_web_open(tls) and ca:
        return ProxyWeb(tls=True, ca=ca)
    return PLAIN_WEB


def status_probe(address: str, web: ProxyWeb) -> dict[str, Any]:
    """Return a Pebble check's probe of ``/status.html`` (http, or an exec of curl)."""
    if not web.tls:
        return {"http": {"url": web.status_url(address)}}
    command = ["curl", "-sf", "-o", "/dev/null", "--max-time", CHECK_MAX_TIME_S]
    command += ["--cacert", PROBE_CA_PATH, web.status_url(address)]
    return {"exec": {"command": shlex.join(command), "user-id": 10000, "group": "root"}}


def status_state_script_tls(
    address: str, web: ProxyWeb, ready: str, down: str, max_time: str
) -> str:
    """Bash printing ``ready`` when ``/status.html`` answers 200 over HTTPS, else ``down``."""
    curl = shlex.join(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            max_time,
            "--cacert",
            PROBE_CA_PATH,
            web.status_url(address),
        ]
    )
    return (
        f"status=$({curl} 2>/dev/null); "
        f'case "$status" in 200) printf {ready};; *) printf {down};; esac'
    )
