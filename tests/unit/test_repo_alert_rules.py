"""The charms' alert rules and dashboards: valid PromQL, real metric names, tested, documented.

- ``promtool check rules`` on every rule file (as cosl hands it to Prometheus);
- ``promtool test rules`` on every charm's ``tests/alert_rules/*.test.yaml``; every alert has a
  case where it fires and one where it does not;
- every dashboard expression parses (``promtool check rules`` on a file of recording rules);
- every metric a rule or panel names is in the real expositions (``tests/metrics-fixtures``);
- every alert is in ``docs/reference/alerts.md``.

promtool comes with Debian's ``prometheus`` package (``.ci/run`` installs it under CI). Without
it the promtool tests skip locally and fail under ``CI``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.prom_expressions import (
    CHARMS,
    alert_value,
    all_expressions,
    dashboard_files,
    dashboard_targets,
    load_rules,
    metric_names,
    rule_files,
    rules_as_cosl_gives_them,
    substitute_dashboard_variables,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "metrics-fixtures"
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
"""Series Prometheus itself adds to every target."""
TEST_TOPOLOGY = {
    "juju_model": "pulsar",
    "juju_model_uuid": "00000000-0000-4000-8000-000000000000",
}
"""The model the promtool tests' input series belong to (see each test file's header)."""


def promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    reason = "promtool not found: apt-get install prometheus (see docs/how-to/run-tests.md)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def alerts(charm: str) -> list[str]:
    directory = ROOT / "charms" / charm
    return [
        rule["alert"]
        for path in rule_files(ROOT)
        if path.is_relative_to(directory)
        for rule in load_rules(path)
        if "alert" in rule
    ]


def exposed_metric_names() -> set[str]:
    names = set()
    for path in FIXTURES.glob("*.prom"):
        for line in path.read_text().splitlines():
            if line and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def cosl_rule_dir(charm: str, tmp_path: Path) -> Path:
    """The charm's rule files as cosl gives them (test topology), plus its promtool tests."""
    topology = {**TEST_TOPOLOGY, "juju_application": charm, "juju_charm": charm}
    directory = ROOT / "charms" / charm
    for path in rule_files(ROOT):
        if path.is_relative_to(directory):
            rules = rules_as_cosl_gives_them(path, topology)
            (tmp_path / path.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    for test in sorted((directory / "tests" / "alert_rules").glob("*.test.yaml")):
        shutil.copy(test, tmp_path / test.name)
    return tmp_path


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("charm", CHARMS)
def test_every_charm_ships_rules_and_a_dashboard(charm: str):
    assert alerts(charm), f"{charm} ships no alert rule"
    assert any(p.is_relative_to(ROOT / "charms" / charm) for p in dashboard_files(ROOT))


@pytest.mark.parametrize("charm", CHARMS)
def test_promtool_check_rules(charm: str, tmp_path: Path):
    tool = promtool()
    directory = cosl_rule_dir(charm, tmp_path)
    files = sorted(p.name for p in directory.glob("*.rules"))
    result = run([tool, "check", "rules", *files], directory)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("charm", CHARMS)
def test_promtool_test_rules(charm: str, tmp_path: Path):
    tool = promtool()
    directory = cosl_rule_dir(charm, tmp_path)
    tests = sorted(p.name for p in directory.glob("*.test.yaml"))
    assert tests, f"charms/{charm}/tests/alert_rules has no *.test.yaml"
    result = run([tool, "test", "rules", *tests], directory)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("charm", CHARMS)
def test_every_alert_has_a_firing_and_a_quiet_case(charm: str):
    firing, quiet = set(), set()
    for test_file in (ROOT / "charms" / charm / "tests" / "alert_rules").glob("*.test.yaml"):
        for test in yaml.safe_load(test_file.read_text())["tests"]:
            for check in test.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    for alert in alerts(charm):
        assert alert in firing, f"{alert}: no promtool case where it fires"
        assert alert in quiet, f"{alert}: no promtool case where it stays quiet"


def test_every_dashboard_expression_parses(tmp_path: Path):
    tool = promtool()
    rules = [
        {"record": f"dashboard:expression_{n}", "expr": expr}
        for n, (_, expr) in enumerate(all_expressions(ROOT))
    ]
    (tmp_path / "all.rules").write_text(
        yaml.safe_dump({"groups": [{"name": "all", "rules": rules}]})
    )
    result = run([tool, "check", "rules", "all.rules"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_name_is_exported_by_pulsar():
    exposed = exposed_metric_names() | PROMETHEUS_OWN
    conditions = [
        (f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"])
        for path in rule_files(ROOT)
        for rule in load_rules(path)
    ]
    expressions = conditions + all_expressions(ROOT)
    assert len(expressions) > 20
    unknown = []
    for label, expr in expressions:
        names = metric_names(expr)
        assert names, f"{label}: no metric name found in {expr!r}"
        unknown += [f"{label}: {name}" for name in sorted(names - exposed)]
    assert not unknown, "metrics not in tests/metrics-fixtures/*.prom:\n" + "\n".join(unknown)


def test_fixtures_come_from_the_pulsar_version_the_charms_run():
    version = (ROOT / "PULSAR_VERSION").read_text().strip()
    exposition = (FIXTURES / "broker-0.prom").read_text()
    assert f'pulsar_version_info{{cluster="pulsar",version="{version}"' in exposition, (
        "tests/metrics-fixtures was captured from another Pulsar version: capture it again "
        "(tests/metrics-fixtures/README.md)"
    )


@pytest.mark.parametrize("path", dashboard_files(ROOT), ids=lambda p: p.name)
def test_dashboard_follows_cos_conventions(path: Path):
    dashboard = json.loads(path.read_text())
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert len(names) == len(set(names)), f"{path.name}: duplicate template variables"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["prometheusds"]["type"] == "datasource"
    assert variables["prometheusds"]["query"] == "prometheus"
    for name in ("juju_model", "juju_model_uuid", "juju_application", "juju_unit"):
        # as the grafana_dashboard library injects them: "All" is `.*`
        assert variables[name]["allValue"] == ".*", f"{path.name}: {name}"
    charm = path.parents[2].name
    targets = list(dashboard_targets(dashboard))
    assert targets
    for title, expr in targets:
        assert 'juju_model=~"$juju_model"' in expr, f"{path.name} {title}: not filtered by model"
        # "All" applications is `.*`: the charm label keeps each panel on its component
        assert 'juju_charm="' in expr, f"{path.name} {title}: not filtered by charm"
        assert path.name == "pulsar-service-levels.json" or f'juju_charm="{charm}"' in expr
        used = set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval", "__interval"}
        assert used <= set(variables), f"{path.name} {title}: unknown variables {used}"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${prometheusds}", f"{panel['title']}"
            assert panel.get("description"), f"{path.name} {panel['title']}: no description"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_service_level_dashboard_shows_the_service_levels():
    path = ROOT / "charms/pulsar-k8s/src/grafana_dashboards/pulsar-service-levels.json"
    exprs = [e for _, e in dashboard_targets(json.loads(path.read_text()))]
    text = "\n".join(exprs)
    for quantile in ("0.5", "0.95", "0.99"):
        assert f'quantile="{quantile}"' in text
    for metric in ("pulsar_in_messages_total", "pulsar_out_messages_total", "pulsar_msg_backlog"):
        assert any(metric in e and "by (namespace)" in e for e in exprs), metric
    assert "up{" in text and "pulsar_ml_AddEntryErrors" in text


def test_every_alert_is_in_the_reference():
    page = (ROOT / "docs" / "reference" / "alerts.md").read_text()
    missing = [a for charm in CHARMS for a in alerts(charm) if f"`{a}`" not in page]
    assert not missing, f"docs/reference/alerts.md does not describe {missing}"


def test_every_alert_tells_the_way_out():
    for path in rule_files(ROOT):
        for rule in load_rules(path):
            if "alert" not in rule:
                continue
            assert rule.get("for"), f"{rule['alert']}: no `for`"
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert "Way out" in rule["annotations"]["description"], rule["alert"]
            assert "%%juju_topology%%" in rule["expr"], f"{rule['alert']}: no topology filter"


# The PromQL helpers themselves.


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{juju_model=~".*"} == 0', {"up"}),
        (
            'sum by (namespace) (rate(pulsar_in_messages_total{a="b"}[1m]))',
            {"pulsar_in_messages_total"},
        ),
        ("sum(rate(x_total[5m] offset 5m)) by (juju_unit, le)", {"x_total"}),
        ('(count(bookie_SERVER_STATUS{a="1"} == 1) or vector(0)) < 2', {"bookie_SERVER_STATUS"}),
        ("a / on (instance) group_left (area) b > 1e3", {"a", "b"}),
        ('histogram_quantile(0.99, sum by (le) (rate(h_bucket{x="by (y)"}[5m])))', {"h_bucket"}),
        ("absent(synced_followers) or max(x) + 1 <= bool max(y)", {"synced_followers", "x", "y"}),
    ],
)
def test_metric_names(expr: str, names: set[str]):
    assert metric_names(expr) == names


def test_dashboard_variables_are_substituted():
    expr = 'rate(x{juju_model=~"$juju_model",ns=~"${namespace}"}[$__rate_interval]) [[juju_unit]]'
    assert substitute_dashboard_variables(expr) == 'rate(x{juju_model=~".*",ns=~".*"}[1m]) .*'
    assert substitute_dashboard_variables("$__rate_interval", {"__rate_interval": "2m"}) == "2m"


@pytest.mark.parametrize(
    ("condition", "value"),
    [
        ("up{} == 0", "up{}"),
        ('a{x="<=",y=~"a|>"} / b > bool 0.9', 'a{x="<=",y=~"a|>"} / b'),
        ("absent(x) or (max(x) + 1) * 2\n  <= max(q)", "absent(x) or (max(x) + 1) * 2"),
        ("(count(s == 1) or vector(0)) < 2", "(count(s == 1) or vector(0))"),
        ("rate(x[5m])", "rate(x[5m])"),
    ],
)
def test_alert_value(condition: str, value: str):
    assert alert_value(condition) == value


def test_alert_rules_contribute_their_values():
    expressions = dict(all_expressions(ROOT))
    label = "charms/bookkeeper-k8s/src/prometheus_alert_rules/bookkeeper.rules: BookieDown (value)"
    assert expressions[label] == "up{}"
