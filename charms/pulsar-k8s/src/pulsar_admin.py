"""Small HTTP calls to a broker's web service (admin REST API). Errors are values, never raised.

With authentication on, every admin call carries ``Authorization: Bearer <admin token>``; the
token is never logged (``AdminResult`` holds only the status and the broker's reply).

Over HTTPS (the broker's plain text closed, pulsar_probes.WebAccess) every call verifies the
broker's chain against the CA the charm holds and checks the host name; never unverified.
"""

from __future__ import annotations

import json
import math
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulsar_probes import PLAIN_WEB, WebAccess

if TYPE_CHECKING:
    from pulsar_functions import FunctionSpec

DEFAULT_TIMEOUT = 3.0
ADMIN_TIMEOUT = 10.0
# Creating a function uploads its package to BookKeeper and waits for the worker's assignment.
FUNCTIONS_TIMEOUT = 30.0
NAMESPACE_ACTIONS = ("produce", "consume", "functions")


@dataclass(frozen=True)
class AdminResult:
    """One admin call's outcome: ``status`` 0 when nothing answered."""

    status: int
    body: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        if self.status == 0:
            return f"broker not reachable ({self.body})"
        detail = _reason(self.body)
        return f"HTTP {self.status}" + (f": {detail}" if detail else "")


def get(
    url: str,
    timeout: float = DEFAULT_TIMEOUT,
    token: str | None = None,
    web: WebAccess = PLAIN_WEB,
) -> tuple[int, str]:
    """``(status, body)``; status 0 when nothing answered (refused, timeout, DNS, TLS)."""
    result = request("GET", url, token=token, timeout=timeout, web=web)
    return result.status, result.body


