"""A dispute lost on a recovered payment against the real broker and database: `payment.dispute-lost` reaches the
running analytics service on its own queue, and the refund record's tries on `record-back.updated`; the payment's
timeline shows the dispute and the refund's tries apart from the payment's record back; the figures count the
payment once among those disputed and what the dispute took back, on the day the payment was accepted, beside it
still recovered; a redelivery changes nothing, and a rebuild from the event log gives the same view, days and
figures. And the list's dispute filter (`dispute_state`) on the real database, beside its record-back filter."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from recovery_analytics.adapters.days import MongoDailyStore
from recovery_analytics.adapters.rebuild import rebuild
from recovery_analytics.adapters.views import COLLECTION as VIEWS
from recovery_analytics.adapters.views import INDEXES, MongoViewStore
from recovery_analytics.dependencies import RecoveryQuery
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import project
from recovery_cli.stack import Stack
from recovery_contracts.disputes import DisputeStatus
from recovery_contracts.messages import RecordBackState
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.mongo import connect, ensure_indexes
from recovery_runtime.settings import DEVELOPMENT_INTERNAL_TOKEN
from recovery_runtime.unit_of_work import Transaction
from support.broker import broker_probe, eventually
from support.disputes import dispute_lost, dispute_told, refund_try
from support.recovery_history import MERCHANT, history
from support.stack import StackFactory

HEADERS = {TOKEN_HEADER: DEVELOPMENT_INTERNAL_TOKEN, MERCHANT_HEADER: MERCHANT}
LOST_AFTER = timedelta(weeks=6)
RANGE = {"from": "2026-01-15", "to": "2026-01-16"}


async def _days(db: Any) -> dict[date, dict[str, int]]:
    """The merchant's days as stored, each the sum of its parts (a rebuild writes one per day)."""
    summed: dict[date, dict[str, int]] = {}
    for part in await MongoDailyStore(db).between(MERCHANT, None, date(2026, 1, 1), date(2026, 12, 31)):
        day = summed.setdefault(part.day, {})
        for key, value in part.counters.items():
            day[key] = day.get(key, 0) + value
    return {day: {k: v for k, v in counters.items() if v} for day, counters in summed.items()}


