"""COS (Canonical Observability Stack): metrics, dashboards and log forwarding for every charm.

Charmhub's ``prometheus_scrape``, ``grafana_dashboard`` and ``loki_push_api`` libraries cannot
be fetched here, so this library writes the same databag contracts itself, with ``cosl`` for
what it offers (Juju topology, alert rule loading with topology injection, dashboard encoding):

- ``metrics-endpoint`` (``prometheus_scrape``, provides). Leader, app databag: ``scrape_jobs``
  (one job, a static config per unit ``<unit fqdn>:<port>`` labelled ``juju_unit``; over HTTPS
  ``scheme: https`` and ``tls_config: {ca_file: <CA PEM content>}``, which prometheus-k8s writes
  to a file of its own: ``_process_tls_config`` in canonical/prometheus-k8s-operator
  ``src/charm.py``, commit 432c227d, and ``ALLOWED_KEYS`` of its ``prometheus_scrape`` library),
  ``scrape_metadata`` (the Juju topology) and ``alert_rules`` (``{"groups": [...]}`` from the
  charm's ``src/prometheus_alert_rules``, topology injected). Every unit, unit databag:
  ``prometheus_scrape_unit_address`` (its fqdn) and ``prometheus_scrape_unit_name``.
- ``grafana-dashboard`` (``grafana_dashboard``, provides). Leader, app databag ``dashboards``:
  ``{"templates": {"file:<stem>": {charm, content (LZMA+base64), juju_topology,
  inject_dropdowns, dashboard_alt_uid}}, "uuid": ...}`` from ``src/grafana_dashboards``. The
  uuid is derived from the content (the Charmhub library draws a random one on every write), so
  a reconcile that changes nothing writes nothing.
- ``logging`` (``loki_push_api``, requires). Each Loki unit's ``endpoint`` (``{"url": ...}``) is
  validated and becomes a Pebble log target (type loki, every service, topology labels) in a
  layer of its own, outside the services' restart inputs: adding or removing it restarts
  nothing. A target whose Loki unit left is disabled (``services: [-all]``), as Pebble layers
  cannot be deleted.

Also here: the workload version, read from the distribution's jar names (no JVM).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ops
import yaml
from charms.pulsar_k8s.v0 import statuses
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.validation import InvalidField, is_hostname, parse_json_object
from charms.pulsar_k8s.v0.workload import Workload
from cosl import DashboardPath40UID, JujuTopology, LZMABase64
from cosl.rules import AlertRules

LIBID = "c0a4e1f2b3d54e6f8a9b0c1d2e3f4a5b"
LIBAPI = 0
LIBPATCH = 2

logger = logging.getLogger(__name__)

METRICS_RELATION = "metrics-endpoint"
DASHBOARDS_RELATION = "grafana-dashboard"
LOGGING_RELATION = "logging"
RELATIONS = (METRICS_RELATION, DASHBOARDS_RELATION, LOGGING_RELATION)

RULES_DIR = "src/prometheus_alert_rules"
TOPOLOGY_PLACEHOLDER = "%%juju_topology%%"
DASHBOARDS_DIR = "src/grafana_dashboards"
LOG_LAYER_LABEL = "log-forwarding"

# Every charm runs the apachepulsar/pulsar image: the Pulsar version names this jar.
DISTRIBUTION_LIB = "/pulsar/lib"
VERSION_JAR_PATTERN = "org.apache.pulsar-pulsar-broker-common-*.jar"
_VERSION_JAR = re.compile(
    r"^org\.apache\.pulsar-pulsar-broker-common-([0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9.\-]*)\.jar$"
)
# Where the version last set is recorded (unit peer databag): set again only when it differs.
WORKLOAD_VERSION_KEY = "workload-version"

# A URL Pebble may send logs to: printable, no blank, quote, backslash, ``$`` or brackets.
_URL_CHARS = re.compile(r"^[A-Za-z0-9._~:/?#@!&()*+,;=%\-]+$")
_MAX_URL = 2048


@dataclass(frozen=True)
class MetricsEndpoint:
    """Where this charm's workload serves Prometheus metrics.

    ``scheme="https"`` with ``ca``: the CA's PEM content Prometheus verifies the targets with.
    """

    port: int
    path: str
    scheme: str = "http"
    ca: str = ""


# -- pure renderers -------------------------------------------------------------------------


def scrape_jobs(
    job_name: str, units: Mapping[str, str], endpoint: MetricsEndpoint
) -> list[dict[str, Any]]:
    """One scrape job: a static config per unit (``<address>:<port>``, labelled ``juju_unit``)."""
    job: dict[str, Any] = {
        "job_name": job_name,
        "metrics_path": endpoint.path,
        "static_configs": [
            {"targets": [f"{address}:{endpoint.port}"], "labels": {"juju_unit": name}}
            for name, address in sorted(units.items())
        ],
    }
    if endpoint.scheme == "https":
        # the targets are the units' stable names, which their certificates carry as SANs
        job["scheme"] = "https"
        job["tls_config"] = {"ca_file": endpoint.ca}
    return [job]


def alert_rules(rules_dir: Path, topology: JujuTopology) -> dict[str, Any]:
    """Load the charm's Prometheus rules (``*.rule``/``*.rules`` under ``rules_dir``).

    ``%%juju_topology%%`` becomes this application's matchers (model, model uuid, application)
    here: cosl's own injection needs the ``cos-tool`` binary, which a charm does not carry, and
    without it would leave ``up{}`` matching every application. cosl prefixes the group names
    with the topology and adds the topology labels to every rule.
    """
    rules = AlertRules(query_type="promql", topology=topology)
    files = sorted(rules_dir.rglob("*")) if rules_dir.is_dir() else []
    for path in files:
        if path.suffix not in (".rule", ".rules") or not path.is_file():
            continue
        text = path.read_text().replace(TOPOLOGY_PLACEHOLDER, topology.alert_expression_str)
        content = yaml.safe_load(text)
        if isinstance(content, dict):
            rules.add(content, group_name=path.stem, group_name_prefix=topology.identifier)
    return {"groups": rules.as_dict().get("groups", [])}


def dashboard_templates(
    dashboards_dir: Path, charm_name: str, topology: Mapping[str, str]
) -> dict[str, Any]:
    """``{"file:<stem>": template}`` as Charmhub's grafana_dashboard provider writes them."""
    templates: dict[str, Any] = {}
    if not dashboards_dir.is_dir():
        return templates
    for path in sorted(dashboards_dir.glob("*.json")):
        templates[f"file:{path.stem}"] = {
            "charm": charm_name,
            "content": LZMABase64.compress(path.read_text()),
            "juju_topology": dict(topology),
            "inject_dropdowns": True,
            "dashboard_alt_uid": DashboardPath40UID.generate(charm_name, path.name),
        }
    return templates