def request(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    timeout: float = ADMIN_TIMEOUT,
    web: WebAccess = PLAIN_WEB,
) -> AdminResult:
    """One HTTP call with an optional JSON body and Bearer token; never raises."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    return _send(req, timeout, web)


def multipart_request(
    method: str,
    url: str,
    parts: list[tuple[str, str | None, str, bytes]],
    *,
    token: str | None = None,
    timeout: float = ADMIN_TIMEOUT,
    web: WebAccess = PLAIN_WEB,
) -> AdminResult:
    """One multipart/form-data call: parts are (name, filename, content type, bytes)."""
    boundary = f"pulsar-k8s-{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    headers = {
        "Accept": "application/json",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=b"".join(chunks), headers=headers, method=method)
    return _send(req, timeout, web)


def _send(req: urllib.request.Request, timeout: float, web: WebAccess = PLAIN_WEB) -> AdminResult:
    """Send; an HTTP error is a result with its status and body, a transport error status 0."""
    try:
        context = web.ssl_context()
    except (ssl.SSLError, ValueError) as exc:
        return AdminResult(0, f"the CA is not usable: {exc}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as response:
            return AdminResult(response.status, response.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        return AdminResult(exc.code, text)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return AdminResult(0, str(exc))


def broker_ready(
    address: str,
    timeout: float = DEFAULT_TIMEOUT,
    token: str | None = None,
    web: WebAccess = PLAIN_WEB,
) -> bool:
    """Return whether ``GET /admin/v2/brokers/ready`` answers 200 (broker serving topics)."""
    status, _ = get(f"{web.url(address)}/admin/v2/brokers/ready", timeout, token, web)
    return status == 200


def functions_worker_ready(
    address: str,
    timeout: float = DEFAULT_TIMEOUT,
    token: str | None = None,
    web: WebAccess = PLAIN_WEB,
) -> bool:
    """Return whether the in-broker functions worker has a leader (it accepts functions then)."""
    url = f"{web.url(address)}/admin/v2/worker/cluster/leader"
    status, _ = get(url, timeout, token, web)
    return status == 200


def wait_broker_ready(
    address: str,
    deadline_seconds: float,
    *,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], None] | None = None,
    token: str | None = None,
    web: WebAccess = PLAIN_WEB,
) -> bool:
    """Poll readiness for about ``deadline_seconds``; True as soon as it is ready.

    Bounded by a number of polls rather than a clock, so a stubbed sleep cannot spin forever.
    """
    pause = sleep or time.sleep
    polls = max(1, math.ceil(deadline_seconds / poll_seconds))
    for attempt in range(polls + 1):
        if broker_ready(address, token=token, web=web):
            return True
        if attempt < polls:
            pause(poll_seconds)
    return False


class PulsarAdmin:
    """The admin REST calls the charm makes, against one broker's web service."""

    def __init__(
        self,
        web_service_url: str,
        token: str,
        timeout: float = ADMIN_TIMEOUT,
        web: WebAccess = PLAIN_WEB,
    ):
        self._base = web_service_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._web = web

    def __repr__(self) -> str:  # never show the token
        return f"PulsarAdmin({self._base!r})"

    def _call(self, method: str, path: str, body: Any = None) -> AdminResult:
        return request(
            method,
            self._base + path,
            token=self._token,
            body=body,
            timeout=self._timeout,
            web=self._web,
        )

    # -- the cluster's own record ---------------------------------------------------------

    def get_cluster(self, cluster: str) -> AdminResult:
        return self._call("GET", f"/admin/v2/clusters/{_q(cluster)}")

    def update_cluster(self, cluster: str, data: dict[str, Any]) -> AdminResult:
        return self._call("POST", f"/admin/v2/clusters/{_q(cluster)}", dict(data))

    # -- tenants -------------------------------------------------------------------------

    def get_tenant(self, tenant: str) -> AdminResult:
        return self._call("GET", f"/admin/v2/tenants/{_q(tenant)}")

    def ensure_tenant(
        self, tenant: str, clusters: Iterable[str], admin_roles: Iterable[str] = ()
    ) -> AdminResult:
        """Create the tenant, or update it so it lists ``admin_roles`` and ``clusters``.

        Existing admin roles and clusters are kept (union), so two relations sharing a tenant
        never take each other's rights away.
        """
        wanted_roles = set(admin_roles)
        wanted_clusters = set(clusters)
        current = self.get_tenant(tenant)
        if current.ok:
            info = _json(current.body)
            roles = set(info.get("adminRoles") or [])
            allowed = set(info.get("allowedClusters") or [])
            if wanted_roles <= roles and wanted_clusters <= allowed:
                return current
            body = {
                "adminRoles": sorted(roles | wanted_roles),
                "allowedClusters": sorted(allowed | wanted_clusters),
            }
            return self._call("POST", f"/admin/v2/tenants/{_q(tenant)}", body)
        if current.status != 404:
            return current
        body = {"adminRoles": sorted(wanted_roles), "allowedClusters": sorted(wanted_clusters)}
        result = self._call("PUT", f"/admin/v2/tenants/{_q(tenant)}", body)
        return AdminResult(204, "") if result.status == 409 else result

    def remove_tenant_admin(self, tenant: str, role: str) -> AdminResult:
        """Take ``role`` out of the tenant's admin roles (no-op when absent or tenant gone)."""
        current = self.get_tenant(tenant)
        if current.status == 404:
            return AdminResult(204, "tenant gone")
        if not current.ok:
            return current
        info = _json(current.body)
        roles = list(info.get("adminRoles") or [])
        if role not in roles:
            return current
        body = {
            "adminRoles": sorted(r for r in roles if r != role),
            "allowedClusters": sorted(info.get("allowedClusters") or []),
        }
        return self._call("POST", f"/admin/v2/tenants/{_q(tenant)}", body)

    def create_tenant(
        self, tenant: str, clusters: Iterable[str], admin_roles: Iterable[str] = ()
    ) -> AdminResult:
        return self.ensure_tenant(tenant, clusters, admin_roles)

    # -- namespaces ----------------------------------------------------------------------

    def create_namespace(self, namespace: str) -> AdminResult:
        """PUT the namespace; 409 (it exists) counts as success."""
        result = self._call("PUT", f"/admin/v2/namespaces/{_ns(namespace)}")
        return AdminResult(204, "exists") if result.status == 409 else result

    def delete_namespace(self, namespace: str, force: bool = False) -> AdminResult:
        suffix = "?force=true" if force else ""
        return self._call("DELETE", f"/admin/v2/namespaces/{_ns(namespace)}{suffix}")

    def set_retention(self, namespace: str, minutes: int, size_mb: int) -> AdminResult:
        body = {"retentionTimeInMinutes": minutes, "retentionSizeInMB": size_mb}
        return self._call("POST", f"/admin/v2/namespaces/{_ns(namespace)}/retention", body)

    def set_backlog_quota(self, namespace: str, limit_mb: int) -> AdminResult:
        limit = -1 if limit_mb < 0 else limit_mb * 1024 * 1024
        body = {"limitSize": limit, "limitTime": -1, "policy": "producer_request_hold"}
        return self._call(
            "POST",
            f"/admin/v2/namespaces/{_ns(namespace)}/backlogQuota?backlogQuotaType=destination_storage",
            body,
        )

    # -- permissions ---------------------------------------------------------------------

    def grant(self, namespace: str, role: str, actions: Iterable[str]) -> AdminResult:
        """Set ``role``'s actions on the namespace to exactly ``actions``."""
        return self._call(
            "POST",
            f"/admin/v2/namespaces/{_ns(namespace)}/permissions/{_q(role)}",
            sorted(set(actions)),
        )

    def revoke(self, namespace: str, role: str) -> AdminResult:
        """Remove every action of ``role`` on the namespace; 404 (namespace gone) is fine."""
        result = self._call(
            "DELETE", f"/admin/v2/namespaces/{_ns(namespace)}/permissions/{_q(role)}"
        )
        return AdminResult(204, "namespace gone") if result.status == 404 else result

    def permissions(self, namespace: str) -> AdminResult:
        return self._call("GET", f"/admin/v2/namespaces/{_ns(namespace)}/permissions")

    # -- functions (the worker inside the brokers) ----------------------------------------

    def with_token(self, token: str | None) -> PulsarAdmin:
        """Return a client of the same broker with another role's token (None: this one)."""
        if token is None:
            return self
        return PulsarAdmin(self._base, token, self._timeout, self._web)

    def _function_path(self, key: str) -> str:
        return "/admin/v3/functions/" + "/".join(_q(p) for p in key.split("/"))

    def list_functions(self, namespace: str) -> AdminResult:
        return self._call("GET", f"/admin/v3/functions/{_ns(namespace)}")

    def function_status(self, key: str) -> AdminResult:
        return self._call("GET", self._function_path(key) + "/status")

    def create_function(self, spec: FunctionSpec, package: bytes) -> AdminResult:
        return self._upload("POST", spec, package)

    def update_function(self, spec: FunctionSpec, package: bytes) -> AdminResult:
        return self._upload("PUT", spec, package)

    def delete_function(self, key: str) -> AdminResult:
        return request(
            "DELETE",
            self._base + self._function_path(key),
            token=self._token,
            timeout=FUNCTIONS_TIMEOUT,
            web=self._web,
        )

    def _upload(self, method: str, spec: FunctionSpec, package: bytes) -> AdminResult:
        config = json.dumps(spec.function_config(), sort_keys=True).encode()
        return multipart_request(
            method,
            self._base + self._function_path(spec.key),
            [
                ("functionConfig", None, "application/json", config),
                ("data", spec.filename, "application/octet-stream", package),
            ],
            token=self._token,
            timeout=FUNCTIONS_TIMEOUT,
            web=self._web,
        )


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _ns(namespace: str) -> str:
    tenant, _, name = namespace.partition("/")
    return f"{_q(tenant)}/{_q(name)}"


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason(body: str) -> str:
    reason = _json(body).get("reason")
    if isinstance(reason, str):
        return reason
    return body.strip()[:200]
