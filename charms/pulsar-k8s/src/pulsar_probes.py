"""How the charm reaches its own brokers' web service: HTTP 8080, or HTTPS 8443 with the CA.

With a certificate and ``tls-plaintext-enabled=false`` the broker serves no plain web port
(``webServicePort`` empty: Pulsar's ``Optional.empty()``, no HTTP connector), so everything the
charm does itself goes over ``https://<pod stable name>:8443``, trusting the CA it holds (the
certificate names the pod's stable name, so the host name is checked, never skipped):

- the Pebble checks (alive, ready, and the view checks' state scripts): ``curl`` with
  ``--cacert`` (the apachepulsar/pulsar image installs curl); the token travels on curl's
  stdin (``-H @-``), never in an argument a process list shows;
- the admin REST calls (``pulsar_admin``): ``urllib`` with an ``ssl`` context built from the
  CA's PEM content;
- the Prometheus scrape job (``scheme: https`` and the CA).

Without TLS, or with plain text kept open, nothing changes: the bash ``/dev/tcp`` probes and
``http://...:8080`` (no dependency on curl then).

What the charm trusts for its own calls is ``PROBE_CA_PATH``: the provider's CA, plus the CA
it replaced. Pulsar re-reads a new certificate up to 60 s after it is pushed, so during a CA
rotation the broker still presents the old chain for a while; trusting only the new CA there
would fail every check (and Pebble would restart the broker). The older CA leaves the bundle at
the next rotation.

Pure functions only: typed inputs -> URLs, Pebble check fields, shell scripts.
"""

from __future__ import annotations

import shlex
import ssl
from dataclasses import dataclass, field
from typing import Any

from charms.pulsar_k8s.v0.tls import PULSAR_TLS_DIR
from pulsar_tls import WEB_SERVICE_PORT_TLS, BrokerTls

WEB_SERVICE_PORT = 8080
# The CAs the charm's checks and calls trust (public: CA certificates only).
PROBE_CA_PATH = f"{PULSAR_TLS_DIR}/probe-ca.pem"
# The checks' HTTP timeout (Pebble's check timeout is 3 s for the alive and ready checks).
CHECK_MAX_TIME_S = "2"


@dataclass(frozen=True)
class WebAccess:
    """Where the charm's own calls and checks reach a broker's web service.

    ``ca`` is the PEM content the charm trusts for HTTPS (the file ``ca_path`` in the pod).
    """

    tls: bool = False
    ca: str = field(default="", repr=False)
    ca_path: str = PROBE_CA_PATH

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def port(self) -> int:
        return WEB_SERVICE_PORT_TLS if self.tls else WEB_SERVICE_PORT

    def url(self, address: str) -> str:
        """``<scheme>://<address>:<port>`` (no trailing slash)."""
        return f"{self.scheme}://{address}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """Return a context trusting only the CA, host names checked (None: plain HTTP).

        Raises ``ssl.SSLError`` (a ``ValueError`` for empty content) when the CA is unusable.
        """
        if not self.tls:
            return None
        if not self.ca.strip():
            raise ValueError("no CA to trust")
        return ssl.create_default_context(cadata=self.ca)


PLAIN_WEB = WebAccess()


def web_access(tls: BrokerTls, ca: str | None) -> WebAccess:
    """HTTPS with the CA when the broker has TLS and plain text is closed; else plain HTTP."""
    if tls.enabled and not tls.plaintext and ca:
        return WebAccess(tls=True, ca=ca)
    return PLAIN_WEB


def plain_web_open(tls: BrokerTls) -> bool:
    """Whether the broker serves HTTP on 8080 (``webServicePort``)."""
    return not (tls.enabled and not tls.plaintext)


def _curl_status(web: WebAccess, url: str, max_time: str) -> list[str]:
    """Return a curl printing only the HTTP status (000: no answer, or the TLS failed)."""
    return [
        "curl",
        "-H",
        "@-",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        max_time,
        "--cacert",
        web.ca_path,
        url,
    ]


def alive_probe(address: str, web: WebAccess) -> dict[str, Any]:
    """Return the alive check's probe: GET /status.html (200 while the status file exists)."""
    url = f"{web.url(address)}/status.html"
    if not web.tls:
        return {"http": {"url": url}}
    # -f: exit non-zero on an HTTP error; a failed handshake or a refusal fails too.
    command = ["curl", "-sf", "-o", "/dev/null", "--max-time", CHECK_MAX_TIME_S]
    command += ["--cacert", web.ca_path, url]
    return {"exec": {"command": shlex.join(command), "user-id": 10000, "group": "root"}}


def authorized_get_script(
    address: str, web: WebAccess, path: str, token_path: str, max_time: str
) -> str:
    """Bash printing the HTTP status of ``GET path`` over HTTPS with the token file's token.

    The header goes to curl on stdin (``-H @-``); ``printf`` is a bash builtin, so the token
    is in no process's arguments.
    """
    curl = shlex.join(_curl_status(web, f"{web.url(address)}{path}", max_time))
    return (
        f"printf 'Authorization: Bearer %s\\n' \"$(cat {shlex.quote(token_path)} 2>/dev/null)\""
        f" | {curl} 2>/dev/null"
    )


def ready_check_command_tls(address: str, web: WebAccess, path: str, token_path: str) -> str:
    """Return the ready check over HTTPS: exit 0 only on HTTP 200."""
    get = authorized_get_script(address, web, path, token_path, CHECK_MAX_TIME_S)
    return shlex.join(["/bin/bash", "-c", f'[ "$({get})" = 200 ]'])


def state_script_tls(
    address: str, web: WebAccess, path: str, token_path: str, ready: str, down: str, timeout: str
) -> str:
    """Bash printing ``ready`` when ``GET path`` answers 200 over HTTPS, else ``down``."""
    get = authorized_get_script(address, web, path, token_path, timeout)
    return f'status=$({get}); case "$status" in 200) printf {ready};; *) printf {down};; esac'
