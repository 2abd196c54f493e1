"""What the console's pages show of the internal APIs' answers: figures, chart series, rows, paging."""

from __future__ import annotations

from typing import Any

from recovery_intake.console import payment_view, views, webhook_views
from recovery_intake.console.payment_view import DONE_NOTICES, done_notice

ANALYTICS: dict[str, Any] = {
    "merchant_id": "merchant_1",
    "from_date": "2026-11-04",
    "to_date": "2026-12-03",
    "payments_total": 4,
    "payments_recovered": 2,
    "payments_failed": 1,
    "payments_in_progress": 1,
    "payments_cancelled": 0,
    "recovery_rate": 2 / 3,
    "recovered_amount": {"USD": 9000, "JPY": 500},
    "attempts_per_recovered_payment": 1.5,
    "time_to_recover": {"p50": 5400.0, "p90": 86_400.0},
    "by_decline_class": {"soft": 3, "hard": 1},
    "by_card_network": {"visa": {"payments": 3, "recovered": 2, "declines": 3}, "mastercard": {"declines": 1}},
    "by_attempt_number": {"2": 1, "1": 1},
    "by_algorithm": {"cascading": {"payments": 4, "recovered": 2, "declines": 4}},
    "daily": [
        {"date": "2026-12-02", "payments_total": 2, "recovered_amount": {"USD": 4500}},
        {"date": "2026-12-03", "payments_total": 2, "recovered_amount": {"USD": 4500, "JPY": 500}},
    ],
}


def figure(shown: views.Overview, label: str) -> str:
    return next(f.value for f in shown.figures if f.label == label)


def test_overview_figures() -> None:
    shown = views.overview(ANALYTICS)
    assert not shown.empty
    assert figure(shown, "Recovery rate") == "66.7%"
    assert figure(shown, "Recovered") == "JPY 500, USD 90.00"
    assert figure(shown, "In progress") == "1"
    assert figure(shown, "Attempts per recovery") == "1.50"
    assert figure(shown, "Time to recover") == "1 h 30 min (p50)"


def test_overview_shows_what_lost_disputes_took_back_beside_the_recovered_figures() -> None:
    lost = {**ANALYTICS, "payments_disputed_lost": 1, "disputed_lost_amount": {"USD": 2250, "JPY": 0}}

    shown = views.overview(lost)

    labels = [f.label for f in shown.figures]
    assert labels[labels.index("Recovered") + 1] == "Lost to disputes"
    [figure_shown] = [f for f in shown.figures if f.label == "Lost to disputes"]
    assert (figure_shown.value, figure_shown.note) == ("USD 22.50", "on 1 recovered payment")
    # The disputed payments stay recovered: Recovered is what it was.
    assert figure(shown, "Recovered") == figure(views.overview(ANALYTICS), "Recovered") == "JPY 500, USD 90.00"
    two = views.overview({**lost, "payments_disputed_lost": 2, "disputed_lost_amount": {"USD": 2250, "EUR": 150}})
    assert (figure(two, "Lost to disputes"), two.figures[2].note) == ("EUR 1.50, USD 22.50", "on 2 recovered payments")
    # Only when a dispute was lost.
    for answer in (ANALYTICS, {**ANALYTICS, "payments_disputed_lost": 0, "disputed_lost_amount": {}}):
        assert "Lost to disputes" not in [f.label for f in views.overview(answer).figures]


def test_overview_charts() -> None:
    charts = views.overview(ANALYTICS).charts
    per_day = charts["chart-recovered-per-day"]["data"]
    assert per_day["labels"] == ["2026-12-02", "2026-12-03"]
    assert {d["label"]: d["data"] for d in per_day["datasets"]} == {"JPY": [0.0, 500.0], "USD": [45.0, 45.0]}
    by_attempt = charts["chart-rate-by-attempt"]["data"]
    # Recovered at attempt n, of the 3 finished payments; the bars add up to the recovery rate.
    assert by_attempt["labels"] == ["attempt 1", "attempt 2"]
    assert by_attempt["datasets"][0]["data"] == [33.3, 33.3]
    classes = charts["chart-declines-by-class"]["data"]
    assert dict(zip(classes["labels"], classes["datasets"][0]["data"], strict=True)) == {"hard": 1, "soft": 3}
    networks = charts["chart-declines-by-network"]["data"]
    assert dict(zip(networks["labels"], networks["datasets"][0]["data"], strict=True)) == {"mastercard": 1, "visa": 3}


def test_a_new_merchant_has_an_empty_overview() -> None:
    shown = views.overview({"payments_total": 0, "recovery_rate": None, "recovered_amount": {}, "daily": []})
    assert shown.empty
    assert figure(shown, "Recovery rate") == "—"
    assert figure(shown, "Recovered") == "—"


