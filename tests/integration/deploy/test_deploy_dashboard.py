"""deploy/grafana/recovery-dashboard.json: importable, datasource-agnostic, and built only on series that exist
(recovery_* defined in the workspace's code; rabbitmq_* from rabbitmq_prometheus per-object metrics)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from deploy_support import DEPLOY, load_json, series_not_defined

pytestmark = pytest.mark.integration

REQUIRED_SERIES = {
    "recovery_messages_consumed_total",
    "recovery_messages_published_total",
    "recovery_messages_dead_lettered_total",
    "recovery_handler_seconds_bucket",
    "recovery_timer_lateness_seconds_bucket",
    "recovery_timers_fired_total",
    "recovery_outbox_relayed_total",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
}
PROMQL_WORDS = {
    "sum",
    "by",
    "rate",
    "increase",
    "histogram_quantile",
    "clamp_min",
    "le",
    "queue",
    "result",
    "message_type",
    "purpose",
    "without",
    "max",
    "avg",
    "count",
    "on",
    "ignoring",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_json(DEPLOY / "grafana" / "recovery-dashboard.json")


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel["targets"]]


def series_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^]]*\]", "", without_labels)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {w for w in words - PROMQL_WORDS if w.startswith(("recovery_", "rabbitmq_"))}


def test_datasource_variable_and_every_query_uses_it(dashboard) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].strip()
    assert variables["queue"]["datasource"]["uid"] == "${datasource}"


def test_layout_is_importable(dashboard) -> None:
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        for target in panel.get("targets", []):
            assert re.fullmatch(r"[A-Z]", target["refId"])


def test_queries_are_balanced(dashboard) -> None:
    for expr in expressions(dashboard):
        stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
        for opening, closing in ("()", "{}", "[]"):
            assert stripped.count(opening) == stripped.count(closing), expr


def test_every_series_exists(dashboard) -> None:
    used = set().union(*(series_names(e) for e in expressions(dashboard)))
    assert REQUIRED_SERIES <= used, REQUIRED_SERIES - used
    assert series_not_defined(used) == [], "series the code does not define, or RabbitMQ does not export"
