"""The projection through its real consumer pipeline (in-memory stores) and its internal API: the figures after a
shuffled, duplicated history are the hand-worked ones; the list, the intent and the timeline answer per merchant."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from recovery_analytics.domain import record as record_module
from recovery_analytics.domain.payment_events import payment_of
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import project
from recovery_analytics.handlers import MAX_TRIES, PARTS, DayParts, project_event
from recovery_analytics.settings import AnalyticsSettings
from recovery_contracts.disputes import DisputeStatus
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import RecordBackState
from recovery_runtime.bus import AlreadyApplied
from recovery_runtime.internal_api import MERCHANT_HEADER, PROFILE_HEADER
from recovery_runtime.topology import queues_of
from support.disputes import dispute_told
from support.recovery_history import EXPECTED_ANALYTICS, MERCHANT, QUEUE_OF, all_events, history

from .fakes import Analytics

RANGE = {"from": "2026-01-15", "to": "2026-01-16"}
QUEUES = {queue.name: queue for queue in queues_of("analytics")}


async def _replay(analytics: Analytics, seed: int = 3) -> None:
    events = all_events(history())
    events = events + events[::2]  # a third of them redelivered
    random.Random(seed).shuffle(events)
    for event in events:
        await analytics.send(QUEUE_OF[event.type], event)


async def test_a_shuffled_history_with_redeliveries_gives_the_hand_worked_figures(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    await _replay(analytics)

    answer = await internal.get(f"/internal/analytics/{MERCHANT}", params=RANGE)

    assert answer.status_code == 200, answer.text
    assert answer.json() == EXPECTED_ANALYTICS
    assert len(analytics.events.events) == 18  # each event stored once


async def test_the_figures_of_one_profile_and_of_a_day_without_payments(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    await _replay(analytics)

    two = (await internal.get(f"/internal/analytics/{MERCHANT}", params={**RANGE, "profile_id": "pro_two"})).json()
    empty = (
        await internal.get(f"/internal/analytics/{MERCHANT}", params={"from": "2026-02-01", "to": "2026-02-01"})
    ).json()

    assert (two["payments_total"], two["payments_in_progress"], two["recovery_rate"]) == (1, 1, None)
    assert two["by_algorithm"] == {"monitoring": {"payments": 1, "recovered": 0, "declines": 0}}
    assert (empty["payments_total"], empty["daily"], empty["time_to_recover"]) == (0, [], {"p50": None, "p90": None})


async def test_a_view_saved_meanwhile_by_another_instance_is_folded_again(analytics: Analytics) -> None:
    story = history()["B"]
    analytics.views.conflicts = MAX_TRIES - 1

    for event in story.events:
        await analytics.send(QUEUE_OF[event.type], event)

    record = analytics.views.records[story.payment.payment_id]
    assert (record.status, record.version) == ("recovered", 2)
    [counters] = analytics.days.summed().values()
    assert counters["payments_recovered"] == 1 and "payments_in_progress" not in counters


async def test_a_payments_events_fold_from_its_view_alone(analytics: Analytics) -> None:
    story = history()["C"]

    for event in story.events:
        await analytics.send(QUEUE_OF[event.type], event)

    # The request (first) saves a view without reading one; every later event reads the view, which carries the
    # events before it: the event log is written, never read.
    assert analytics.views.reads == len(story.events) - 1
    assert analytics.events.reads == 0
    record = analytics.views.records[story.payment.payment_id]
    assert record == _folded(story.events, record.version)
    assert record.history is not None and [e.message_id for e in record.history] == [e.message_id for e in story.events]


async def test_every_view_of_a_shuffled_history_with_redeliveries_is_the_fold_of_all_its_events(
    analytics: Analytics,
) -> None:
    stories = history()
    events = all_events(stories)
    events = events + events[1::3]
    random.Random(11).shuffle(events)
    for event in events:
        await analytics.send(QUEUE_OF[event.type], event)

    for story in stories.values():
        record = analytics.views.records[story.payment.payment_id]
        assert record == _folded(story.events, record.version)
    assert analytics.events.reads == 0


async def test_a_request_that_arrives_after_its_payments_other_events_is_folded_again_on_their_view(
    analytics: Analytics,
) -> None:
    story = history()["A"]
    request, *later = story.events

    for event in [*later, request]:
        await analytics.send(QUEUE_OF[event.type], event)

    # Its first try took no view to be stored and lost the insert; the next read the view and folded on it.
    record = analytics.views.records[story.payment.payment_id]
    assert (record.version, record.status) == (len(story.events), "recovered")
    assert record == _folded(story.events, record.version)
    assert analytics.events.reads == 0
    [counters] = analytics.days.summed().values()
    assert (counters["payments_recovered"], counters["recovered_amount.USD"]) == (1, 2250)


async def test_a_view_stored_without_its_events_folds_from_the_event_log_once(analytics: Analytics) -> None:
    story = history()["F"]
    payment_id = story.payment.payment_id
    for event in story.events[:2]:
        await analytics.send(QUEUE_OF[event.type], event)
    # As the code before views carried their events stored it.
    analytics.views.records[payment_id] = replace(analytics.views.records[payment_id], history=None)

    for event in story.events[2:]:
        await analytics.send(QUEUE_OF[event.type], event)

    assert analytics.events.reads == 1  # the next event read the log; the view it saved carried the events again
    record = analytics.views.records[payment_id]
    assert record == _folded(story.events, record.version) and record.history is not None


async def test_a_payment_with_more_events_than_a_view_carries_folds_from_the_event_log(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record_module, "EMBEDDED_MAX", 2)
    story = history()["C"]

    for event in story.events:
        await analytics.send(QUEUE_OF[event.type], event)

    # Events 1 and 2 are carried; the 3rd folds on them and saves a view carrying none; the 4th and 5th read the log.
    assert analytics.events.reads == len(story.events) - 3
    record = analytics.views.records[story.payment.payment_id]
    assert record.history is None and record == _folded(story.events, record.version)


def _folded(events: list[Envelope[Any]], version: int) -> ViewRecord:
    """The record folding all of a payment's events at once gives (as the rebuild does)."""
    payment_id = payment_of(events[0])
    assert payment_id is not None
    return ViewRecord.of(project(payment_id, events), version=version, events=events)


