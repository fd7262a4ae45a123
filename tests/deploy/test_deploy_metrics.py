"""Prometheus and Grafana: every query parses and names a metric the code registers."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import promql_parser
import pytest
from prometheus_client import REGISTRY

from tests.deploy.deploy_support import APP_SERVICES, DEPLOY, compose, load_yaml

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


@pytest.mark.parametrize(("title", "expr"), dashboard_exprs())
def test_dashboard_query_names_existing_metrics(title: str, expr: str) -> None:
    unknown = metric_names(expr) - exposed_names() - SYNTHETIC
    assert unknown == set(), f"panel {title!r} queries metrics no service exports"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_names_existing_metrics(rule: dict[str, Any]) -> None:
    unknown = metric_names(rule["expr"]) - exposed_names() - SYNTHETIC
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
    uid = datasource["datasources"][0]["uid"]
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == uid, panel["title"]
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
    assert set(re.findall(r"\$__\w+", text)) <= set(GRAFANA_MACROS)