def dashboards_data(templates: Mapping[str, Any]) -> str:
    """Render the ``dashboards`` value; its uuid digests the templates (stable if unchanged)."""
    digest = hashlib.sha256(json.dumps(templates, sort_keys=True).encode()).hexdigest()
    stable_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, digest))
    return json.dumps({"templates": dict(templates), "uuid": stable_uuid}, sort_keys=True)


def parse_loki_url(source: str, raw: str | None) -> str:
    """Validate a Loki unit's ``endpoint`` (``{"url": "http(s)://host[:port]/path"}``)."""
    url = parse_json_object(source, "endpoint", raw).get("url")
    if not isinstance(url, str) or not url or len(url) > _MAX_URL:
        raise InvalidField(source, "endpoint", "has no url")
    if not _URL_CHARS.match(url):
        raise InvalidField(source, "endpoint", "url has characters a URL cannot hold")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidField(source, "endpoint", "url is not a URL") from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not is_hostname(host) or port == 0:
        raise InvalidField(source, "endpoint", "url must be http(s)://<host>[:<port>]/<path>")
    return url


def log_target_name(loki_unit: str) -> str:
    return loki_unit.replace("/", "-")


def log_forwarding_layer(
    endpoints: Mapping[str, str],
    labels: Mapping[str, str],
    current: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Log targets for every Loki unit; targets in ``current`` but gone are disabled."""
    targets: dict[str, Any] = {}
    for unit, url in sorted(endpoints.items()):
        targets[log_target_name(unit)] = {
            "override": "replace",
            "type": "loki",
            "location": url,
            "services": ["all"],
            "labels": dict(labels),
        }
    for name, spec in sorted(current.items()):
        if name in targets or not spec.get("location"):
            continue
        targets[name] = {
            "override": "replace",
            "type": spec.get("type") or "loki",
            "location": spec["location"],
            "services": ["-all"],
        }
    return {"summary": "log forwarding to Loki", "log-targets": targets}


def log_labels(topology: JujuTopology) -> dict[str, str]:
    """Return the labels Charmhub's log forwarder sets (Pebble adds ``pebble_service``)."""
    return {
        "product": "Juju",
        "charm": topology.charm_name or "",
        "juju_model": topology.model,
        "juju_model_uuid": topology.model_uuid,
        "juju_application": topology.application,
        "juju_unit": topology.unit or "",
    }


def distribution_version(names: list[str]) -> str | None:
    """Return the Pulsar version named by the distribution's jars (None: no jar matches)."""
    versions = sorted({m.group(1) for m in map(_VERSION_JAR.match, names) if m})
    return versions[-1] if versions else None


# -- the charm side -------------------------------------------------------------------------


class Observability:
    """Converge the three COS relations and the workload version for one charm."""

    def __init__(
        self,
        charm: ops.CharmBase,
        metrics: MetricsEndpoint | Callable[[], MetricsEndpoint],
        peer_relation: str,
        address_of: Callable[[str], str],
    ):
        self._charm = charm
        self._metrics = metrics
        self._peer = peer_relation
        self._address_of = address_of

    @property
    def topology(self) -> JujuTopology:
        return JujuTopology.from_charm(self._charm)

    def reconcile(self, workload: Workload, status: ops.StatusBase) -> ops.StatusBase:
        """Converge after the charm's own reconcile; return the status that wins.

        A blocked charm (bad config) touches nothing, so nothing is done then; a COS problem
        (refused Loki data, Pebble gone) shows only when the charm is otherwise active.
        """
        if isinstance(status, ops.BlockedStatus):
            return status
        cos = statuses.guarded(lambda: self.converge(workload))
        if isinstance(status, ops.ActiveStatus) and not isinstance(cos, ops.ActiveStatus):
            return cos
        return status

    def converge(self, workload: Workload) -> ops.StatusBase:
        """Publish metrics and dashboards, forward logs, set the version; never raises on data.

        Refused Loki data raises ``InvalidField`` (``statuses.guarded`` shows it), after the
        metrics and dashboards are published; nothing in the container is changed then.
        """
        self._publish_metrics()
        self._publish_dashboards()
        if not workload.can_connect():
            return ops.ActiveStatus()
        self._set_workload_version(workload)
        endpoints = self.loki_endpoints()
        layer = log_forwarding_layer(endpoints, log_labels(self.topology), workload.log_targets())
        if layer["log-targets"] and workload.add_layer(LOG_LAYER_LABEL, layer):
            logger.info("log forwarding to %d Loki unit(s)", len(endpoints))
        return ops.ActiveStatus()

    # -- metrics-endpoint -----------------------------------------------------------------

    def _unit_addresses(self) -> dict[str, str]:
        names = {self._charm.unit.name}
        peer = self._charm.model.get_relation(self._peer)
        if peer is not None:
            names.update(unit.name for unit in peer.units)
        return {name: self._address_of(name) for name in names}

    def _publish_metrics(self) -> None:
        relations = self._charm.model.relations[METRICS_RELATION]
        if not relations:
            return
        topology = self.topology
        unit_data = {
            "prometheus_scrape_unit_address": self._address_of(self._charm.unit.name),
            "prometheus_scrape_unit_name": self._charm.unit.name,
        }
        app_data: dict[str, str | None] = {}
        if self._charm.unit.is_leader():
            metrics = self._metrics
            endpoint = metrics if isinstance(metrics, MetricsEndpoint) else metrics()
            jobs = scrape_jobs(self._charm.app.name, self._unit_addresses(), endpoint)
            rules = alert_rules(self._charm.charm_dir / RULES_DIR, topology)
            app_data = {
                "scrape_jobs": json.dumps(jobs, sort_keys=True),
                "scrape_metadata": json.dumps(topology.as_dict(), sort_keys=True),
                "alert_rules": json.dumps(rules, sort_keys=True),
            }
        for relation in relations:
            self._write(relation, unit_data, app_data)

    # -- grafana-dashboard ----------------------------------------------------------------

    def _publish_dashboards(self) -> None:
        relations = self._charm.model.relations[DASHBOARDS_RELATION]
        if not relations or not self._charm.unit.is_leader():
            return
        model = self._charm.model
        topology = {
            "model": model.name,
            "model_uuid": model.uuid,
            "application": self._charm.app.name,
            "unit": self._charm.unit.name,
        }
        charm_name = self.topology.charm_name or self._charm.app.name
        templates = dashboard_templates(
            self._charm.charm_dir / DASHBOARDS_DIR, charm_name, topology
        )
        for relation in relations:
            self._write(relation, {}, {"dashboards": dashboards_data(templates)})

    def _write(
        self,
        relation: ops.Relation,
        unit_data: Mapping[str, str | None],
        app_data: Mapping[str, str | None],
    ) -> None:
        try:
            if unit_data:
                write_if_different(relation.data[self._charm.unit], unit_data)
            if app_data:
                write_if_different(relation.data[self._charm.app], app_data)
        except ops.ModelError as exc:  # e.g. the relation is going away
            logger.info("cannot write %s relation data: %s", relation.name, exc)

    # -- logging --------------------------------------------------------------------------

    def loki_endpoints(self) -> dict[str, str]:
        """Loki unit name -> push URL, over every ``logging`` relation (refused: InvalidField)."""
        endpoints: dict[str, str] = {}
        for relation in self._charm.model.relations[LOGGING_RELATION]:
            for unit in sorted(relation.units, key=lambda u: u.name):
                raw = relation.data[unit].get("endpoint")
                if raw:
                    endpoints[unit.name] = parse_loki_url(LOGGING_RELATION, raw)
        return endpoints

    # -- workload version -----------------------------------------------------------------

    def _set_workload_version(self, workload: Workload) -> None:
        version = distribution_version(workload.file_names(DISTRIBUTION_LIB, VERSION_JAR_PATTERN))
        if version is None:
            return
        peer = self._charm.model.get_relation(self._peer)
        recorded = peer.data[self._charm.unit] if peer is not None else None
        if recorded is not None and recorded.get(WORKLOAD_VERSION_KEY) == version:
            return
        self._charm.unit.set_workload_version(version)
        if recorded is not None:
            write_if_different(recorded, {WORKLOAD_VERSION_KEY: version})
