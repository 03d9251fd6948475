"""The proxy's "view" check: a Pebble check that fails while the charm's view is stale.

Juju raises ``pebble-check-failed``/``-recovered`` only when a check changes state, and a
readiness check that passes from its first run raises nothing. This check compares the proxy's
live state (``GET /status.html``: ``ready`` or ``down``) with what the charm last recorded in
``VIEW_PATH``; it fails as soon as they differ, so the charm is woken by a real event when the
proxy it started answers (or stops answering), and reports it.
"""

from __future__ import annotations

from typing import Any

from charms.pulsar_k8s.v0 import view_check
from charms.pulsar_k8s.v0.view_check import record_content, recorded_state
from proxy_probes import PLAIN_WEB, WEB_SERVICE_PORT, ProxyWeb, status_state_script_tls

VIEW_CHECK = "proxy-view"
VIEW_LAYER_LABEL = "proxy-view"
VIEW_PATH = f"{view_check.VIEW_DIR}/proxy-state"
STATUS_PATH = "/status.html"
READY, DOWN = "ready", "down"
# Below the check's 1 s timeout, so a frozen proxy reads as "down" rather than timing out.
_READ_TIMEOUT_S = "0.7"
# curl's whole call, TLS handshake included, still inside the check's 1 s timeout
_TLS_TIMEOUT_S = "0.9"


def proxy_state(answers: bool) -> str:
    return READY if answers else DOWN


def state_script(address: str, port: int = WEB_SERVICE_PORT, web: ProxyWeb = PLAIN_WEB) -> str:
    """Bash that prints whether ``GET /status.html`` answers 200 (``ready``/``down``).

    Plain HTTP: bash's /dev/tcp, no curl; HTTPS (plain text closed): curl trusting the CA.
    """
    if web.tls:
        return status_state_script_tls(address, web, READY, DOWN, _TLS_TIMEOUT_S)
    return (
        f"status=$( (exec 3<>/dev/tcp/{address}/{port} && "
        f'printf "GET {STATUS_PATH} HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n" "{address}" >&3 && '
        f"IFS= read -r -t {_READ_TIMEOUT_S} -u 3 line; printf '%s' \"$line\") 2>/dev/null); "
        f'case "$status" in *" 200 "*) printf {READY};; *) printf {DOWN};; esac'
    )


def view_layer(address: str, web: ProxyWeb = PLAIN_WEB) -> dict[str, Any]:
    """Return the layer holding only the proxy's view check (outside the restart inputs)."""
    return view_check.view_layer(
        "pulsar-proxy-k8s view check", VIEW_CHECK, state_script(address, web=web), VIEW_PATH
    )


__all__ = ["DOWN", "READY", "VIEW_CHECK", "VIEW_PATH", "record_content", "recorded_state"]
