"""A dispute lost on a recovered payment, on the read side: the timeline shows it (dispute id, the connector's
dispute id, amount, currency, reason, when it was lost) and its refund record's tries as the refund's, never as the
payment's record back; the same events in any order, and any of them twice, fold to the same view; through the
consumer pipeline and the internal API, a redelivered dispute is stored, shown and counted once; and where a
payment's disputes stand together (`dispute_state`, the list's filter), whatever their course."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from recovery_analytics.domain.answers import timeline
from recovery_analytics.domain.figures import difference
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import project
from recovery_contracts.disputes import DisputeStatus
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import RecordBackState, RecordBackUpdated
from support.disputes import dispute_lost, dispute_told, refund_try
from support.recovery_history import MERCHANT, QUEUE_OF, Story, history

from .fakes import Analytics

LOST_QUEUE = "analytics.dispute-lost"
WEEKS = timedelta(weeks=6)
OPENED, CHALLENGED = DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_CHALLENGED
WON, CANCELLED, LOST = DisputeStatus.DISPUTE_WON, DisputeStatus.DISPUTE_CANCELLED, DisputeStatus.DISPUTE_LOST


def disputed(story: Story) -> tuple[list[Envelope[Any]], Envelope[Any]]:
    """Payment A recovered and recorded back (try 1 refused, try 2 accepted), then a dispute lost on it weeks later
    and recorded as a refund (try 1 refused, try 2 accepted): every event, and the dispute's."""
    minutes = lambda n: timedelta(minutes=n)  # noqa: E731
    story.recorded_back(1, RecordBackState.RETRYING, minutes(61), status_code=500)
    story.recorded_back(2, RecordBackState.ACCEPTED, minutes(71), status_code=200)
    lost = dispute_lost(story.payment, story.at(WEEKS))
    refunds = [
        refund_try(story.payment, lost, 1, RecordBackState.RETRYING, story.at(WEEKS + minutes(1)), 503),
        refund_try(story.payment, lost, 2, RecordBackState.ACCEPTED, story.at(WEEKS + minutes(11)), 200),
    ]
    return [*story.events, lost, *refunds], lost


def test_the_timeline_shows_the_lost_dispute_with_its_facts_when_it_was_lost() -> None:
    story = history()["A"]
    events, lost = disputed(story)
    dispute = lost.payload.dispute

    answer = timeline(project(story.payment.payment_id, events))

    [entry] = [e for e in answer.entries if e.kind.value == "dispute_lost"]
    assert entry.at == lost.payload.lost_at
    assert entry.detail == (
        f"dispute {dispute.dispute_id} lost at stripe ({dispute.connector_dispute_id}): 2250 USD taken back, "
        "reason fraudulent"
    )
    [shown] = answer.disputes
    assert (shown.dispute_id, shown.connector, shown.connector_dispute_id) == (
        dispute.dispute_id,
        "stripe",
        dispute.connector_dispute_id,
    )
    assert (shown.amount, shown.currency, shown.reason, shown.lost_at) == (2250, "USD", "fraudulent", entry.at)
    # The recovery stays recovered: the dispute is a later fact about the money, not the end of the recovery.
    assert (answer.recovery_status, answer.entries[-1].kind.value) == ("recovered", "refund_record")


def test_the_refund_records_tries_are_the_disputes_own_and_leave_the_payments_record_back_as_it_was() -> None:
    story = history()["A"]
    events, lost = disputed(story)
    without_dispute = [e for e in events if e.type is not MessageType.PAYMENT_DISPUTE_LOST and not _refund(e)]

    view = project(story.payment.payment_id, events)
    answer, before = timeline(view), timeline(project(story.payment.payment_id, without_dispute))

    # Try 1 of the refund did not overwrite try 1 of the payment's record back, nor its state.
    assert answer.record_back == before.record_back
    assert [(t.attempt, t.state, t.status_code) for t in answer.record_back] == [
        (1, "retrying", 500),
        (2, "accepted", 200),
    ]
    assert view.record_back_state == "accepted"
    refund = answer.disputes[0].refund_record
    assert [(t.attempt, t.billing_connector, t.state, t.status_code) for t in refund] == [
        (1, "chargebee", "retrying", 503),
        (2, "chargebee", "accepted", 200),
    ]
    # The story: the payment's record back entries exactly as before; the refund's under a kind of their own.
    assert [e for e in answer.entries if e.kind.value == "record_back"] == [
        e for e in before.entries if e.kind.value == "record_back"
    ]
    assert [e.detail for e in answer.entries if e.kind.value == "refund_record"] == [
        f"refund of dispute {lost.payload.dispute.dispute_id}: try 1 at chargebee: retrying (HTTP 503)",
        f"refund of dispute {lost.payload.dispute.dispute_id}: try 2 at chargebee: accepted (HTTP 200)",
    ]
    # The refund record's tries move no figure (the dispute itself does: test_analytics_dispute_figures.py).
    without_refunds = [e for e in events if not _refund(e)]
    undisputed = project(story.payment.payment_id, without_refunds)
    assert ViewRecord.of(view, 1, events).contribution == ViewRecord.of(undisputed, 1, []).contribution