def test_recoveries_page_rows_and_paging() -> None:
    item = {
        "id": "pay_1",
        "status": "recovered",
        "amount": {"order_amount": 2250, "currency": "USD"},
        "created": "2026-12-03T10:00:00Z",
        "attempt_count": 2,
        "merchant_reference_id": "inv_1",
    }
    page = views.recoveries_page({"count": 1, "total_count": 41, "data": [item]}, offset=20, limit=20)
    assert page.rows[0].amount == "USD 22.50"
    assert page.rows[0].created == "2026-12-03 10:00:00 UTC"
    assert (page.first, page.last, page.previous_offset, page.next_offset) == (21, 21, 0, 40)
    last = views.recoveries_page({"total_count": 21, "data": [item]}, offset=20, limit=20)
    assert last.next_offset is None
    assert views.recoveries_page({"total_count": 0, "data": []}, offset=0, limit=20).previous_offset is None


def test_payment_page_groups_the_timeline() -> None:
    timeline = {
        "payment_id": "pay_1",
        "status": "finish",
        "business_status": "COMPLETED_EXECUTE_TASK",
        "request": {"amount": 2250, "currency": "USD", "merchant_reference_id": "inv_1", "tokens": ["pm_1", "pm_2"]},
        "attempts": [
            {"attempt_number": 2, "token": "pm_2", "card_network": "visa", "outcome": "succeeded"},
            {
                "attempt_number": 1,
                "token": "pm_1",
                "card_network": "mastercard",
                "outcome": "failed",
                "decline_code": "insufficient_funds",
                "decline_class": "soft",
                "advice_code": "try_again_later",
            },
        ],
        "entries": [
            {"at": "2026-12-03T10:00:00Z", "kind": "recovery_accepted"},
            {"at": "2026-12-03T10:01:00Z", "kind": "retry_scheduled", "attempt_number": 1, "detail": "ladder step 1"},
            {"at": "2026-12-03T10:05:00Z", "kind": "record_back", "detail": "try 1 at stripebilling: retrying"},
            {"at": "2026-12-03T10:06:00Z", "kind": "recovery_finished"},
            {"at": "2026-12-03T10:07:00Z", "kind": "record_back", "detail": "try 2 at stripebilling: accepted"},
        ],
        "record_back": [
            {"attempt": 2, "at": "2026-12-03T10:07:00Z", "billing_connector": "stripebilling", "state": "accepted",
             "status_code": 200},
            {"attempt": 1, "at": "2026-12-03T10:05:00Z", "billing_connector": "stripebilling", "state": "retrying",
             "error": "ConnectError: refused"},
        ],
    }  # fmt: skip
    shown = payment_view.payment_page(timeline, {"status": "recovered"}, [])
    assert shown.status == "recovered"
    assert [a.number for a in shown.attempts] == [1, 2]
    first = shown.attempts[0]
    assert (first.token, first.network, first.decline_code, first.decline_class) == (
        "pm_1", "mastercard", "insufficient_funds", "soft",
    )  # fmt: skip
    assert first.advice == "advice try_again_later"
    assert [(p.what, p.detail) for p in shown.plans] == [("retry scheduled (attempt 1)", "ladder step 1")]
    assert [(r.attempt, r.at, r.billing_connector, r.answer, r.state) for r in shown.record_back] == [
        (1, "2026-12-03 10:05:00 UTC", "stripebilling", "ConnectError: refused", "retrying"),
        (2, "2026-12-03 10:07:00 UTC", "stripebilling", "HTTP 200", "accepted"),
    ]
    assert len(shown.story) == 5
    assert next(f.value for f in shown.request if f.label == "Amount") == "USD 22.50"
    assert next(f.value for f in shown.request if f.label == "Cards (tokens)") == "pm_1, pm_2"


def test_a_card_hard_declined_here_in_another_payment_or_by_the_merchant_says_so() -> None:
    timeline = {"payment_id": "pay_1", "request": {"currency": "USD", "tokens": ["pm_1", "pm_2", "pm_3", "pm_4"]}}
    workflow = {
        "tokens": [
            {"token": "pm_1", "hard_declined": True, "hard_declined_in": None, "hard_declined_by_merchant": False},
            {"token": "pm_2", "hard_declined": True, "hard_declined_in": "pay_0", "hard_declined_by_merchant": False},
            {"token": "pm_3", "hard_declined": False, "hard_declined_in": None, "hard_declined_by_merchant": False},
            {"token": "pm_4", "hard_declined": True, "hard_declined_in": None, "hard_declined_by_merchant": True},
        ]
    }
    shown = payment_view.payment_page(timeline, None, [], workflow)
    cards = next(f.value for f in shown.request if f.label == "Cards (tokens)")
    assert cards == (
        "pm_1 (hard-declined), pm_2 (hard-declined in payment pay_0), pm_3, pm_4 (marked hard-declined by the merchant)"
    )


