"""A dispute's course on the read side (`payment.dispute-updated`): an open dispute on a recovered payment puts its
amount at risk in the figures until it ends (won, cancelled or lost), each step shows on the timeline, and through
the consumer pipeline the payment's day moves in and back out again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from recovery_analytics.domain.answers import timeline
from recovery_analytics.domain.figures import difference
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import project
from recovery_contracts.disputes import DisputeObject, DisputeStatus
from recovery_contracts.envelope import Envelope
from support.disputes import dispute_lost, dispute_updated
from support.recovery_history import MERCHANT, QUEUE_OF, Story, history

from .fakes import Analytics

UPDATED, LOST = "analytics.dispute-updated", "analytics.dispute-lost"
WEEKS = timedelta(weeks=6)
OPENED, CHALLENGED, WON = DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_CHALLENGED, DisputeStatus.DISPUTE_WON


def course(story: Story) -> tuple[DisputeObject, Envelope[Any], dict[DisputeStatus, Envelope[Any]]]:
    """Payment A's dispute, its loss (not sent unless a test sends it), and its steps a day apart: opened (answer
    within 7 days), challenged, won."""
    lost = dispute_lost(story.payment, story.at(WEEKS + timedelta(days=3)))
    due = story.at(WEEKS + timedelta(days=7))
    dispute = lost.payload.dispute.model_copy(update={"challenge_required_by": due})
    stripe = {OPENED: "needs_response", CHALLENGED: "under_review", WON: "won"}
    steps = {
        status: dispute_updated(story.payment, dispute, status, story.at(WEEKS + timedelta(days=n)), stripe[status])
        for n, status in enumerate(stripe)
    }
    return dispute, lost, steps


def _figures(story: Story, *extra: Envelope[Any]) -> dict[str, int]:
    view = project(story.payment.payment_id, [*story.events, *extra])
    return dict(ViewRecord.of(view, 1, []).contribution)


def test_an_open_dispute_puts_its_amount_at_risk_until_it_is_won() -> None:
    story = history()["A"]
    _, _, steps = course(story)
    undisputed = _figures(story)

    assert difference(_figures(story, steps[OPENED]), undisputed) == {
        "payments_disputed_open": 1,
        "disputed_open_amount.USD": 2250,
    }
    assert difference(_figures(story, steps[OPENED], steps[CHALLENGED]), undisputed) == {
        "payments_disputed_open": 1,
        "disputed_open_amount.USD": 2250,
    }
    assert _figures(story, *steps.values()) == undisputed


def test_a_dispute_opened_then_lost_counts_as_lost_only() -> None:
    story = history()["A"]
    _, lost, steps = course(story)

    assert difference(_figures(story, steps[OPENED], lost), _figures(story)) == {
        "payments_disputed_lost": 1,
        "disputed_lost_amount.USD": 2250,
    }


def test_each_step_is_on_the_timeline_with_by_when_to_answer_an_open_one() -> None:
    story = history()["A"]
    dispute, _, steps = course(story)

    answer = timeline(project(story.payment.payment_id, [*story.events, *reversed(steps.values())]))

    told = [(e.kind.value, e.at, e.detail) for e in answer.entries if e.kind.value.startswith("dispute_")]
    ours, theirs = dispute.dispute_id, dispute.connector_dispute_id
    head = f"at stripe ({theirs}, dispute stage): 2250 USD disputed, reason fraudulent"
    due = dispute.challenge_required_by.isoformat() if dispute.challenge_required_by else ""
    assert told == [
        ("dispute_opened", story.at(WEEKS), f"dispute {ours} opened {head}, answer by {due}"),
        (
            "dispute_challenged",
            story.at(WEEKS + timedelta(days=1)),
            f"dispute {ours} challenged {head}, answer by {due}",
        ),
        ("dispute_won", story.at(WEEKS + timedelta(days=2)), f"dispute {ours} won {head}"),
    ]
    # Not a lost dispute: the timeline's `disputes` records (lost ones, with their refund record) stay empty.
    assert answer.disputes == [] and answer.recovery_status == "recovered"


async def test_through_the_pipeline_the_day_moves_in_when_opened_and_out_when_won(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    story = history()["A"]
    _, _, steps = course(story)
    for event in story.events:
        await analytics.send(QUEUE_OF[event.type], event)
    before = analytics.days.summed()
    [day] = before

    await analytics.send(UPDATED, steps[OPENED])
    await analytics.send(UPDATED, steps[OPENED])  # a redelivery: stored and counted once
    at_risk = difference(analytics.days.summed()[day], before[day])
    await analytics.send(UPDATED, steps[WON])

    assert at_risk == {"payments_disputed_open": 1, "disputed_open_amount.USD": 2250}
    assert difference(analytics.days.summed()[day], before[day]) == {}
    answer = await internal.get(f"/internal/timeline/{MERCHANT}/{story.payment.payment_id}")
    kinds = [e["kind"] for e in answer.json()["entries"]]
    assert (kinds.count("dispute_opened"), kinds.count("dispute_won")) == (1, 1)
