"""The cluster's metadata record (``/admin/v2/clusters/<name>``) names the TLS URLs once TLS is on.

``initialize-cluster-metadata`` wrote the record with the plain URLs only. Once the brokers
serve TLS the leader adds ``serviceUrlTls`` (``https://<Service>:8443``) and
``brokerServiceUrlTls`` (``pulsar+ssl://<Service>:6651``), which geo-replication and tools read;
without TLS it takes them out again. Level-triggered and idempotent: the leader records the TLS
URL it last wrote in the peer application databag, and only a difference makes it read the
record, compare, and update it (keeping every other field).
"""

from __future__ import annotations

import json
from typing import Any

from pulsar_admin import AdminResult, PulsarAdmin
from pulsar_tls import client_tls_endpoints

# Peer application databag: the brokerServiceUrlTls the record holds ("" or absent: none).
CLUSTER_TLS_URL_KEY = "cluster-tls-url"
SERVICE_URL_TLS = "serviceUrlTls"
BROKER_SERVICE_URL_TLS = "brokerServiceUrlTls"


def cluster_tls_urls(app_name: str, model_name: str, enabled: bool) -> dict[str, str]:
    """Return the TLS URLs the record should hold: the Service's, or none without TLS."""
    if not enabled:
        return {SERVICE_URL_TLS: "", BROKER_SERVICE_URL_TLS: ""}
    urls = client_tls_endpoints(app_name, model_name)
    return {SERVICE_URL_TLS: urls.web_service_url, BROKER_SERVICE_URL_TLS: urls.broker_service_url}


def updated_record(current: dict[str, Any], urls: dict[str, str]) -> dict[str, Any] | None:
    """Return the record to write (other fields kept), or None if it holds ``urls`` already."""
    if all((current.get(key) or "") == value for key, value in urls.items()):
        return None
    record = {key: value for key, value in current.items() if key not in urls}
    record.update({key: value for key, value in urls.items() if value})
    return record


def converge(admin: PulsarAdmin, cluster: str, urls: dict[str, str]) -> AdminResult:
    """Read the record, and update it only when its TLS URLs differ from ``urls``."""
    current = admin.get_cluster(cluster)
    if not current.ok:
        return current
    try:
        data = json.loads(current.body)
    except ValueError:
        return AdminResult(0, "the cluster record is not JSON")
    if not isinstance(data, dict):
        return AdminResult(0, "the cluster record is not a JSON object")
    record = updated_record(data, urls)
    if record is None:
        return current
    return admin.update_cluster(cluster, record)
