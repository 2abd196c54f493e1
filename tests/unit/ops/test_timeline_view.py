"""The timeline view: a payment's records from the four owners, in time order, readable and JSON-ready."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from recovery_cli.record_backs import RecordBackUnread
from recovery_cli.timeline import PaymentTimeline, load_timeline, render_json, render_text

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


def test_a_monitoring_recovery_shows_what_cascading_and_smart_would_have_done() -> None:
    shadows = {
        "cascading": {"kind": "attempt", "attempt_number": 1, "token": "pm_1", "at": _at(2), "reason": "ladder step 1"},
        "smart": {"kind": "replan", "at": _at(5), "reason": "network budget used up"},
    }
    timeline = _timeline()
    assert timeline.recovery is not None
    timeline.recovery["plan"] = {"kind": "monitoring", "shadows": shadows, "due_at": _at(30)}
    timeline.recovery["history"] = [
        {"at": _at(1), "what": "monitoring", "reason": "shadow plans: both", "active": "smart", "shadows": shadows}
    ]

    text = render_text(timeline)

    assert "    shadow cascading: kind attempt, attempt_number 1, token pm_1, at 2026-01-01T00:00:02.000Z" in text
    assert "    shadow smart: kind replan, at 2026-01-01T00:00:05.000Z, reason network budget used up" in text
    [line] = [e.what for e in timeline.entries() if e.what.startswith("monitoring")]
    assert line == "monitoring: reason=shadow plans: both"


def test_an_unknown_payment_says_so() -> None:
    assert render_text(PaymentTimeline(payment_id="nope")) == "no records of payment nope"


RECORD_BACK = {
    "payment_id": PAYMENT,
    "billing_connector": "stripebilling",
    "status": "accepted",
    "tries": 3,
    "updated_at": "2026-01-01T00:00:40.000Z",
    "attempts": [
        {"attempt": 1, "at": "2026-01-01T00:00:11.000Z", "status_code": 500, "error": None, "outcome": "retrying"},
        {
            "attempt": 2,
            "at": "2026-01-01T00:00:20.000Z",
            "status_code": None,
            "error": "ConnectError: refused",
            "outcome": "retrying",
        },
        {"attempt": 3, "at": "2026-01-01T00:00:40.000Z", "status_code": 200, "error": None, "outcome": "accepted"},
    ],
}


class _Executor:
    """The executor's record-back endpoint as `load_timeline` asks it; records who was asked for what."""

    def __init__(self, found: dict[str, object] | None = None, unread: str | None = None) -> None:
        self.found, self.unread = found, unread
        self.asked: list[tuple[str, str]] = []

    def __call__(self, merchant_id: str, payment_id: str) -> dict[str, object] | None:
        self.asked.append((merchant_id, payment_id))
        if self.unread is not None:
            raise RecordBackUnread(self.unread)
        return self.found


class _Collection:
    def __init__(self, documents: list[dict[str, object]]) -> None:
        self.documents = documents

    def find_one(self, query: dict[str, object]) -> dict[str, object] | None:
        return next((d for d in self.documents if d["_id"] == query["_id"]), None)

    def find(self, query: dict[str, object], projection: object = None) -> _Collection:
        return _Collection([d for d in self.documents if d.get("payment_id") == query.get("payment_id")])

    def __iter__(self) -> Iterator[dict[str, object]]:
        return iter(self.documents)

    def sort(self, *_: object) -> list[dict[str, object]]:
        return self.documents


def test_the_record_back_and_each_try_come_in_time_order_after_the_webhook() -> None:
    timeline = _timeline()
    timeline.record_back = RECORD_BACK

    entries = timeline.entries()

    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert [e.what for e in entries[-3:]] == [
        "record back to stripebilling try 1: HTTP 500, retrying",
        "record back to stripebilling try 2: ConnectError: refused, retrying",
        "record back to stripebilling try 3: HTTP 200, accepted",
    ]
    text = render_text(timeline)
    assert "record back (executor)\n  to stripebilling: accepted after 3 tries" in text
    assert "  try 2 at 2026-01-01T00:00:20.000Z: ConnectError: refused, retrying" in text
    assert json.loads(render_json(timeline))["record_back"]["attempts"][2]["status_code"] == 200


def test_the_record_back_is_asked_of_the_executor_for_the_intents_merchant() -> None:
    intent = _timeline().intent
    assert intent is not None
    db = {name: _Collection([]) for name in ("recoveries", "timers", "attempts", "webhook_events", "webhook_claims")}
    db["payment_intents"] = _Collection([intent])
    executor = _Executor(found=RECORD_BACK)

    timeline = load_timeline(db, PAYMENT, executor)

    assert executor.asked == [("m1", PAYMENT)] and timeline.record_back == RECORD_BACK
    unreachable = load_timeline(db, PAYMENT, _Executor(unread="executor at http://127.0.0.1:8082 unreachable"))
    assert unreachable.record_back is None
    assert "record back (executor): not read: executor at http://127.0.0.1:8082 unreachable" in render_text(unreachable)
    # A payment intake does not know is not asked about (no merchant to ask for).
    nobody = _Executor(found=RECORD_BACK)
    assert load_timeline(db, "12345_pay_unknown", nobody).record_back is None and nobody.asked == []
