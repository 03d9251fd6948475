"""Every PromQL expression the charms ship: alert rules and dashboard panel targets.

The charms ship Prometheus alert rules (``charms/<charm>/src/prometheus_alert_rules/*.rules``)
and Grafana dashboards (``charms/<charm>/src/grafana_dashboards/*.json``). Both contain
placeholders that COS fills in: ``%%juju_topology%%`` in rules (cosl's ``AlertRules`` replaces it
with the application's Juju topology matchers) and Grafana variables in dashboards
(``$juju_model``, ``$__rate_interval``, ...). This module reads them all and substitutes the
placeholders so each query runs on a plain Prometheus:

- :func:`all_expressions` for the rig (a real Prometheus scraping the real cluster evaluates every
  one of them). The dashboards select each component by the ``juju_charm`` label that COS's
  scrape jobs carry (``pulsar-zookeeper-k8s``, ``bookkeeper-k8s``, ``pulsar-k8s``), so
  Prometheus's targets need that label;
- :func:`metric_names` for the unit test that checks every metric name against the real
  expositions in ``tests/metrics-fixtures/``;
- :func:`substitute_topology` for the ``promtool test rules`` unit tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

CHARMS = ("pulsar-zookeeper-k8s", "bookkeeper-k8s", "pulsar-k8s")
RULES_DIR = "src/prometheus_alert_rules"
DASHBOARDS_DIR = "src/grafana_dashboards"
TOPOLOGY_PLACEHOLDER = "%%juju_topology%%"

DASHBOARD_DEFAULTS = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "5m",
    "__range_s": "300",
}
"""Grafana's built-in variables, as a plain Prometheus query needs them."""


def rule_files(repo_root: Path) -> list[Path]:
    """Every alert rule file of every charm (what cosl loads: ``.rule``/``.rules``)."""
    files: list[Path] = []
    for charm in CHARMS:
        directory = repo_root / "charms" / charm / RULES_DIR
        files += sorted(p for p in directory.glob("*") if p.suffix in (".rule", ".rules"))
    return files


def dashboard_files(repo_root: Path) -> list[Path]:
    """Every Grafana dashboard of every charm."""
    files: list[Path] = []
    for charm in CHARMS:
        files += sorted((repo_root / "charms" / charm / DASHBOARDS_DIR).glob("*.json"))
    return files


def load_rules(path: Path) -> list[dict[str, Any]]:
    """The rules (alerting and recording) of one Prometheus rule file."""
    data = yaml.safe_load(path.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def substitute_topology(expr: str, topology: Mapping[str, str] | None = None) -> str:
    """Fill ``%%juju_topology%%`` as cosl does: with the topology's label matchers, or, with no
    topology, by removing it (and the comma after it)."""
    if not topology:
        return re.sub(r"%%juju_topology%%,?", "", expr)
    matchers = ",".join(f'{k}="{v}"' for k, v in topology.items())
    return expr.replace(TOPOLOGY_PLACEHOLDER, matchers)


def substitute_dashboard_variables(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables (``$name``, ``${name}``, ``${name:fmt}``, ``[[name]]``).

    Built-in interval variables get :data:`DASHBOARD_DEFAULTS`; any other variable (topology,
    namespace, ...) gets ``values[name]``, else ``.*``: the dashboards use them in ``=~``
    matchers only, so ``.*`` selects everything.
    """
    table = {**DASHBOARD_DEFAULTS, **(values or {})}

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return table.get(name, ".*")

    pattern = r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)"
    return re.sub(pattern, value, expr)


def dashboard_targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title / refId, expr) of every Prometheus target, rows' nested panels included."""

    def panels(items: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield f"{panel.get('title', '?')} [{target.get('refId', '?')}]", target["expr"]


COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")


def alert_value(expr: str) -> str:
    """The value an alert condition compares: the expression left of its last comparison
    operator outside any parentheses, braces, brackets or string (``a / b > 0.9`` -> ``a / b``).

    A healthy cluster gives the condition no series (the alert is quiet) but does give the
    value, so the value is what a query against the real workload checks. An expression without
    a top-level comparison is returned whole.
    """
    depth, quote, last = 0, "", -1
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and expr.startswith(COMPARISONS, i):
            last = i
            if expr[i : i + 2] in COMPARISONS:
                i += 1
        i += 1
    return " ".join((expr[:last] if last >= 0 else expr).split())


def all_expressions(repo_root: Path) -> list[tuple[str, str]]:
    """(label, PromQL) of every rule and every dashboard target, for a plain Prometheus.

    Placeholders are filled so each runs there: topology removed, dashboard variables ``.*``
    (intervals: :data:`DASHBOARD_DEFAULTS`). An alert rule contributes its value
    (:func:`alert_value`: the condition without its threshold), which returns a series on a
    healthy cluster; the full conditions are checked by promtool and loaded as rules.
    """
    result: list[tuple[str, str]] = []
    for path in rule_files(repo_root):
        for rule in load_rules(path):
            expr = substitute_topology(rule["expr"])
            if "alert" in rule:
                label = f"{path.relative_to(repo_root)}: {rule['alert']} (value)"
                result.append((label, alert_value(expr)))
            else:
                result.append((f"{path.relative_to(repo_root)}: {rule['record']}", expr))
    for path in dashboard_files(repo_root):
        dashboard = json.loads(path.read_text())
        for title, expr in dashboard_targets(dashboard):
            label = f"{path.relative_to(repo_root)}: {title}"
            result.append((label, substitute_dashboard_variables(expr)))
    return result


KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
        "atan2",
    }
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    Strings, label matchers (``{...}``), ranges and subqueries (``[...]``), grouping and
    matching label lists (``by (...)``, ``on (...)``, ``group_left (...)``...), function names
    (an identifier followed by ``(``), keywords and numbers are not metric names.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    clauses = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)"
    text = re.sub(clauses, " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


EXPR_TOPOLOGY_KEYS = ("juju_model", "juju_model_uuid", "juju_application")
"""The topology labels cosl puts into rule expressions (never the unit, nor the charm)."""


def rules_as_cosl_gives_them(path: Path, topology: Mapping[str, str]) -> dict[str, Any]:
    """The rule file as cosl's ``AlertRules`` hands it to Prometheus for ``topology``
    (``juju_model``, ``juju_model_uuid``, ``juju_application``, ``juju_charm``): every rule gets
    the topology labels it lacks, and ``%%juju_topology%%`` becomes the expression matchers."""
    data = yaml.safe_load(path.read_text())
    matchers = {k: v for k, v in topology.items() if k in EXPR_TOPOLOGY_KEYS}
    for group in data["groups"]:
        for rule in group["rules"]:
            labels = rule.setdefault("labels", {})
            for key, value in topology.items():
                labels.setdefault(key, value)
            rule["expr"] = substitute_topology(rule["expr"], matchers)
    return data
