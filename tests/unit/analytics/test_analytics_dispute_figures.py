"""Lost disputes in the figures: a recovered payment with lost disputes counts once in `payments_disputed_lost` and
each dispute's amount in `disputed_lost_amount` (per currency), on the day the payment was accepted, not the day
the dispute was lost; the payment stays recovered and every other figure keeps its meaning. The same dispute twice
(a redelivery, a republished copy) counts once; the events in any order give the same figures, live through the
consumer pipeline and folded again from the event log as `analytics rebuild` does."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest

from recovery_analytics.domain.figures import Counters, DayFigures, contribution, day_of, difference, summarise
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import ViewStatus, project
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import PaymentDisputeLost
from recovery_contracts.recovery import RecoveryPayment
from support.disputes import dispute_lost
from support.recovery_history import DAY_ONE, DAY_TWO, EXPECTED_ANALYTICS, MERCHANT, QUEUE_OF, Story, history

from .fakes import Analytics

LOST = MessageType.PAYMENT_DISPUTE_LOST
QUEUE = {**QUEUE_OF, LOST: "analytics.dispute-lost"}
WEEKS = timedelta(weeks=6)
RANGE = {"from": "2026-01-15", "to": "2026-01-16"}
# What one dispute that took back all of history A's payment (USD 2250) adds to the payment's day.
WHOLE_OF_A = {"payments_disputed_lost": 1, "disputed_lost_amount.USD": 2250}


def lost_part(payment: RecoveryPayment, amount: int, at: datetime) -> Envelope[PaymentDisputeLost]:
    """A dispute lost at `at` that took back `amount` of the payment (a new dispute each call)."""
    return dispute_lost(payment, at, amount=amount)


def counted(story: Story, events: list[Envelope[Any]]) -> Counters:
    return contribution(project(story.payment.payment_id, events))


def test_a_lost_dispute_counts_its_payment_and_its_amount_on_the_day_the_payment_was_accepted() -> None:
    story = history()["A"]
    lost = dispute_lost(story.payment, story.at(WEEKS))

    view = project(story.payment.payment_id, [*story.events, lost])

    # Six weeks after the recovery, counted on the payment's day; it stays recovered, with its amount recovered.
    assert day_of(view) == DAY_ONE.date() != lost.payload.lost_at.date()
    assert view.status is ViewStatus.RECOVERED
    assert difference(contribution(view), counted(story, story.events)) == WHOLE_OF_A


def test_the_same_dispute_twice_counts_once() -> None:
    story = history()["A"]
    lost = dispute_lost(story.payment, story.at(WEEKS))
    # A redelivery (same message id), and the same dispute republished under a message id of its own.
    again = lost.model_copy(update={"message_id": "published-again"})

    twice = counted(story, [*story.events, lost, lost, again])

    assert twice == counted(story, [*story.events, lost])
    assert difference(twice, counted(story, story.events)) == WHOLE_OF_A


def test_two_disputes_on_one_payment_count_the_payment_once_and_both_amounts() -> None:
    story = history()["A"]
    first, second = lost_part(story.payment, 1000, story.at(WEEKS)), lost_part(story.payment, 1250, story.at(2 * WEEKS))

    both = counted(story, [*story.events, first, second])

    assert difference(both, counted(story, story.events)) == {
        "payments_disputed_lost": 1,
        "disputed_lost_amount.USD": 1000 + 1250,
    }


def test_a_dispute_folded_before_its_payments_success_counts_once_the_success_is_folded() -> None:
    story = history()["A"]
    request, declined, succeeded = story.events
    lost = dispute_lost(story.payment, story.at(WEEKS))

    # Before the request nothing counts; before the success the payment is not recovered, so no dispute of it is.
    assert counted(story, [lost]) == {}
    assert "payments_disputed_lost" not in counted(story, [lost, declined, request])
    complete = counted(story, [lost, declined, request, succeeded])
    assert (complete["payments_recovered"], complete["payments_disputed_lost"]) == (1, 1)
    assert complete == counted(story, [*story.events, lost])


@pytest.mark.parametrize("seed", range(8))
def test_any_order_with_the_payments_own_events_and_copies_gives_the_same_figures(seed: int) -> None:
    story = history()["A"]
    request, _, succeeded = story.events
    disputes = [lost_part(story.payment, 1000, story.at(WEEKS)), lost_part(story.payment, 1250, story.at(WEEKS))]
    arrivals = [*story.events, *disputes, *disputes, disputes[0].model_copy(update={"message_id": "again"})]
    random.Random(seed).shuffle(arrivals)

    # Folded one arrival at a time, as the projection does: the disputes count once the payment is known and
    # recovered (never a disputed payment that is not recovered), each dispute once whatever its copies.
    for seen in range(1, len(arrivals) + 1):
        step, arrived = counted(story, arrivals[:seen]), arrivals[:seen]
        kept = {e.payload.dispute.dispute_id: e.payload.amount for e in arrived if e.type is LOST}
        counts = request in arrived and succeeded in arrived and bool(kept)
        assert (step.get("payments_disputed_lost", 0), step.get("disputed_lost_amount.USD", 0)) == (
            (1, sum(kept.values())) if counts else (0, 0)
        )
    assert counted(story, arrivals) == counted(story, [*story.events, *disputes])
    assert difference(counted(story, arrivals), counted(story, story.events)) == WHOLE_OF_A


def test_the_answer_counts_the_disputed_payments_and_amounts_and_changes_no_other_figure() -> None:
    stories = history()
    a, b, f = (stories[letter] for letter in "ABF")
    disputes = {
        "A": [lost_part(a.payment, 1000, a.at(WEEKS)), lost_part(a.payment, 1250, a.at(WEEKS + timedelta(days=3)))],
        "B": [dispute_lost(b.payment, b.at(WEEKS))],
        "F": [lost_part(f.payment, 500, f.at(WEEKS))],
    }
    views = [project(s.payment.payment_id, [*s.events, *disputes.get(k, [])]) for k, s in stories.items()]
    days = [DayFigures(day, contribution(v)) for v in views if (day := day_of(v)) is not None]
    seconds = [s for v in views if (s := v.seconds_to_recover) is not None]

    answer = summarise(MERCHANT, None, DAY_ONE.date(), DAY_TWO.date(), days, seconds)

    assert answer.model_dump(mode="json") == with_disputes(EXPECTED_ANALYTICS)


def with_disputes(expected: dict[str, Any]) -> dict[str, Any]:
    """The hand-worked figures of the history with A's two partial disputes (USD 1000 and 1250) and B's whole one
    (USD 1000), both accepted on the 15th, and F's partial one (USD 500), accepted on the 16th: A, B and F stay
    recovered, and nothing but the two new figures changes."""
    first, second = expected["daily"]
    return {
        **expected,
        "payments_disputed_lost": 3,
        "disputed_lost_amount": {"USD": 1000 + 1250 + 1000 + 500},
        "daily": [
            {**first, "payments_disputed_lost": 2, "disputed_lost_amount": {"USD": 1000 + 1250 + 1000}},
            {**second, "payments_disputed_lost": 1, "disputed_lost_amount": {"USD": 500}},
        ],
    }


def test_a_view_stored_before_disputes_were_counted_gets_them_with_its_next_change() -> None:
    # The stored contribution is what the day holds: the next event moves the day by the difference from it.
    story = history()["A"]
    lost = dispute_lost(story.payment, story.at(WEEKS))
    stored = {k: v for k, v in counted(story, [*story.events, lost]).items() if "disputed" not in k}  # as before
    later = lost_part(story.payment, 100, story.at(2 * WEEKS))

    moved = difference(counted(story, [*story.events, lost, later]), stored)

    assert moved == {"payments_disputed_lost": 1, "disputed_lost_amount.USD": 2250 + 100}


def _rebuilt(stories: dict[str, list[Envelope[Any]]]) -> dict[tuple[str, str, date], Counters]:
    """The days `analytics rebuild` writes from these events: each payment's view folded from all its events at
    once, its contribution summed into its day (adapters/rebuild.py, without MongoDB)."""
    days: dict[tuple[str, str, date], Counters] = {}
    for payment_id, events in stories.items():
        record = ViewRecord.of(project(payment_id, events), version=1, events=events)
        if record.day is None or record.merchant_id is None or record.profile_id is None:
            continue
        day = days.setdefault((record.merchant_id, record.profile_id, record.day), {})
        for key, value in record.contribution.items():
            day[key] = day.get(key, 0) + value
    return days


@pytest.mark.parametrize("seed", range(3))
async def test_through_the_pipeline_in_any_order_with_copies_the_figures_count_each_dispute_once_as_a_rebuild(
    seed: int, analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    stories = history()
    a, b, f = (stories[letter] for letter in "ABF")
    disputes = [
        lost_part(a.payment, 1000, a.at(WEEKS)),
        lost_part(a.payment, 1250, a.at(WEEKS + timedelta(days=3))),
        dispute_lost(b.payment, b.at(WEEKS)),
        lost_part(f.payment, 500, f.at(WEEKS)),
    ]
    events = [e for s in stories.values() for e in s.events] + disputes
    copies = [*disputes, disputes[2].model_copy(update={"message_id": "published-again"})]
    arrivals = events + events[::3] + copies
    random.Random(seed).shuffle(arrivals)

    for event in arrivals:
        await analytics.send(QUEUE[event.type], event)

    answer = await internal.get(f"/internal/analytics/{MERCHANT}", params=RANGE)
    assert answer.status_code == 200, answer.text
    assert answer.json() == with_disputes(EXPECTED_ANALYTICS)
    # Counted on the payments' days: the days the disputes were lost hold nothing.
    lost_on = a.at(WEEKS).date().isoformat()
    later = (await internal.get(f"/internal/analytics/{MERCHANT}", params={"from": lost_on, "to": lost_on})).json()
    assert (later["payments_disputed_lost"], later["disputed_lost_amount"], later["daily"]) == (0, {}, [])
    # The days the live projection moved, event by event, are the ones a rebuild folds from its event log.
    logged: dict[str, list[Envelope[Any]]] = {}
    async for payment_id, payment_events in analytics.events.by_payment():
        logged[payment_id] = payment_events
    assert analytics.days.summed() == _rebuilt(logged)
