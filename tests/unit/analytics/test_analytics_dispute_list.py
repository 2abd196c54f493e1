"""The dispute list on the read side (`GET /v2/disputes/list` and `GET /v2/disputes/{dispute_id}`, answered by the
analytics service's `/internal/disputes/...`): each dispute once, as it stands now (the loss over any step, else the
step told last, received when first told of), whatever order its events came in; newest first or the earliest
deadline to answer first; Hyperswitch's filters; scoped to the merchant and, on a profile-level call, the profile."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import httpx
import pytest

from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import project
from recovery_contracts.disputes import DisputeObject, DisputeStage, DisputeStatus
from recovery_contracts.envelope import Envelope
from recovery_contracts.recovery import RecoveryPayment
from recovery_contracts.timestamps import format_ms
from recovery_runtime.internal_api import PROFILE_HEADER
from support.disputes import dispute_lost, dispute_object, dispute_updated
from support.recovery_history import MERCHANT, QUEUE_OF, Story, history

from .fakes import Analytics

UPDATED, LOST_QUEUE = "analytics.dispute-updated", "analytics.dispute-lost"
OPENED, CHALLENGED = DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_CHALLENGED
WON, LOST = DisputeStatus.DISPUTE_WON, DisputeStatus.DISPUTE_LOST
WEEK = timedelta(weeks=1)
STRIPE_STATUS = {OPENED: "needs_response", CHALLENGED: "under_review", WON: "won"}


def opened(story: Story, after: timedelta, answer_in: timedelta | None, **fields: Any) -> DisputeObject:
    """A dispute opened `after` the story's start, to answer within `answer_in` (None: the connector said no date)."""
    at = story.at(after)
    base = dispute_object(story.payment.payment_id, story.payment.amount, at, profile_id=story.payment.profile_id)
    deadline = at + answer_in if answer_in is not None else None
    return base.model_copy(
        update={"dispute_status": OPENED, "created_at": at, "challenge_required_by": deadline, **fields}
    )


def course(payment: RecoveryPayment, dispute: DisputeObject, *statuses: DisputeStatus) -> list[Envelope[Any]]:
    """The dispute told of in each of `statuses`, a day apart from when it was received; each message built when
    intake told of it (its `created_at`), as intake builds them."""
    told = []
    for n, status in enumerate(statuses):
        at = dispute.created_at + timedelta(days=n)
        now = dispute.model_copy(update={"created_at": at})
        if status is LOST:
            lost, ended = (
                dispute_lost(payment, at),
                now.model_copy(update={"dispute_status": LOST, "connector_status": "lost"}),
            )
            told.append(lost.model_copy(update={"payload": lost.payload.model_copy(update={"dispute": ended})}))
        else:
            told.append(dispute_updated(payment, now, status, at, STRIPE_STATUS[status]))
    return told


@pytest.mark.parametrize("seed", range(4))
def test_each_dispute_stands_as_told_last_or_lost_and_was_received_when_first_told(seed: int) -> None:
    story = history()["A"]
    first = opened(story, WEEK, timedelta(days=7))
    second = opened(story, 2 * WEEK, timedelta(days=7))
    events = [*course(story.payment, first, OPENED, CHALLENGED, LOST), *course(story.payment, second, OPENED, WON)]
    random.Random(seed).shuffle(events)

    view = project(story.payment.payment_id, [*story.events, *events])

    lost, won = view.dispute_objects
    assert (lost.dispute_id, lost.dispute_status, lost.created_at) == (first.dispute_id, LOST, first.created_at)
    assert (won.dispute_id, won.dispute_status, won.created_at) == (second.dispute_id, WON, second.created_at)
    assert won.connector_status == "won" and won.challenge_required_by == second.challenge_required_by
    # Stored as the list answers them.
    assert ViewRecord.of(view, 1, []).disputes == tuple(d.model_dump(mode="json") for d in view.dispute_objects)
    assert project(story.payment.payment_id, story.events).dispute_objects == ()


async def told(analytics: Analytics, *stories_and_events: tuple[Story, list[Envelope[Any]]]) -> None:
    for story, events in stories_and_events:
        for event in story.events:
            await analytics.send(QUEUE_OF[event.type], event)
        for event in events:
            await analytics.send(LOST_QUEUE if event.payload.dispute.dispute_status is LOST else UPDATED, event)


