"""The read model's domain: a payment's view is the same whatever order its events came in and however often,
and the figures summed from the payments' contributions are the ones worked out by hand."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from recovery_analytics.adapters import views
from recovery_analytics.domain.answers import list_item, recovery_intent, recovery_status, timeline
from recovery_analytics.domain.figures import DayFigures, contribution, day_of, difference, percentile, summarise
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import ViewStatus, project
from recovery_contracts.api.analytics import RecoveryStatus
from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import RecordBackState, RecoveryUpdated
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import RetryAlgorithm
from support.recovery_history import DAY_TWO, EXPECTED_ANALYTICS, MERCHANT, Story, history, snapshot


def _views(stories: dict[str, Story], shuffle_seed: int | None = None, duplicate: bool = False) -> dict[str, object]:
    views = {}
    for letter, story in stories.items():
        events = list(story.events) + (list(story.events) if duplicate else [])
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(events)
        views[letter] = project(story.payment.payment_id, events)
    return views


def test_each_payment_ends_in_the_status_its_events_say() -> None:
    views = _views(history())
    assert {letter: view.status for letter, view in views.items()} == {  # type: ignore[attr-defined]
        "A": ViewStatus.RECOVERED,
        "B": ViewStatus.RECOVERED,
        "C": ViewStatus.FAILED,
        "D": ViewStatus.IN_PROGRESS,
        "E": ViewStatus.CANCELLED,
        "F": ViewStatus.RECOVERED,
    }
    assert [recovery_status(v) for v in views.values()] == [  # type: ignore[arg-type]
        RecoveryStatus.RECOVERED,
        RecoveryStatus.RECOVERED,
        RecoveryStatus.TERMINATED,
        RecoveryStatus.MONITORING,
        RecoveryStatus.TERMINATED,
        RecoveryStatus.RECOVERED,
    ]


@pytest.mark.parametrize("seed", range(8))
def test_order_and_duplicates_change_no_view(seed: int) -> None:
    stories = history()
    assert _views(stories, shuffle_seed=seed, duplicate=True) == _views(stories)


def test_a_view_without_its_request_counts_in_no_figure_until_the_request_arrives() -> None:
    story = history()["A"]
    accepted, *later = story.events
    early = project(story.payment.payment_id, later)
    assert early.payment is None and early.status is ViewStatus.RECOVERED
    assert contribution(early) == {} and day_of(early) is None and list_item(early) is None
    complete = project(story.payment.payment_id, [*later, accepted])
    assert contribution(complete)["payments_recovered"] == 1
    # The attempts learn their card network from the request, whenever it came.
    assert [a.card_network for a in complete.attempts] == ["Visa", "Visa"]


def test_a_success_is_the_truth_over_a_failure_reported_for_the_same_attempt() -> None:
    story = history()["F"]
    declined_third = Story(story.payment).declined(3, "insufficient_funds", timedelta(minutes=119)).events
    view = project(story.payment.payment_id, [*story.events, *declined_third])
    assert view.status is ViewStatus.RECOVERED
    assert [a.outcome.value for a in view.attempts] == ["declined", "declined", "succeeded"]


def test_the_figures_summed_from_the_contributions_are_the_ones_worked_out_by_hand() -> None:
    views = _views(history())
    days = [DayFigures(day_of(v), contribution(v)) for v in views.values()]  # type: ignore[arg-type]
    seconds = [s for v in views.values() if (s := v.seconds_to_recover) is not None]  # type: ignore[attr-defined]
    answer = summarise(MERCHANT, None, date(2026, 1, 15), date(2026, 1, 16), days, seconds)
    assert answer.model_dump(mode="json") == EXPECTED_ANALYTICS


def test_a_change_moves_the_day_by_the_difference_only() -> None:
    story = history()["A"]
    before = contribution(project(story.payment.payment_id, story.events[:2]))
    after = contribution(project(story.payment.payment_id, story.events))
    assert before["payments_in_progress"] == 1
    assert difference(after, before) == {
        "payments_in_progress": -1,
        "payments_recovered": 1,
        "recovered_amount.USD": 2250,
        "attempts_recovered": 2,
        "by_attempt_number.2": 1,
        "by_algorithm.cascading.recovered": 1,
        "by_card_network.Visa.recovered": 1,
    }
    assert difference(after, after) == {}


def test_each_declined_attempt_counts_for_its_card_network_and_for_its_payments_algorithm() -> None:
    stories = history()
    smart = Story(snapshot("hist_g", created_at=DAY_TWO, amount=900, algorithm=RetryAlgorithm.SMART)).accepted()
    smart.declined(1, "do_not_honor", timedelta(minutes=5)).declined(2, "expired_card", timedelta(minutes=65))
    declines = {
        letter: {k: v for k, v in contribution(view).items() if k.endswith(".declines")}  # type: ignore[arg-type]
        for letter, view in _views({**stories, "smart": smart}).items()
    }

    assert declines == {
        "A": {"by_card_network.Visa.declines": 1, "by_algorithm.cascading.declines": 1},
        "B": {},  # recovered at its first attempt
        "C": {"by_card_network.Visa.declines": 2, "by_algorithm.cascading.declines": 2},
        "D": {},  # monitoring: nothing charged
        "E": {"by_card_network.Amex.declines": 1, "by_algorithm.cascading.declines": 1},
        "F": {"by_card_network.Visa.declines": 2, "by_algorithm.cascading.declines": 2},
        "smart": {"by_card_network.Visa.declines": 2, "by_algorithm.smart.declines": 2},
    }


def test_a_view_stored_before_algorithms_counted_declines_gets_them_with_its_next_change() -> None:
    # The stored contribution is what the day holds: the next event moves the day by the difference from it.
    story = history()["F"]
    stored = contribution(project(story.payment.payment_id, story.events[:3]))
    without = {k: v for k, v in stored.items() if k != "by_algorithm.cascading.declines"}  # as the old code stored it
    after = contribution(project(story.payment.payment_id, story.events))
    assert difference(after, without)["by_algorithm.cascading.declines"] == 2


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [([], 0.5, None), ([5.0], 0.9, 5.0), ([600.0, 3600.0, 7200.0], 0.5, 3600.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0)],
)
def test_percentiles_are_nearest_rank(values: list[float], share: float, expected: float | None) -> None:
    assert percentile(values, share) == expected


def test_the_timeline_tells_the_request_each_attempt_the_webhook_failure_and_the_end() -> None:
    story = history()["C"]
    answer = timeline(project(story.payment.payment_id, story.events))
    assert [e.kind.value for e in answer.entries] == [
        "recovery_accepted",
        "attempt_failed",
        "attempt_failed",
        "recovery_finished",
        "webhook_failed",
    ]
    assert (answer.status.value, answer.business_status.value) == ("finish", "FAILED_DUE_TO_HARD_DECLINE_ERROR")
    # The recovery's status as the list and the intent show it, from the same view.
    assert answer.recovery_status.value == "terminated"
    assert [(a.attempt_number, a.decline_code, a.card_network, a.advice_code) for a in answer.attempts] == [
        (1, "do_not_honor", "Visa", "try_again_later"),
        (2, "insufficient_funds", "Visa", "try_again_later"),
    ]
    assert answer.request is not None and answer.request.amount == 5000


def test_the_timeline_carries_the_recovery_status_the_intent_shows_at_every_step() -> None:
    for story in history().values():
        for seen in range(1, len(story.events) + 1):
            view = project(story.payment.payment_id, story.events[:seen])
            intent = recovery_intent(view)
            if intent is not None:
                assert timeline(view).recovery_status == intent.status, (story.payment.payment_id, seen)


@pytest.mark.parametrize("seed", range(4))
def test_the_timeline_shows_the_record_back_and_each_try_whatever_order_they_came_in(seed: int) -> None:
    minutes = lambda n: timedelta(minutes=n)  # noqa: E731
    story = (
        history()["A"]
        .recorded_back(1, RecordBackState.RETRYING, minutes(61), status_code=500)
        .recorded_back(2, RecordBackState.RETRYING, minutes(62), error="ConnectError: refused")
        .recorded_back(3, RecordBackState.ACCEPTED, minutes(65), status_code=200)
    )
    in_order = project(story.payment.payment_id, story.events)
    shuffled = list(story.events) * 2
    random.Random(seed).shuffle(shuffled)
    assert project(story.payment.payment_id, shuffled) == in_order
    assert in_order.status is ViewStatus.RECOVERED  # a record back changes no figure

    answer = timeline(in_order)

    assert [(t.attempt, t.state, t.status_code, t.error) for t in answer.record_back] == [
        (1, "retrying", 500, None),
        (2, "retrying", None, "ConnectError: refused"),
        (3, "accepted", 200, None),
    ]
    assert {t.billing_connector for t in answer.record_back} == {"stripebilling"}
    entries = [(e.kind.value, e.detail) for e in answer.entries if e.kind.value == "record_back"]
    assert entries == [
        ("record_back", "try 1 at stripebilling: retrying (HTTP 500)"),
        ("record_back", "try 2 at stripebilling: retrying (ConnectError: refused)"),
        ("record_back", "try 3 at stripebilling: accepted (HTTP 200)"),
    ]
    assert [e.kind.value for e in answer.entries][-3:] == ["record_back"] * 3  # after the recovering attempt
    assert contribution(in_order) == contribution(project(story.payment.payment_id, history()["A"].events))
    # Where it stands after its last try: the list's `record_back_state` filter.
    assert in_order.record_back_state == "accepted"
    assert project(story.payment.payment_id, history()["A"].events).record_back_state is None


@pytest.mark.parametrize("seed", range(3))
def test_the_timeline_shows_a_monitoring_recoverys_shadow_plans_whatever_order_they_came_in(seed: int) -> None:
    plain = history()["D"]
    story = Story(plain.payment, list(plain.events))
    story.shadow_planned(timedelta(), smart_wait=timedelta(days=1)).shadow_planned(
        timedelta(hours=5), timedelta(hours=20)
    )
    in_order = project(story.payment.payment_id, story.events)
    shuffled = list(story.events) * 2
    random.Random(seed).shuffle(shuffled)
    assert project(story.payment.payment_id, shuffled) == in_order
    # A comparison changes no figure: nothing was charged.
    assert contribution(in_order) == contribution(project(plain.payment.payment_id, plain.events))

    answer = timeline(in_order)

    start = story.payment.created_at
    assert [(p.planned_at - start, p.algorithm, p.takes_over, p.at - p.planned_at) for p in answer.shadow_plans] == [
        (timedelta(), "cascading", True, timedelta(minutes=1)),
        (timedelta(), "smart", False, timedelta(days=1)),
        (timedelta(hours=5), "cascading", True, timedelta(minutes=1)),
        (timedelta(hours=5), "smart", False, timedelta(hours=20)),
    ]
    details = [e.detail or "" for e in answer.entries if e.kind.value == "shadow_planned"]
    assert len(details) == 4
    assert details[0].startswith("cascading (takes over) would attempt at ")
    assert details[1].startswith("smart would attempt at ") and details[1].endswith(
        ": smart: insufficient_funds cadence"
    )


def test_a_stored_view_gives_back_its_record_with_the_events_it_was_folded_from() -> None:
    story = history()["C"]
    events = list(reversed(story.events))
    record = ViewRecord.of(project(story.payment.payment_id, events), version=3, events=events)
    stored = views.to_document(record)
    before_history = {k: v for k, v in stored.items() if k != "history"}  # as the code before the field stored it

    assert views.from_document(stored) == record
    assert [e["message_id"] for e in stored["history"]] == [e.message_id for e in story.events]  # the fold's order
    assert views.from_document(before_history) == replace(record, history=None)


CLOSED = (IntentStatus.CANCELLED, IntentStatus.SUCCEEDED)


def _closing_as(story: Story, **changes: object) -> list[Envelope[Any]]:
    """The story's events with its closing `recovery.updated` changed."""
    events = []
    for event in story.events:
        if isinstance(event.payload, RecoveryUpdated) and event.payload.intent_status in CLOSED:
            event = event.model_copy(update={"payload": event.payload.model_copy(update=changes)})
        events.append(event)
    return events


@pytest.mark.parametrize(
    ("changes", "business", "reason"),
    [
        ({}, "CANCELLED_BY_BILLING_CONNECTOR", "cancel_invoice"),
        ({"by_merchant": True}, "CANCELLED_BY_MERCHANT", "cancelled by the merchant"),
        (
            {"action": "success_payment_external", "intent_status": IntentStatus.SUCCEEDED},
            "COMPLETED_BY_EXTERNAL_PAYMENT",
            "success_payment_external",
        ),
    ],
)
def test_an_intent_closed_outside_the_retries_says_who_closed_it(
    changes: dict[str, object], business: str, reason: str
) -> None:
    story = history()["E"]
    view = project(story.payment.payment_id, _closing_as(story, **changes))

    answer = list_item(view)
    assert view.status is ViewStatus.CANCELLED and answer is not None
    assert (timeline(view).business_status.value, answer.cancellation_reason) == (business, reason)
