"""Prometheus and Grafana: every query parses and names a metric the code defines; the
dashboard fits any installation (data source and services are template variables)."""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import promql_parser
import pytest
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)

from tests.deploy.deploy_support import APP_SERVICES, DEPLOY, ROOT, compose, load_yaml

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sms-platform.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
METRICS_MODULES = [
    "sms_events.metrics",
    "gateway.metrics",
    "scheduler.metrics",
    "dispatcher.metrics",
    "reporter.metrics",
]
# Series Prometheus makes itself for every target (not exported by any process).
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Grafana's macros, replaced by a plausible value so that the PromQL parser sees valid syntax.
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
# Grafana's value of a variable's "All" option (in the dashboard's variables, not in queries).
GRAFANA_ALL = "$__all"
# Every query is limited to the services chosen in the dashboard's `service` variable.
SERVICE_MATCHER = ("job", "=~", "$service")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SRC_TREES = [*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src")]
_PROMETHEUS_TYPES = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
    "Enum": "stateset",
}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


def _series(name: str, kind: str) -> set[str]:
    base = name.removesuffix("_total") if kind == "counter" else name
    return {base + suffix for suffix in _SUFFIXES[kind]}


@cache
def defined_metrics() -> dict[str, str]:
    """Name -> type of every prometheus_client metric the services' code defines, parsed from
    the source: a call of prometheus_client's Counter, Gauge, ... with a literal name."""
    found: dict[str, str] = {}
    for path in sorted(p for tree in SRC_TREES for p in tree.rglob("*.py")):
        module = ast.parse(path.read_text(), str(path))
        kinds = {
            alias.asname or alias.name: _PROMETHEUS_TYPES[alias.name]
            for node in ast.walk(module)
            if isinstance(node, ast.ImportFrom) and node.module == "prometheus_client"
            for alias in node.names
            if alias.name in _PROMETHEUS_TYPES
        }
        for node in ast.walk(module):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in kinds
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found[node.args[0].value] = kinds[node.func.id]
    return found


@cache
def default_collector_names() -> frozenset[str]:
    """process_* and python_*: what prometheus_client's default collectors add to /metrics."""
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    names: set[str] = set()
    for family in registry.collect():
        names |= _series(family.name, family.type) | {s.name for s in family.samples}
    return frozenset(names)


@cache
def code_names() -> frozenset[str]:
    """Every series name the services expose, from their source and the default collectors."""
    parsed = {n for name, kind in defined_metrics().items() for n in _series(name, kind)}
    return frozenset(parsed | default_collector_names())


@cache
def exposed_names() -> frozenset[str]:
    """Every series name the services expose on /metrics: their metrics modules plus the
    default process_* and python_* collectors, all in the default registry."""
    for module in METRICS_MODULES:
        importlib.import_module(module)
    names = set()
    for family in REGISTRY.collect():
        # Counters are described without `_total`; the exposition adds the suffixes.
        names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
        names |= {sample.name for sample in family.samples}
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (by name or by a __name__ matcher)."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    names.add(matcher.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (le) (rate(a_bucket{job="x"}[$__rate_interval])) / on (job) up offset 5m'
        ' and max_over_time(b[1h:5m]) or {__name__="c"}'
    )
    assert metric_names(expr) == {"a_bucket", "up", "b", "c"}


def test_registry_exposes_the_suffixed_names() -> None:
    names = exposed_names()
    assert "dispatcher_provider_calls_total" in names
    assert "dispatcher_provider_latency_seconds_bucket" in names
    assert "scheduler_due_backlog" in names
    assert "process_resident_memory_bytes" in names
    assert "dispatcher_provider_calls" not in names  # the bare counter name is never exposed


def test_the_metrics_parsed_from_the_code_are_the_ones_registered() -> None:
    # The parse finds every definition (none built with a computed name), and METRICS_MODULES
    # imports every module that defines one.
    assert "reporter_messages" in defined_metrics()
    assert defined_metrics()["dispatcher_provider_calls_total"] == "counter"
    assert code_names() == exposed_names() | default_collector_names()


@pytest.mark.parametrize(("title", "expr"), dashboard_exprs())
def test_dashboard_query_names_existing_metrics(title: str, expr: str) -> None:
    unknown = metric_names(expr) - code_names() - SYNTHETIC
    assert unknown == set(), f"panel {title!r} queries metrics no service exports"


def _selectors(expr: str) -> list[Any]:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    found: list[Any] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


