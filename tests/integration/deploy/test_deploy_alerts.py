"""deploy/prometheus/recovery-alerts.yaml: a Prometheus rule file whose every expression parses as PromQL (the
promql-parser package: the Rust parser GreptimeDB uses), is built only on series that exist (recovery_* defined in the
workspace's code, rabbitmq_* from rabbitmq_prometheus), has a severity, a summary and a runbook, and is explained in
docs/operations.md. No Prometheus runs here: whether an alert fires is not tested, only that Prometheus would load
and evaluate each rule on real series."""

from __future__ import annotations

import re
from typing import Any

import promql_parser
import pytest
from deploy_support import DEPLOY, REPO, duration_seconds, series_not_defined
from yaml import safe_load

pytestmark = pytest.mark.integration

RULES = DEPLOY / "prometheus" / "recovery-alerts.yaml"
SEVERITIES = {"critical", "warning", "info"}
# What every alert must watch: the failure modes docs/operations.md tells operators to act on.
WATCHED = {
    "rabbitmq_queue_consumers",
    "recovery_messages_dead_lettered_total",
    "recovery_messages_held_total",
    "recovery_timer_lateness_seconds_bucket",
    "recovery_audit_write_failures_total",
    "recovery_record_back_tries_total",
}


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    document = safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names)) and all(names)
    return [rule for group in document["groups"] for rule in group["rules"]]


def selectors(node: Any) -> set[str]:
    """The metric names an expression's vector selectors read."""
    found = {node.name} if type(node).__name__ == "VectorSelector" and node.name else set()
    for attribute in ("lhs", "rhs", "expr", "args", "vector_selector", "param"):
        child = getattr(node, attribute, None)
        for part in child if isinstance(child, list) else [child]:
            if part is not None and type(part).__module__.startswith("promql_parser"):
                found |= selectors(part)
    return found


def test_every_rule_is_an_alert_with_its_severity_summary_and_runbook(rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Recovery[A-Z][A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip()
        assert rule["annotations"]["runbook"] == "docs/operations.md#alerts"
        if "for" in rule:
            assert duration_seconds(rule["for"]) >= 60, rule["alert"]


def test_every_expression_parses_and_reads_only_series_that_exist(rules: list[dict[str, Any]]) -> None:
    used: set[str] = set()
    for rule in rules:
        try:
            parsed = promql_parser.parse(rule["expr"])
        except ValueError as error:
            pytest.fail(f"{rule['alert']}: {error}")
        # An alert fires on a comparison's result: the expression must end in one.
        assert type(parsed).__name__ == "BinaryExpr" and str(parsed.op) in {">", "<", "==", ">=", "<="}, rule["alert"]
        read = selectors(parsed)
        assert read, rule["alert"]
        used |= read
    assert WATCHED <= used, WATCHED - used
    assert series_not_defined(used) == [], "series the code does not define, or RabbitMQ does not export"


def test_a_broken_expression_or_an_unknown_series_would_be_caught() -> None:
    """The checks above can fail: the parser refuses what Prometheus would, and an invented series is found."""
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (queue) (rate(recovery_messages_consumed_total[5m]) > 0")
    invented = selectors(promql_parser.parse("increase(recovery_no_such_series_total[5m]) > 0"))
    assert series_not_defined(invented) == ["recovery_no_such_series_total"]


def test_operations_explains_every_alert(rules: list[dict[str, Any]]) -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    section = operations.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    for rule in rules:
        assert f"`{rule['alert']}`" in section, f"docs/operations.md, Alerts, does not explain {rule['alert']}"