def test_payment_page_takes_the_status_from_the_timelines_own_moment() -> None:
    timeline = {"payment_id": "pay_1", "status": "finish", "business_status": "FAILED_EXECUTE_TASK"}
    # The timeline's recovery status, read with its business status, wins over an intent read at another moment.
    shown = payment_view.payment_page({**timeline, "recovery_status": "terminated"}, {"status": "scheduled"}, [])
    assert (shown.status, shown.business_status, shown.open) == ("terminated", "FAILED_EXECUTE_TASK", False)
    # A timeline stored before it had one: the intent's status, else the process tracker's.
    assert payment_view.payment_page(timeline, {"status": "terminated"}, []).status == "terminated"
    assert payment_view.payment_page(timeline, None, []).status == "finish"


def test_deliveries_and_endpoint_health() -> None:
    event = {
        "event_id": "evt_1",
        "event_type": "payment_succeeded",
        "profile_id": "pro_1",
        "is_delivery_successful": True,
    }
    attempts = [
        {"delivery_attempt": "manual_retry", "created": "2026-12-03T10:02:00Z", "is_delivery_successful": True,
         "response": {"status_code": 200}},
        {"delivery_attempt": "initial_attempt", "created": "2026-12-03T10:01:00Z", "is_delivery_successful": False,
         "response": {"status_code": 500, "error_message": "server error"}},
    ]  # fmt: skip
    shown = payment_view.delivery(event, attempts)
    assert [(a.kind, a.status_code, a.delivered) for a in shown.attempts] == [
        ("initial attempt", "500", False),
        ("manual retry", "200", True),
    ]
    health = webhook_views.endpoint_health(
        [
            {**event, "created": "2026-12-03T10:03:00Z"},
            {**event, "is_delivery_successful": False, "created": "2026-12-03T10:02:00Z"},
            {**event, "created": "2026-12-03T10:01:00Z"},
            {**event, "profile_id": "pro_2"},
        ]
    )
    assert [(h.profile_id, h.events, h.delivered, h.success_rate) for h in health] == [
        ("pro_1", 3, 2, "66.7%"),
        ("pro_2", 1, 1, "100.0%"),
    ]
    assert health[0].last_failure == "2026-12-03 10:02:00 UTC"


def test_payment_page_shows_the_schedulers_plans_with_their_reasons_and_classes() -> None:
    timeline = {
        "payment_id": "pay_1",
        "attempts": [{"attempt_number": 1, "token": "pm_1", "outcome": "declined", "decline_class": "lost_card"}],
        "entries": [{"at": "2026-12-03T10:01:00Z", "kind": "retry_scheduled", "detail": "from the read model"}],
    }
    workflow = {
        "timeline": [
            {
                "at": "2026-12-03T10:00:00Z",
                "what": "attempt_planned",
                "reason": "cascading ladder step 1",
                "token": "pm_1",
            }
        ],
        "attempts": [{"number": 1, "decline_class": "never"}],
        "plan": {
            "kind": "attempt",
            "attempt_number": 2,
            "token": "pm_2",
            "due_at": "2026-12-04T10:00:00Z",
            "reason": "Visa budget: 15 attempts per rolling 30 days",
            "timer_id": "tmr_1",
        },
    }
    shown = payment_view.payment_page(timeline, None, [], workflow)
    assert [(p.what, p.detail) for p in shown.plans] == [
        ("attempt planned", "cascading ladder step 1 · token pm_1"),
        ("next: attempt (attempt 2)", "Visa budget: 15 attempts per rolling 30 days · pm_2"),
    ]
    assert shown.attempts[0].decline_class == "never"
    # Without the scheduler's answer, the read model's plans and classes.
    alone = payment_view.payment_page(timeline, None, [])
    assert [p.detail for p in alone.plans] == ["from the read model"]
    assert alone.attempts[0].decline_class == "lost_card"


def test_payment_page_shows_a_monitoring_recoverys_shadow_plans_under_its_decision() -> None:
    shadows = {
        "cascading": {"kind": "attempt", "at": "2026-12-03T10:01:30.000Z", "reason": "cascading ladder step 1"},
        "smart": {"kind": "end", "outcome": "retries_exhausted", "reason": "smart used its 15 attempts"},
    }
    note = {"at": "2026-12-03T10:00:00Z", "what": "monitoring", "reason": "shadow plans: ...", "active": "smart"}
    workflow = {"timeline": [{**note, "shadows": shadows}], "plan": {"kind": "monitoring", "shadows": shadows}}

    shown = payment_view.payment_page({"payment_id": "pay_1"}, None, [], workflow)

    assert [(p.what, p.detail) for p in shown.plans] == [
        ("monitoring", "shadow plans: ..."),
        ("shadow: cascading would attempt", "cascading ladder step 1 · at 2026-12-03 10:01:30 UTC"),
        ("shadow: smart (takes over) would end", "smart used its 15 attempts"),
        ("next: monitoring", ""),
    ]


