"""COS relations of the broker charm (the shared ``observability`` library, seen from a charm).

metrics-endpoint and grafana-dashboard databags as Charmhub's libraries write them (validated
against the ``prometheus_scrape`` schema), Pebble log-targets for ``logging`` (added, refused,
disabled), the workload version from the distribution's jar, and nothing written twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ops
import pytest
from charms.pulsar_k8s.v0 import observability
from charms.pulsar_k8s.v0.validation import InvalidField
from charms.pulsar_k8s.v0.workload import Workload
from cosl import JujuTopology, LZMABase64
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from ops import testing

REPO = Path(__file__).resolve().parents[4]
SCHEMA = json.loads(
    (REPO / "tests/interface-schemas/prometheus_scrape/v0/provider.json").read_text()
)
MODEL = testing.Model(name="pulsar", uuid="6a2cf7a3-5bb4-4ec0-8d0a-2d7b3c1e4f50")
FQDN = "pulsar-k8s-{n}.pulsar-k8s-endpoints.pulsar.svc.cluster.local"
LOKI_URL = "http://loki-0.loki-endpoints.cos.svc.cluster.local:3100/loki/api/v1/push"


def validate(part: str, data: Mapping[str, str]) -> None:
    """Validate a databag against a schema part, and each JSON field against its contentSchema."""
    definition = dict(SCHEMA["$defs"][part])
    if part == "UnitDataModel":
        # Juju drops a key set to "" and nothing here sits behind an ingress: no path key.
        definition["required"] = [
            k for k in definition["required"] if k != "prometheus_scrape_unit_path"
        ]
    Draft202012Validator({"$defs": SCHEMA["$defs"], **definition}).validate(dict(data))
    for key, spec in definition["properties"].items():
        if "contentSchema" in spec and key in data:
            content = {"$defs": SCHEMA["$defs"], **spec["contentSchema"]}
            Draft202012Validator(content).validate(json.loads(data[key]))


def container(plan_layers: dict | None = None, jar: str | None = None, tmp: Path | None = None):
    mounts = {}
    if jar is not None and tmp is not None:
        lib = tmp / "lib"
        lib.mkdir(exist_ok=True)
        (lib / jar).write_text("")
        mounts["lib"] = testing.Mount(location="/pulsar/lib", source=lib)
    return testing.Container("pulsar", can_connect=True, layers=plan_layers or {}, mounts=mounts)


def peers(*others: int) -> testing.PeerRelation:
    return testing.PeerRelation("cluster", peers_data={n: {} for n in others})


def plan_of(state: testing.State) -> dict[str, Any]:
    return dict(state.get_container("pulsar").plan.to_dict())


def run(ctx: testing.Context, *relations, leader=True, cont=None, event=None) -> testing.State:
    state = testing.State(
        leader=leader,
        model=MODEL,
        relations=list(relations),
        containers=[cont or container()],
    )
    return ctx.run(event or ctx.on.update_status(), state)


# -- metrics-endpoint -------------------------------------------------------------------------


def test_leader_publishes_scrape_jobs_for_every_unit(ctx: testing.Context) -> None:
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    out = run(ctx, metrics, peers(1, 2))
    rel = out.get_relation(metrics.id)
    validate("ApplicationDataModel", rel.local_app_data)
    validate("UnitDataModel", rel.local_unit_data)
    (job,) = json.loads(rel.local_app_data["scrape_jobs"])
    assert job["metrics_path"] == "/metrics/"
    assert job["static_configs"] == [
        {"targets": [f"{FQDN.format(n=n)}:8080"], "labels": {"juju_unit": f"pulsar-k8s/{n}"}}
        for n in (0, 1, 2)
    ]
    metadata = json.loads(rel.local_app_data["scrape_metadata"])
    assert metadata["model"] == "pulsar" and metadata["application"] == "pulsar-k8s"
    assert metadata["model_uuid"] == MODEL.uuid and metadata["charm_name"] == "pulsar-k8s"
    assert "groups" in json.loads(rel.local_app_data["alert_rules"])
    assert rel.local_unit_data["prometheus_scrape_unit_address"] == FQDN.format(n=0)
    assert rel.local_unit_data["prometheus_scrape_unit_name"] == "pulsar-k8s/0"


def test_non_leader_writes_only_its_unit_data(ctx: testing.Context) -> None:
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    out = run(ctx, metrics, peers(1), leader=False)
    rel = out.get_relation(metrics.id)
    assert dict(rel.local_app_data) == {}
    assert rel.local_unit_data["prometheus_scrape_unit_name"] == "pulsar-k8s/0"


def test_second_reconcile_writes_nothing(ctx: testing.Context) -> None:
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    dashboards = testing.Relation("grafana-dashboard", remote_app_name="grafana")
    first = run(ctx, metrics, dashboards, peers(1))
    again = ctx.run(ctx.on.update_status(), first)
    for relation in (metrics, dashboards):
        assert again.get_relation(relation.id).local_app_data == (
            first.get_relation(relation.id).local_app_data
        )
        assert again.get_relation(relation.id).local_unit_data == (
            first.get_relation(relation.id).local_unit_data
        )


def test_alert_rules_get_the_topology(tmp_path: Path) -> None:
    (tmp_path / "x.rules").write_text(
        "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up{%%juju_topology%%} == 0\n"
        "    for: 1m\n    labels: {severity: critical}\n    annotations: {summary: down}\n"
    )
    topology = JujuTopology("m", MODEL.uuid, "app", "app/0", "charm")
    rules = observability.alert_rules(tmp_path, topology)
    (group,) = rules["groups"]
    (rule,) = group["rules"]
    assert rule["expr"] == (
        f'up{{juju_model="m", juju_model_uuid="{MODEL.uuid}", juju_application="app"}} == 0'
    )
    assert rule["labels"]["juju_application"] == "app"
    Draft202012Validator(
        {"$defs": SCHEMA["$defs"], **SCHEMA["$defs"]["AlertRulesModel"]}
    ).validate(rules)


# -- grafana-dashboard ------------------------------------------------------------------------


def test_dashboards_are_encoded_like_charmhub(tmp_path: Path) -> None:
    (tmp_path / "pulsar.json").write_text('{"title": "Pulsar"}')
    topology = {"model": "m", "model_uuid": MODEL.uuid, "application": "a", "unit": "a/0"}
    templates = observability.dashboard_templates(tmp_path, "pulsar-k8s", topology)
    assert list(templates) == ["file:pulsar"]
    template = templates["file:pulsar"]
    assert json.loads(LZMABase64.decompress(template["content"])) == {"title": "Pulsar"}
    assert template["charm"] == "pulsar-k8s" and template["juju_topology"] == topology
    assert template["inject_dropdowns"] is True and template["dashboard_alt_uid"]
    data = json.loads(observability.dashboards_data(templates))
    assert data["templates"] == templates
    assert observability.dashboards_data(templates) == observability.dashboards_data(templates)


def test_dashboards_published_by_the_leader_only(ctx: testing.Context) -> None:
    dashboards = testing.Relation("grafana-dashboard", remote_app_name="grafana")
    out = run(ctx, dashboards, peers())
    assert "templates" in json.loads(out.get_relation(dashboards.id).local_app_data["dashboards"])
    out = run(ctx, dashboards, peers(), leader=False)
    assert dict(out.get_relation(dashboards.id).local_app_data) == {}


# -- logging ----------------------------------------------------------------------------------


def logging_relation(endpoint: str | None) -> testing.Relation:
    data = {0: {"endpoint": endpoint}} if endpoint is not None else {}
    return testing.Relation("logging", remote_app_name="loki", remote_units_data=data)


def test_loki_endpoint_becomes_a_pebble_log_target(ctx: testing.Context) -> None:
    out = run(ctx, logging_relation(json.dumps({"url": LOKI_URL})), peers())
    targets = plan_of(out)["log-targets"]
    assert targets == {
        "loki-0": {
            "override": "replace",
            "type": "loki",
            "location": LOKI_URL,
            "services": ["all"],
            "labels": {
                "product": "Juju",
                "charm": "pulsar-k8s",
                "juju_model": "pulsar",
                "juju_model_uuid": MODEL.uuid,
                "juju_application": "pulsar-k8s",
                "juju_unit": "pulsar-k8s/0",
            },
        }
    }
    layer = out.get_container("pulsar").layers[observability.LOG_LAYER_LABEL]
    assert not layer.services, "log forwarding restarts nothing: no service in its layer"


@pytest.mark.parametrize(
    "endpoint",
    [
        "not json",
        json.dumps(["list"]),
        json.dumps({"url": 3}),
        json.dumps({}),
        json.dumps({"url": "ftp://loki:3100/push"}),
        json.dumps({"url": "http://lo ki:3100/push"}),
        json.dumps({"url": "http://loki:3100/push\nINJ"}),
        json.dumps({"url": "http://loki:${HOME}/push"}),
        json.dumps({"url": 'http://loki:3100/"push'}),
        json.dumps({"url": "http://loki:99999/push"}),
        json.dumps({"url": "http:///push"}),
    ],
)
def test_bad_loki_endpoint_waits_naming_the_relation(endpoint: str) -> None:
    ctx = testing.Context(ActiveCharm, meta=ACTIVE_META)
    out = ctx.run(
        ctx.on.update_status(),
        testing.State(relations=[logging_relation(endpoint)], containers=[container()]),
    )
    assert isinstance(out.unit_status, testing.WaitingStatus)
    assert out.unit_status.message.startswith("logging relation: endpoint ")
    assert out.unit_status.message.endswith("; waiting for valid data")
    assert observability.LOG_LAYER_LABEL not in out.get_container("pulsar").layers


def test_bad_loki_endpoint_does_not_hide_a_charm_problem(ctx: testing.Context) -> None:
    out = run(ctx, logging_relation("not json"), peers())
    assert out.unit_status == testing.WaitingStatus("waiting for a bookkeeper relation")


class ActiveCharm(ops.CharmBase):
    """A charm whose own reconcile is always active: what COS alone makes of the status."""

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self.cos = observability.Observability(
            self, observability.MetricsEndpoint(8080, "/metrics"), "cluster", lambda u: u
        )
        framework.observe(self.on.update_status, self._reconcile)

    def _reconcile(self, _: ops.EventBase) -> None:
        workload = Workload(self.unit.get_container("pulsar"))
        self.unit.status = self.cos.reconcile(workload, ops.ActiveStatus())


ACTIVE_META = {
    "name": "active",
    "containers": {"pulsar": {}},
    "peers": {"cluster": {"interface": "x"}},
    "requires": {"logging": {"interface": "loki_push_api"}},
    "provides": {
        "metrics-endpoint": {"interface": "prometheus_scrape"},
        "grafana-dashboard": {"interface": "grafana_dashboard"},
    },
}


def test_removed_loki_target_is_disabled(ctx: testing.Context) -> None:
    first = run(ctx, logging_relation(json.dumps({"url": LOKI_URL})), peers())
    cont = first.get_container("pulsar")
    out = run(ctx, peers(), cont=cont)
    target = plan_of(out)["log-targets"]["loki-0"]
    assert target["services"] == ["-all"] and target["location"] == LOKI_URL
    layers = out.get_container("pulsar").layers
    again = run(ctx, peers(), cont=out.get_container("pulsar"))
    assert again.get_container("pulsar").layers == layers, "disabling twice adds nothing"


def test_no_logging_relation_adds_no_layer(ctx: testing.Context) -> None:
    out = run(ctx, peers())
    assert observability.LOG_LAYER_LABEL not in out.get_container("pulsar").layers


@given(st.text(max_size=60))
def test_parse_loki_url_refuses_or_returns_a_safe_url(url: str) -> None:
    try:
        parsed = observability.parse_loki_url("logging", json.dumps({"url": url}))
    except InvalidField as exc:
        assert str(exc).startswith("logging relation: endpoint ")
        return
    assert parsed == url and parsed.startswith(("http://", "https://"))
    assert not any(c in parsed for c in " \n\r\t\"'\\${}")


# -- workload version -------------------------------------------------------------------------


def test_workload_version_from_the_distribution(ctx: testing.Context, tmp_path: Path) -> None:
    cont = container(jar="org.apache.pulsar-pulsar-broker-common-3.3.9.jar", tmp=tmp_path)
    peer = peers()
    out = run(ctx, peer, cont=cont)
    assert out.workload_version == "3.3.9"
    assert out.get_relation(peer.id).local_unit_data[observability.WORKLOAD_VERSION_KEY] == "3.3.9"


def test_workload_version_set_only_when_it_differs(ctx: testing.Context, tmp_path: Path) -> None:
    cont = container(jar="org.apache.pulsar-pulsar-broker-common-3.3.9.jar", tmp=tmp_path)
    peer = testing.PeerRelation(
        "cluster", local_unit_data={observability.WORKLOAD_VERSION_KEY: "3.3.9"}
    )
    out = run(ctx, peer, cont=cont)
    assert out.workload_version == "", "already recorded: application-version-set not called"


def test_distribution_version() -> None:
    names = [
        "org.apache.pulsar-pulsar-broker-common-3.3.9.jar",
        "org.apache.pulsar-pulsar-common-3.3.9.jar",
    ]
    assert observability.distribution_version(names) == "3.3.9"
    assert observability.distribution_version(["x.jar"]) is None
    bad = "org.apache.pulsar-pulsar-broker-common-3.3.9$(x).jar"
    assert observability.distribution_version([bad]) is None


def test_bad_config_touches_nothing(ctx: testing.Context) -> None:
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    state = testing.State(
        leader=True,
        model=MODEL,
        config={"cluster-name": "bad name!"},
        relations=[metrics, logging_relation(json.dumps({"url": LOKI_URL})), peers()],
        containers=[container()],
    )
    out = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(out.unit_status, ops.BlockedStatus | testing.BlockedStatus)
    assert dict(out.get_relation(metrics.id).local_app_data) == {}
    assert observability.LOG_LAYER_LABEL not in out.get_container("pulsar").layers