@pytest.mark.parametrize(("title", "expr"), dashboard_exprs())
def test_every_dashboard_query_is_limited_to_the_chosen_services(title: str, expr: str) -> None:
    for selector in _selectors(expr):
        matchers = {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}
        assert any(
            (name, value) == (SERVICE_MATCHER[0], SERVICE_MATCHER[2]) and "Re" in op
            for name, op, value in matchers
        ), f"panel {title!r}: {selector.name} has no {SERVICE_MATCHER}"


def _all_datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _all_datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _all_datasource_refs(item)


def test_the_dashboard_hard_codes_no_datasource_uid() -> None:
    dashboard = _dashboard()
    refs = list(_all_datasource_refs(dashboard["panels"]))
    refs += list(_all_datasource_refs(dashboard["templating"]))
    assert refs and all(ref == DATASOURCE for ref in refs), {json.dumps(r) for r in refs}
    # No uid anywhere but the dashboard's own and the variable: not in annotations or links.
    uids = re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text())
    assert set(uids) == {dashboard["uid"], "${datasource}"}


def test_the_data_source_and_the_services_are_template_variables() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    service = variables["service"]
    assert service["type"] == "query" and service["datasource"] == DATASOURCE
    # The services are whatever jobs this Prometheus scrapes, not names fixed here.
    assert service["query"]["query"] == "label_values(up, job)"
    assert service["multi"] and service["includeAll"] and service["allValue"] == ".*"


def _rows() -> dict[str, list[dict[str, Any]]]:
    """Each row's title -> the panels below it (the rows are not collapsed)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for panel in _dashboard()["panels"]:
        if panel["type"] == "row":
            assert not panel["collapsed"] and not panel["panels"], panel["title"]
            current = rows.setdefault(panel["title"], [])
        else:
            current.append(panel)
    return rows


def test_the_mailing_progress_row_shows_sent_failed_and_pending() -> None:
    panels = _rows()["Mailing progress"]
    targets = [t for panel in panels for t in panel["targets"]]
    legends = {t["legendFormat"]: t["expr"] for t in targets}
    for legend, status in (("Sent", "DL"), ("Failed", "ND"), ("Pending", "SC")):
        assert f'status="{status}"' in legends[legend] and "reporter_messages" in legends[legend]
    assert any(p["type"] == "bargauge" and p["fieldConfig"]["defaults"]["max"] == 1 for p in panels)
    # The statuses named are the reporter's own (one definition: reporter.domain.Status).
    from reporter.domain import Status

    named = set(re.findall(r'status=~?"([A-Z|]+)"', " ".join(t["expr"] for t in targets)))
    assert {s for group in named for s in group.split("|")} <= {s.value for s in Status}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_names_existing_metrics(rule: dict[str, Any]) -> None:
    unknown = metric_names(rule["expr"]) - code_names() - SYNTHETIC
    assert unknown == set(), f"alert {rule['alert']} queries metrics no service exports"


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])
    exprs = " ".join(rule["expr"] for rule in rules)
    # The cases the platform must page on.
    assert "dispatcher_provider_calls_total" in exprs  # provider error rate
    assert "sms_outbox_backlog" in exprs and "scheduler_due_backlog" in exprs  # backlogs
    assert "scheduler_handover_lateness_seconds_bucket" in exprs  # lag
    assert "sms_outbox_oldest_unpublished_age_seconds" in exprs  # outbox stuck
    assert any(rule["expr"].strip() == "up == 0" for rule in rules)  # a service down


def test_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    datasource = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    assert datasource["datasources"][0]["type"] == "prometheus"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == DATASOURCE, panel["title"]
    titles = " ".join(panel["title"] for panel in panels)
    for topic in ("Delivered", "Delivery rate", "Provider latency", "Provider errors", "backlog"):
        assert topic in titles, topic


def test_dashboard_provider_serves_the_mounted_folder() -> None:
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/sms-platform.yml")
    path = provider["providers"][0]["options"]["path"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts


def test_prometheus_scrapes_every_service_by_its_compose_name() -> None:
    config = load_yaml(PROMETHEUS)
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name, (_module, port) in APP_SERVICES.items():
        assert targets[name] == f"{name}:{port}", name
    rule_files = config["rule_files"]
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert [f"./prometheus/alerts.yml:{rule_files[0]}:ro"] == [
        m for m in mounts if m.startswith("./prometheus/alerts.yml")
    ]


def test_grafana_variables_are_known_macros() -> None:
    text = DASHBOARD.read_text()
    assert set(re.findall(r"\$__\w+", text)) <= {*GRAFANA_MACROS, GRAFANA_ALL}
