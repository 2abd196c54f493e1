"""The services' logs after the seed's flow: JSON lines that say which service, payment and message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SERVICES = ("intake", "scheduler", "executor", "webhook-dispatcher")
# What the supervisor writes into the log file itself when it starts a process (not the service's output).
SUPERVISOR_LINE = "=== "


def lines_of(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.startswith(SUPERVISOR_LINE)]


def records(path: Path) -> list[dict]:
    parsed = []
    for line in lines_of(path):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            parsed.append(value)
    return parsed


@pytest.mark.parametrize("service", SERVICES)
def test_every_structured_line_names_its_service(seed_flow, service: str) -> None:
    seed_flow.require_completed()
    found = records(seed_flow.stack.log_path(service))
    assert found, f"no JSON log lines from {service}"
    expected = "dispatcher" if service == "webhook-dispatcher" else service
    assert all(record.get("service") == expected for record in found)
    assert all("timestamp" in record and "level" in record and "event" in record for record in found)


@pytest.mark.parametrize("service", SERVICES)
def test_lines_about_the_payment_carry_its_id_and_the_message_id(seed_flow, service: str) -> None:
    seed_flow.require_completed()
    found = records(seed_flow.stack.log_path(service))
    about = [r for r in found if r.get("payment_id") == seed_flow.payment_id]
    assert about, f"{service} logged nothing with payment_id {seed_flow.payment_id}"
    if service != "intake":
        # Every line logged while handling a message carries the message id (bound by the consumer).
        assert all(r.get("message_id") for r in about if r.get("queue")), about
        assert any(r.get("message_id") for r in about)


def test_dispatcher_lines_about_a_webhook_carry_its_event_id(seed_flow) -> None:
    seed_flow.require_completed()
    found = records(seed_flow.stack.log_path("webhook-dispatcher"))
    assert any(r.get("event_id", "").startswith("evt_") and r.get("payment_id") for r in found)


@pytest.mark.parametrize("service", SERVICES)
def test_every_line_is_json(seed_flow, service: str) -> None:
    seed_flow.require_completed()
    plain = []
    for line in lines_of(seed_flow.stack.log_path(service)):
        try:
            json.loads(line)
        except ValueError:
            plain.append(line)
    assert plain == [], f"{len(plain)} plain-text lines, e.g. {plain[:3]}"