async def _figures(stack: Stack, params: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.url("analytics"), headers=HEADERS, timeout=10) as internal:
        answer = await internal.get(f"/internal/analytics/{MERCHANT}", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.timeout(180)
async def test_the_timeline_shows_a_lost_dispute_and_its_refund_record_and_a_rebuild_agrees(
    start_stack: StackFactory,
) -> None:
    stack = start_stack(("analytics",))
    story = history()["A"].recorded_back(1, RecordBackState.ACCEPTED, timedelta(minutes=61), status_code=200)
    paid = story.payment
    dispute = dispute_lost(paid, story.at(LOST_AFTER), reason="product_not_received")
    dispute_id = dispute.payload.dispute.dispute_id
    refunds = [
        refund_try(paid, dispute, 1, RecordBackState.RETRYING, story.at(LOST_AFTER + timedelta(minutes=1)), 503),
        refund_try(paid, dispute, 2, RecordBackState.ACCEPTED, story.at(LOST_AFTER + timedelta(minutes=2)), 200),
    ]
    events = [*story.events, dispute, *refunds]
    async with broker_probe(stack.rabbitmq_url) as probe:
        for event in [*story.events, dispute, dispute, *reversed(refunds)]:
            await probe.publish(event)

    path = f"/internal/timeline/{MERCHANT}/{story.payment.payment_id}"
    async with httpx.AsyncClient(base_url=stack.url("analytics"), headers=HEADERS, timeout=10) as internal:

        async def folded() -> dict[str, Any] | None:
            answer = (await internal.get(path)).json()
            disputes = answer.get("disputes") or []
            return answer if disputes and len(disputes[0]["refund_record"]) == 2 else None

        answer = await eventually(folded, timeout=60)

    [shown] = answer["disputes"]
    assert (shown["dispute_id"], shown["amount"], shown["currency"], shown["reason"]) == (
        dispute_id,
        2250,
        "USD",
        "product_not_received",
    )
    assert [(t["attempt"], t["state"]) for t in shown["refund_record"]] == [(1, "retrying"), (2, "accepted")]
    assert [(t["attempt"], t["billing_connector"]) for t in answer["record_back"]] == [(1, "stripebilling")]
    kinds = [e["kind"] for e in answer["entries"]]
    assert kinds[-3:] == ["dispute_lost", "refund_record", "refund_record"] and kinds.count("record_back") == 1

    # The figures through the API: the payment still recovered, with its amount, and once among the disputed, with
    # what the dispute took back (delivered twice), on the day it was accepted, not the day the dispute was lost.
    figures = await _figures(stack, RANGE)
    lost = {"payments_disputed_lost": 1, "disputed_lost_amount": {"USD": 2250}}
    recovered = {"payments_recovered": 1, "recovered_amount": {"USD": 2250}}
    assert {k: figures[k] for k in [*recovered, *lost]} == {**recovered, **lost}
    [day] = figures["daily"]
    assert (day["date"], {k: day[k] for k in [*recovered, *lost]}) == ("2026-01-15", {**recovered, **lost})
    lost_on = dispute.payload.lost_at.date().isoformat()
    assert (await _figures(stack, {"from": lost_on, "to": lost_on}))["daily"] == []

    client = connect(stack.mongodb_url, app_name="analytics-test")
    try:
        db = client[stack.config.mongodb_database]
        assert await db["analytics_events"].count_documents({}) == len(events)  # the redelivery stored nothing
        live = await db[VIEWS].find_one({"_id": story.payment.payment_id}, {"version": 0})
        live_days = await _days(db)
        stack.stop()  # a rebuild runs with the projection stopped
        await rebuild(db)
        assert await db[VIEWS].find_one({"_id": story.payment.payment_id}, {"version": 0}) == live
        assert await _days(db) == live_days
        assert live_days[date(2026, 1, 15)]["payments_disputed_lost"] == 1
    finally:
        await client.close()
    # The projection started again on the rebuilt read model answers the same figures.
    assert await _figures(start_stack(("analytics",)), RANGE) == figures


async def test_the_list_finds_payments_by_where_their_disputes_stand_beside_the_record_back_filter(adb: Any) -> None:
    """The store's list on the real database, its records saved as the projection saves them: the dispute filter
    takes several states, on the index declared for it, and applies together with the record-back filter."""
    await ensure_indexes(adb, INDEXES)
    stories = history()
    stories["A"].recorded_back(1, RecordBackState.ACCEPTED, timedelta(minutes=61), status_code=200)
    stories["B"].recorded_back(1, RecordBackState.ABANDONED, timedelta(minutes=11), status_code=500)
    opened, won = DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_WON
    disputes = {
        "A": dispute_told(stories["A"].payment, stories["A"].at(LOST_AFTER), opened),
        "B": dispute_told(stories["B"].payment, stories["B"].at(LOST_AFTER), DisputeStatus.DISPUTE_LOST),
        "F": dispute_told(stories["F"].payment, stories["F"].at(LOST_AFTER), opened, won),
    }
    views = MongoViewStore(adb)
    for letter, story in stories.items():
        events = [*story.events, *disputes.get(letter, [])]
        await views.save(
            ViewRecord.of(project(story.payment.payment_id, events), 1, events), Transaction.one_document()
        )

    async def listed(**filters: Any) -> tuple[list[str], int]:
        page = await views.page(RecoveryQuery(merchant_id=MERCHANT, **filters))
        return [r.payment_id for r in page.records], page.total

    assert await listed(dispute_states=("open",)) == (["hist_a"], 1)
    assert await listed(dispute_states=("lost", "ended")) == (["hist_f", "hist_b"], 2)  # newest first
    assert await listed(dispute_states=("open",), record_back_states=("abandoned",)) == ([], 0)
    assert await listed(dispute_states=("lost",), record_back_states=("abandoned",)) == (["hist_b"], 1)
    undisputed = await views.of_merchant(MERCHANT, "hist_c")
    assert undisputed is not None and undisputed.dispute_state is None  # no dispute: in no filter
    declared = (await adb[VIEWS].index_information())["merchant_dispute_created"]["key"]
    assert declared == [("merchant_id", 1), ("dispute_state", 1), ("created_at", -1), ("_id", -1)]