def test_endpoint_rows_show_success_rate_latency_breaker_and_disabled_per_profile_and_url() -> None:
    endpoints = [
        {"profile_id": "pro_1", "url": "https://old.example/hooks", "current": False, "success_rate": None,
         "recent_attempts": 0, "latency_ms": {"mean": None, "p90": None}, "breaker": {"state": "closed"}},
        {"profile_id": "pro_1", "url": "https://merchant.example/hooks", "current": True, "disabled": True,
         "disabled_reason": "410 Gone", "success_rate": 0.5, "recent_attempts": 4,
         "latency_ms": {"mean": 75.4, "p90": 120},
         "breaker": {"state": "open", "consecutive_failures": 5, "retry_at": "2026-12-03T10:00:30.000Z"}},
        {"profile_id": "pro_0", "url": "https://a.example/hooks", "current": True, "disabled": False,
         "failing_since": "2026-12-03T09:00:00.000Z", "success_rate": 1.0, "recent_attempts": 1,
         "latency_ms": {"mean": 10.0, "p90": 10}, "breaker": {"state": "half_open", "consecutive_failures": 1}},
    ]  # fmt: skip
    rows = webhook_views.endpoint_rows(endpoints)
    assert [(r.profile_id, r.url, r.current) for r in rows] == [
        ("pro_0", "https://a.example/hooks", True),
        ("pro_1", "https://merchant.example/hooks", True),
        ("pro_1", "https://old.example/hooks", False),
    ]
    assert [(r.success_rate, r.attempts, r.latency) for r in rows] == [
        ("100.0%", 1, "10 ms (p90 10 ms)"),
        ("50.0%", 4, "75 ms (p90 120 ms)"),
        ("—", 0, "—"),
    ]
    assert [r.breaker for r in rows] == [
        "half open, 1 failure in a row",
        "open, 5 failures in a row, retry at 2026-12-03 10:00:30 UTC",
        "closed",
    ]
    assert [r.disabled for r in rows] == ["no (failing since 2026-12-03 09:00:00 UTC)", "yes: 410 Gone", "no"]


def test_payment_page_lists_the_disputes_not_lost_where_they_stand_latest_first() -> None:
    from dataclasses import replace
    from datetime import timedelta

    from recovery_contracts.disputes import DisputeStage, DisputeStatus

    from .test_intake_dispute_events import collected, told

    intent = collected()
    inquiry = told(DisputeStatus.DISPUTE_OPENED, DisputeStage.PRE_DISPUTE, dispute_id="dp_inquiry")
    due = inquiry.told_at + timedelta(days=7)
    for report in (
        replace(inquiry, challenge_required_by=due),
        told(DisputeStatus.DISPUTE_OPENED, dispute_id="dp_won", amount=1000, at=timedelta(hours=1)),
        told(DisputeStatus.DISPUTE_WON, dispute_id="dp_won", amount=1000, at=timedelta(hours=2)),
        told(dispute_id="dp_lost", at=timedelta(hours=3)),  # the Disputes lost card's, from the read model
    ):
        intent = intent.dispute_told(report, attempt_id="a", merchant_connector_id="m", now=intent.modified_at).intent

    rows = payment_view.other_disputes(intent)

    assert [(r.connector_dispute_id, r.stage, r.status, r.open, r.amount) for r in rows] == [
        ("dp_won", "dispute", "won", False, "USD 10.00"),
        ("dp_inquiry", "pre dispute", "opened", True, "USD 22.50"),
    ]
    assert rows[0].since == "2026-02-24 14:00:00 UTC" and rows[0].reason == "fraudulent"
    # Open: by when to answer; ended: no deadline shown (the won one's opening had none either).
    assert (rows[1].answer_by, rows[0].answer_by) == ("2026-03-03 12:00:00 UTC", "")
    assert payment_view.other_disputes(None) == []


def test_the_payment_page_says_what_its_own_action_did_in_its_own_words() -> None:
    # The redirects of the page's actions: starting the record back or a refund record again, the two answers to a
    # dispute, a webhook's retry without htmx.
    assert set(DONE_NOTICES) == {"record-back", "refund-record", "evidence", "accept", "webhook-retry"}
    assert done_notice({"done": "evidence"}) == DONE_NOTICES["evidence"]
    # Never the query's own text.
    assert done_notice({"done": "<b>paid</b>"}) is None
    assert done_notice({}) is None
