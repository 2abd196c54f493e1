"""The timeline view: a payment's records from the four owners, in time order, readable and JSON-ready."""

from __future__ import annotations

import json
from datetime import datetime

from recovery_cli.timeline import PaymentTimeline, render_json, render_text

PAYMENT = "12345_pay_1"


def _at(second: int) -> datetime:
    return datetime(2026, 1, 1, 0, 0, second)


def _timeline() -> PaymentTimeline:
    return PaymentTimeline(
        payment_id=PAYMENT,
        intent={
            "_id": PAYMENT,
            "status": "succeeded",
            "merchant_id": "m1",
            "snapshot": {"created_at": "2026-01-01T00:00:00Z", "amount": 2250, "currency": "USD"},
        },
        recovery={
            "_id": PAYMENT,
            "status": "succeeded",
            "algorithm": "cascading",
            "plan": None,
            "attempts": [{"number": 1, "at": _at(3), "outcome": "declined", "decline_code": "insufficient_funds"}],
            "history": [
                {"at": _at(1), "what": "attempt_planned", "reason": "cascading ladder step 1/15", "attempt_number": 1},
                {"at": _at(9), "what": "ended", "reason": "attempt 2 succeeded"},
            ],
        },
        attempts=[
            {"attempt_number": 2, "status": "succeeded", "started_at": _at(7), "settled_at": _at(8), "token": "pm_1"},
        ],
        webhook_events=[
            {
                "event_id": "evt_1",
                "event_type": "payment_succeeded",
                "delivery_attempt": "initial_attempt",
                "status": "delivered",
                "created_at": _at(10),
                "body": b"{...}",
                "response": {"status_code": 200},
            }
        ],
    )


def test_entries_come_in_time_order_from_every_owner() -> None:
    entries = _timeline().entries()
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert [e.source for e in entries] == [
        "intake",
        "scheduler",
        "executor",
        "executor",
        "scheduler",
        "webhook-dispatcher",
    ]
    assert "HTTP 200" in entries[-1].what


def test_text_view_shows_each_section() -> None:
    text = render_text(_timeline())
    for heading in ("intent (intake)", "recovery (scheduler)", "attempts (executor)", "webhook events", "timeline"):
        assert heading in text
    assert "plan: none" in text and "decline_code insufficient_funds" in text


def test_json_view_is_plain_json_without_message_bodies() -> None:
    document = json.loads(render_json(_timeline()))
    assert document["webhook_events"][0]["created_at"] == "2026-01-01T00:00:10.000Z"
    assert "body" not in document["webhook_events"][0]
    assert len(document["timeline"]) == 6


def test_an_unknown_payment_says_so() -> None:
    assert render_text(PaymentTimeline(payment_id="nope")) == "no records of payment nope"