async def test_a_history_whose_every_change_moved_another_part_of_its_day_gives_the_hand_worked_figures(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    # As concurrent transactions and several instances would: each event's change on a part of its own, so a
    # payment added on one part is moved on another (a part's counters may go below zero; their sum may not).
    events = all_events(history())
    events = events + events[::2]
    random.Random(5).shuffle(events)
    for n, event in enumerate(events):
        try:
            await project_event(analytics.adapters, DayParts(offset=n % PARTS), event, QUEUES[QUEUE_OF[event.type]])
        except AlreadyApplied:
            pass

    answer = await internal.get(f"/internal/analytics/{MERCHANT}", params=RANGE)

    assert answer.json() == EXPECTED_ANALYTICS
    assert any(value < 0 for counters in analytics.days.days.values() for value in counters.values())


async def test_transactions_in_flight_hold_parts_of_their_own_the_lowest_free_first() -> None:
    parts = DayParts(parts=3, offset=1)
    async with parts.lease() as a, parts.lease() as b:
        async with parts.lease() as c:
            assert (a, b, c) == (1, 2, 0)
            fourth = asyncio.ensure_future(_lease_once(parts))
            await asyncio.sleep(0)
            assert not fourth.done()  # all three held: it waits for one to be given back
        assert await fourth == 0
    async with parts.lease() as again:
        assert again == 1


async def _lease_once(parts: DayParts) -> int:
    async with parts.lease() as part:
        return part


async def test_the_list_pages_by_offset_and_by_cursor_and_filters_by_status(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    await _replay(analytics)
    path = f"/internal/recoveries/{MERCHANT}"

    first = (await internal.get(path, params={"limit": 4})).json()
    by_cursor = (await internal.get(path, params={"limit": 4, "cursor": first["next_cursor"]})).json()
    by_offset = (await internal.get(path, params={"limit": 4, "offset": 4})).json()
    recovered = (await internal.get(path, params={"status": "recovered"})).json()
    day_one = (await internal.get(path, params={"created_to": "2026-01-15T23:59:59Z"})).json()

    assert (first["count"], first["total_count"]) == (4, 6)
    # Newest first: the second day's payments (f, e, d), then the first day's (c, b, a).
    assert [p["id"] for p in first["data"]] == ["hist_f", "hist_e", "hist_d", "hist_c"]
    assert [p["id"] for p in by_cursor["data"]] == [p["id"] for p in by_offset["data"]] == ["hist_b", "hist_a"]
    assert by_cursor["next_cursor"] is None
    assert sorted(p["id"] for p in recovered["data"]) == ["hist_a", "hist_b", "hist_f"]
    assert sorted(p["id"] for p in day_one["data"]) == ["hist_a", "hist_b", "hist_c"]
    item = next(p for p in first["data"] if p["id"] == "hist_c")
    assert (item["status"], item["attempt_count"], item["error"]["code"]) == ("terminated", 2, "insufficient_funds")
    assert item["amount"]["order_amount"] == 5000 and item["amount"]["currency"] == "EUR"


@pytest.mark.parametrize(
    ("filters", "listed"),
    [
        ({}, ["hist_f", "hist_e", "hist_d", "hist_c", "hist_b", "hist_a"]),
        ({"status": "recovered"}, ["hist_f", "hist_b", "hist_a"]),
        ({"profile_id": "pro_one", "created_from": "2026-01-16T00:00:00Z"}, ["hist_f", "hist_e"]),
    ],
)
async def test_the_list_gives_a_cursor_only_when_something_follows_the_page(
    analytics: Analytics, internal: httpx.AsyncClient, filters: dict[str, str], listed: list[str]
) -> None:
    await _replay(analytics)
    path = f"/internal/recoveries/{MERCHANT}"

    exactly = (await internal.get(path, params={**filters, "limit": len(listed)})).json()
    first = (await internal.get(path, params={**filters, "limit": len(listed) - 1})).json()
    rest = (
        await internal.get(path, params={**filters, "limit": len(listed) - 1, "cursor": first["next_cursor"]})
    ).json()
    last_by_offset = (await internal.get(path, params={**filters, "limit": 1, "offset": len(listed) - 1})).json()

    assert ([p["id"] for p in exactly["data"]], exactly["next_cursor"]) == (listed, None)  # a full last page
    assert [p["id"] for p in first["data"]] == listed[:-1] and first["next_cursor"] is not None
    assert ([p["id"] for p in rest["data"]], rest["next_cursor"]) == (listed[-1:], None)
    assert ([p["id"] for p in last_by_offset["data"]], last_by_offset["next_cursor"]) == (listed[-1:], None)
    assert {exactly["total_count"], first["total_count"], rest["total_count"]} == {len(listed)}


async def test_the_intent_and_the_timeline_answer_their_merchant_only(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    await _replay(analytics)

    intent = await internal.get(f"/internal/recoveries/{MERCHANT}/hist_a")
    story = await internal.get(f"/internal/timeline/{MERCHANT}/hist_a")
    other = {MERCHANT_HEADER: "merchant_other"}
    foreign = [
        await internal.get(f"/internal/recoveries/{MERCHANT}/hist_a", headers=other),
        await internal.get(f"/internal/timeline/{MERCHANT}/hist_a", headers=other),
        await internal.get("/internal/timeline/merchant_other/hist_a", headers=other),
        await internal.get(f"/internal/timeline/{MERCHANT}/hist_unknown"),
    ]

    assert intent.status_code == 200, intent.text
    assert (intent.json()["status"], intent.json()["amount_details"]["order_amount"]) == ("recovered", 2250)
    assert intent.json()["card_attached"] == 1
    assert [e["kind"] for e in story.json()["entries"]] == [
        "recovery_accepted",
        "attempt_failed",
        "attempt_succeeded",
        "recovery_finished",
    ]
    assert [a["decline_class"] for a in story.json()["attempts"]] == ["insufficient_funds", None]
    assert [r.status_code for r in foreign] == [404, 404, 404, 404]
    assert foreign[0].json()["error"]["code"] == "HE_02"


async def test_bad_filters_get_a_clear_error(internal: httpx.AsyncClient) -> None:
    reversed_range = await internal.get(
        f"/internal/analytics/{MERCHANT}", params={"from": "2026-02-02", "to": "2026-02-01"}
    )
    not_a_day = await internal.get(f"/internal/analytics/{MERCHANT}", params={"from": "yesterday"})
    bad_cursor = await internal.get(f"/internal/recoveries/{MERCHANT}", params={"cursor": "not-ours"})
    bad_status = await internal.get(f"/internal/recoveries/{MERCHANT}", params={"status": "lost"})

    assert reversed_range.status_code == 422 and "is after" in reversed_range.json()["error"]["message"]
    assert not_a_day.status_code == 422 and "`from` must be a date" in not_a_day.json()["error"]["message"]
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.json()["error"]["message"]
    assert bad_status.status_code == 422


def test_no_more_messages_in_flight_than_there_are_day_parts_to_hold() -> None:
    # Each message in flight holds a part of its day; beyond the parts, messages would only wait.
    AnalyticsSettings(analytics_max_in_flight=PARTS)
    with pytest.raises(ValidationError, match="analytics_max_in_flight"):
        AnalyticsSettings(analytics_max_in_flight=PARTS + 1)


async def test_a_profile_level_call_reads_its_profile_only(analytics: Analytics, internal: httpx.AsyncClient) -> None:
    await _replay(analytics)
    as_one = {PROFILE_HEADER: "pro_one"}
    as_two = {PROFILE_HEADER: "pro_two"}

    async def answer(path: str, headers: dict[str, str], **params: str) -> tuple[int, Any]:
        got = await internal.get(path, headers=headers, params=params)
        return got.status_code, got.json()

    # hist_d is pro_two's: for pro_one it answers as an unknown payment; pro_two and the merchant find it.
    for path in (f"/internal/recoveries/{MERCHANT}/{{}}", f"/internal/timeline/{MERCHANT}/{{}}"):
        other = await answer(path.format("hist_d"), as_one)
        assert other == await answer(path.format("hist_unknown"), as_one) and other[0] == 404
        assert (await answer(path.format("hist_d"), as_two))[0] == 200
        assert (await answer(path.format("hist_d"), {}))[0] == 200
        assert (await answer(path.format("hist_a"), as_one))[0] == 200

    def ids(page: tuple[int, Any]) -> list[str]:
        return [p["id"] for p in page[1]["data"]]

    listing = f"/internal/recoveries/{MERCHANT}"
    assert ids(await answer(listing, as_two)) == ids(await answer(listing, {}, profile_id="pro_two")) == ["hist_d"]
    assert ids(await answer(listing, as_one, profile_id="pro_one")) == ids(await answer(listing, as_one))
    assert len(ids(await answer(listing, {}))) == 6
    # Both named and different: the list of a profile outside the call's, as of a profile that does not exist.
    assert await answer(listing, as_one, profile_id="pro_two") == await answer(listing, {}, profile_id="pro_none")

    figures = f"/internal/analytics/{MERCHANT}"
    assert await answer(figures, as_two, **RANGE) == await answer(figures, {}, **RANGE, profile_id="pro_two")
    mismatch = await answer(figures, as_one, **RANGE, profile_id="pro_two")
    nothing = await answer(figures, {}, **RANGE, profile_id="pro_none")
    assert mismatch[1] == {**nothing[1], "profile_id": "pro_two"} and mismatch[1]["payments_total"] == 0


async def test_the_list_filters_by_where_the_record_back_stands_after_its_last_try(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    """The record backs to start again (abandoned, blocked) found in the list: the filter takes several states."""
    minutes = lambda n: timedelta(minutes=n)  # noqa: E731
    stories = history()
    abandoned = (
        stories["A"]
        .recorded_back(1, RecordBackState.RETRYING, minutes(61), status_code=500)
        .recorded_back(14, RecordBackState.ABANDONED, minutes(62), status_code=500)
    )
    blocked = stories["B"].recorded_back(1, RecordBackState.BLOCKED, minutes(61), error="blocked: 10.0.0.1")
    accepted = stories["F"].recorded_back(1, RecordBackState.ACCEPTED, minutes(61), status_code=200)
    for story in (abandoned, blocked, accepted):
        for event in story.events:
            await analytics.send(QUEUE_OF[event.type], event)
    path = f"/internal/recoveries/{MERCHANT}"

    attention = await internal.get(path, params=[("record_back_state", "abandoned"), ("record_back_state", "blocked")])
    done = await internal.get(path, params={"record_back_state": "accepted"})
    unknown = await internal.get(path, params={"record_back_state": "lost"})

    assert attention.status_code == 200, attention.text
    listed = sorted(p["id"] for p in attention.json()["data"])
    assert listed == sorted([abandoned.payment.payment_id, blocked.payment.payment_id])
    assert attention.json()["total_count"] == 2
    assert [p["id"] for p in done.json()["data"]] == [accepted.payment.payment_id]
    assert unknown.status_code == 422  # intake answers it 400 IR_06, as any bad parameter


async def test_the_list_filters_by_where_the_payments_disputes_stand(
    analytics: Analytics, internal: httpx.AsyncClient
) -> None:
    """The recovered payments with a dispute to answer (open), or lost, found in the list: the filter takes several
    states, and a payment without a dispute matches none."""
    queue = {
        **QUEUE_OF,
        MessageType.PAYMENT_DISPUTE_UPDATED: "analytics.dispute-updated",
        MessageType.PAYMENT_DISPUTE_LOST: "analytics.dispute-lost",
    }
    stories = history()
    weeks = timedelta(weeks=6)
    opened = dispute_told(stories["A"].payment, stories["A"].at(weeks), DisputeStatus.DISPUTE_OPENED)
    lost = dispute_told(stories["B"].payment, stories["B"].at(weeks), DisputeStatus.DISPUTE_LOST)
    won = dispute_told(
        stories["F"].payment, stories["F"].at(weeks), DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_WON
    )
    for event in [*all_events(stories), *opened, *lost, *won]:
        await analytics.send(queue[event.type], event)
    path = f"/internal/recoveries/{MERCHANT}"

    to_answer = await internal.get(path, params={"dispute_state": "open"})
    settled = await internal.get(path, params=[("dispute_state", "lost"), ("dispute_state", "ended")])
    unknown = await internal.get(path, params={"dispute_state": "won"})

    assert to_answer.status_code == 200, to_answer.text
    assert [p["id"] for p in to_answer.json()["data"]] == ["hist_a"]
    assert sorted(p["id"] for p in settled.json()["data"]) == ["hist_b", "hist_f"]
    assert settled.json()["total_count"] == 2
    assert unknown.status_code == 422  # intake answers it 400 IR_06, as any bad parameter
