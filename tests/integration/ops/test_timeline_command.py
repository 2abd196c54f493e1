"""`recovery timeline` reads the payment's records from the services' database after the seed's flow."""

from __future__ import annotations

import json

import pytest

from recovery_cli.main import main


@pytest.fixture
def database_env(seed_flow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URL", seed_flow.isolation.mongodb_url)
    monkeypatch.setenv("MONGODB_DATABASE", seed_flow.isolation.mongodb_database)


def test_json_timeline_shows_intent_recovery_attempts_and_webhooks(
    seed_flow, database_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_flow.require_completed()
    assert main(["timeline", seed_flow.payment_id, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["intent"]["status"] == "succeeded"
    assert document["recovery"]["status"] == "succeeded"
    assert document["recovery"]["attempts"][-1]["outcome"] == "succeeded"
    assert [a["status"] for a in document["attempts"]] == ["succeeded"]
    assert document["webhook_events"][0]["event_type"] == "payment_succeeded"
    sources = [entry["source"] for entry in document["timeline"]]
    assert {"intake", "scheduler", "executor", "webhook-dispatcher"} <= set(sources)


def test_text_timeline_is_sectioned(seed_flow, database_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    seed_flow.require_completed()
    assert main(["timeline", seed_flow.payment_id]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"payment {seed_flow.payment_id}")
    for heading in ("intent (intake)", "recovery (scheduler)", "attempts (executor)", "webhook events", "timeline"):
        assert heading in text


def test_an_unknown_payment_exits_3(database_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["timeline", "12345_pay_unknown"]) == 3
    assert "no records" in capsys.readouterr().out