@pytest.mark.parametrize("seed", range(6))
def test_any_order_and_any_event_twice_fold_to_the_same_view(seed: int) -> None:
    story = history()["A"]
    events, lost = disputed(story)
    # A copy under a new message id (an outbox's republish) and plain redeliveries.
    again = lost.model_copy(update={"message_id": "published-again"})
    shuffled = [*events, *events[-3:], again]
    random.Random(seed).shuffle(shuffled)

    folded, once = project(story.payment.payment_id, shuffled), project(story.payment.payment_id, events)
    # The copy counts as a message received (`events`), and changes nothing else.
    assert replace(folded, events=once.events) == once and folded.events == once.events + 1


def test_refund_tries_folded_before_their_dispute_are_shown_and_join_it_once_it_arrives() -> None:
    story = history()["A"]
    events, lost = disputed(story)
    early = [e for e in events if e is not lost]

    waiting = timeline(project(story.payment.payment_id, early))
    complete = timeline(project(story.payment.payment_id, [*early, lost]))

    assert waiting.disputes == []
    assert [e.detail for e in waiting.entries if e.kind.value == "refund_record"] == [
        e.detail for e in complete.entries if e.kind.value == "refund_record"
    ]
    assert len(complete.disputes[0].refund_record) == 2


@pytest.mark.parametrize(
    ("disputes", "state"),
    [
        pytest.param((), None, id="no dispute"),
        pytest.param([(OPENED,)], "open", id="opened"),
        pytest.param([(OPENED, CHALLENGED)], "open", id="challenged"),
        pytest.param([(OPENED, CHALLENGED, WON)], "ended", id="won"),
        pytest.param([(OPENED, CANCELLED)], "ended", id="cancelled"),
        pytest.param([(LOST,)], "lost", id="lost with no step before"),
        pytest.param([(OPENED, CHALLENGED, LOST)], "lost", id="challenged then lost"),
        pytest.param([(LOST,), (OPENED,)], "open", id="one lost, a later one open"),
        pytest.param([(OPENED, WON), (LOST,)], "lost", id="one won, a later one lost"),
        pytest.param([(OPENED, WON), (OPENED, CANCELLED)], "ended", id="one won, a later one cancelled"),
    ],
)
def test_dispute_state_says_where_the_payments_disputes_stand_together(
    disputes: list[tuple[DisputeStatus, ...]], state: str | None
) -> None:
    """The list's `dispute_state`: open while any dispute is open (one to answer), else lost when one was lost,
    else ended; None without a dispute. Each dispute here starts ten days after the one before."""
    story = history()["A"]
    told = [
        event
        for n, statuses in enumerate(disputes)
        for event in dispute_told(story.payment, story.at(WEEKS + timedelta(days=10 * n)), *statuses)
    ]

    view = project(story.payment.payment_id, [*story.events, *reversed(told)])

    assert view.dispute_state == state
    assert ViewRecord.of(view, 1, []).dispute_state == state  # the stored field the list filters on


def _refund(envelope: Envelope[Any]) -> bool:
    return isinstance(envelope.payload, RecordBackUpdated) and envelope.payload.dispute_id is not None


async def test_through_the_pipeline_a_redelivered_dispute_is_stored_and_shown_once(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    story = history()["A"]
    events, lost = disputed(story)
    for event in events[: len(story.events)]:
        await analytics.send(QUEUE_OF[event.type], event)
    figures_before = analytics.days.summed()

    await analytics.send(LOST_QUEUE, lost)
    await analytics.send(LOST_QUEUE, lost)
    await analytics.send(LOST_QUEUE, lost.model_copy(update={"message_id": "published-again"}))
    for event in events[len(story.events) + 1 :]:
        await analytics.send(QUEUE_OF[event.type], event)

    answer = await internal.get(f"/internal/timeline/{MERCHANT}/{story.payment.payment_id}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [d["dispute_id"] for d in body["disputes"]] == [lost.payload.dispute.dispute_id]
    assert [e["kind"] for e in body["entries"]].count("dispute_lost") == 1
    assert [t["attempt"] for t in body["disputes"][0]["refund_record"]] == [1, 2]
    assert [t["status_code"] for t in body["record_back"]] == [500, 200]
    # The redelivery stored nothing; the republished copy is in the log (its own message id) but folded once: the
    # payment's day moved by one disputed payment and the amount taken back, once.
    assert sum(1 for _, e in analytics.events.events.values() if e.type is MessageType.PAYMENT_DISPUTE_LOST) == 2
    [(day, before)] = figures_before.items()
    assert difference(analytics.days.summed()[day], before) == {
        "payments_disputed_lost": 1,
        "disputed_lost_amount.USD": 2250,
    }
    listed = await internal.get(f"/internal/recoveries/{MERCHANT}", params={"record_back_state": "accepted"})
    assert [p["id"] for p in listed.json()["data"]] == [story.payment.payment_id]