async def test_the_list_newest_first_the_disputes_to_answer_by_deadline_and_one_dispute(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    stories = history()
    a, b, f = stories["A"], stories["B"], stories["F"]
    soon = opened(a, WEEK, timedelta(days=10))  # received first, due last
    sooner = opened(b, 2 * WEEK, timedelta(hours=12))  # due first
    undated = opened(f, 3 * WEEK, None)  # no date: first of all by deadline
    answered = opened(a, 4 * WEEK, timedelta(days=1), dispute_stage=DisputeStage.PRE_DISPUTE, connector_reason="other")
    await told(
        analytics,
        (a, [*course(a.payment, soon, OPENED), *course(a.payment, answered, OPENED, CHALLENGED)]),
        (b, course(b.payment, sooner, OPENED)),
        (f, course(f.payment, undated, OPENED)),
    )
    listing = f"/internal/disputes/{MERCHANT}"

    async def ids(**params: Any) -> list[str]:
        got = await internal.get(listing, params=params)
        assert got.status_code == 200, got.text
        return [DisputeObject.model_validate(d).dispute_id for d in got.json()]

    assert await ids() == [answered.dispute_id, undated.dispute_id, sooner.dispute_id, soon.dispute_id]
    to_answer = await ids(dispute_status="dispute_opened", sort="answer_by")
    assert to_answer == [undated.dispute_id, sooner.dispute_id, soon.dispute_id]
    assert await ids(dispute_status=["dispute_opened", "dispute_challenged"], sort="answer_by", limit=2) == [
        undated.dispute_id,
        sooner.dispute_id,
    ]
    assert await ids(dispute_stage="pre_dispute") == await ids(reason="other") == [answered.dispute_id]
    assert await ids(connector="adyen") == []
    received = format_ms(sooner.created_at)
    assert await ids(**{"received_time.gte": received}) == [answered.dispute_id, undated.dispute_id, sooner.dispute_id]
    assert await ids(**{"received_time.lt": received}) == [soon.dispute_id]
    assert await ids(received_time=received) == [sooner.dispute_id]

    one = await internal.get(f"{listing}/{answered.dispute_id}")
    assert one.status_code == 200, one.text
    shown = DisputeObject.model_validate(one.json())
    assert (shown.dispute_status, shown.connector_status, shown.created_at) == (
        CHALLENGED,
        "under_review",
        answered.created_at,
    )
    missing = await internal.get(f"{listing}/dsp_unknown")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Dispute does not exist in our records"


async def test_the_list_is_the_merchants_and_on_a_profile_level_call_the_profiles(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    stories, elsewhere = history(), history("merchant_other", prefix="other")
    a, d, theirs = stories["A"], stories["D"], elsewhere["A"]
    ours, on_two, not_ours = opened(a, WEEK, None), opened(d, WEEK, None), opened(theirs, WEEK, None)
    await told(
        analytics,
        (a, course(a.payment, ours, OPENED)),
        (d, course(d.payment, on_two, OPENED)),
        (theirs, course(theirs.payment, not_ours, OPENED)),
    )
    listing = f"/internal/disputes/{MERCHANT}"

    async def answer(path: str, profile: str | None = None, **params: str) -> tuple[int, Any]:
        got = await internal.get(path, params=params, headers={PROFILE_HEADER: profile} if profile else {})
        return got.status_code, got.json()

    def ids(got: tuple[int, Any]) -> list[str]:
        return sorted(d["dispute_id"] for d in got[1])

    assert ids(await answer(listing)) == sorted([ours.dispute_id, on_two.dispute_id])
    assert (
        ids(await answer(listing, "pro_two")) == ids(await answer(listing, profile_id="pro_two")) == [on_two.dispute_id]
    )
    assert await answer(listing, "pro_one", profile_id="pro_two") == (200, [])
    assert (await answer("/internal/disputes/merchant_other"))[0] == 404
    # Another merchant's dispute, or another profile's on a profile-level call, answers as one that does not exist.
    unknown = await answer(f"{listing}/dsp_unknown")
    assert await answer(f"{listing}/{not_ours.dispute_id}") == unknown
    assert await answer(f"{listing}/{on_two.dispute_id}", "pro_one") == unknown
    assert (await answer(f"{listing}/{on_two.dispute_id}", "pro_two"))[0] == 200


async def test_the_lists_bad_parameters_are_refused_with_what_is_wrong(internal: httpx.AsyncClient) -> None:
    listing = f"/internal/disputes/{MERCHANT}"
    for params in ({"dispute_status": "opened"}, {"sort": "amount"}, {"limit": "0"}, {"received_time.gt": "soon"}):
        got = await internal.get(listing, params=params)
        assert got.status_code == 422, (params, got.text)
        assert next(iter(params)) in got.text, got.text
