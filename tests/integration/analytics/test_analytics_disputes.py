"""A dispute lost on a recovered payment against the real broker and database: `payment.dispute-lost` reaches the
running analytics service on its own queue, and the refund record's tries on `record-back.updated`; the payment's
timeline shows the dispute and the refund's tries apart from the payment's record back; the figures count the
payment once among those disputed and what the dispute took back, on the day the payment was accepted, beside it
still recovered; a redelivery changes nothing, and a rebuild from the event log gives the same view, days and
figures. And the list's dispute filter (`dispute_state`) on the real database, beside its record-back filter; and
the dispute list (`analytics_disputes`): each dispute as it stands now, the disputes to answer by deadline."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from recovery_analytics.adapters.days import MongoDailyStore
from recovery_analytics.adapters.rebuild import rebuild
from recovery_analytics.adapters.views import COLLECTION as VIEWS
from recovery_analytics.adapters.views import DISPUTES, INDEXES, MongoViewStore
from recovery_analytics.dependencies import DisputeQuery, RecoveryQuery
from recovery_analytics.domain.record import ViewRecord
from recovery_analytics.domain.view import project
from recovery_cli.stack import Stack
from recovery_contracts.disputes import DisputeStatus
from recovery_contracts.messages import RecordBackState
from recovery_contracts.timestamps import format_ms
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.mongo import connect, ensure_indexes
from recovery_runtime.settings import DEVELOPMENT_INTERNAL_TOKEN
from recovery_runtime.unit_of_work import Transaction
from support.broker import broker_probe, eventually
from support.disputes import dispute_lost, dispute_object, dispute_told, dispute_updated, refund_try
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
        live_dispute = await db[DISPUTES].find_one({"_id": dispute_id})
        assert live_dispute is not None and live_dispute["dispute"]["dispute_status"] == "dispute_lost"
        stack.stop()  # a rebuild runs with the projection stopped
        await rebuild(db)
        assert await db[VIEWS].find_one({"_id": story.payment.payment_id}, {"version": 0}) == live
        assert await db[DISPUTES].find_one({"_id": dispute_id}) == live_dispute
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


async def test_the_lists_creation_window_takes_in_both_its_ends_on_the_index(adb: Any) -> None:
    """`created_from` and `created_to` are both included, on the real wire protocol and the list's indexes (whose
    `created_at` is descending before `_id`), counted and paged alike."""
    await ensure_indexes(adb, INDEXES)
    views = MongoViewStore(adb)
    for story in history().values():
        await views.save(
            ViewRecord.of(project(story.payment.payment_id, story.events), 1, story.events),
            Transaction.one_document(),
        )
    every = (await views.page(RecoveryQuery(merchant_id=MERCHANT, limit=100))).records
    older, newer = sorted({r.created_at for r in every if r.created_at is not None})  # the stories' two days
    made_at = {at: [r.payment_id for r in every if r.created_at == at] for at in (older, newer)}
    assert len(made_at[older]) >= 3 and made_at[newer]

    exactly = RecoveryQuery(merchant_id=MERCHANT, created_from=older, created_to=older, limit=2)
    page = await views.page(exactly)
    following = await views.page(replace(exactly, after=(page.records[-1].created_at, page.records[-1].payment_id)))
    since_newer = await views.page(RecoveryQuery(merchant_id=MERCHANT, created_from=newer))
    until_older = await views.page(RecoveryQuery(merchant_id=MERCHANT, created_to=older))

    assert (page.total, page.more) == (len(made_at[older]), True)
    assert [r.payment_id for r in page.records + following.records][:3] == made_at[older][:3]
    assert [r.payment_id for r in since_newer.records] == made_at[newer]
    assert until_older.total == len(made_at[older])


async def test_the_dispute_list_stores_each_dispute_as_it_stands_and_sorts_those_to_answer_by_deadline(
    adb: Any,
) -> None:
    """The store on the real database: a dispute's document follows its payment's record (a later step replaces
    it, in the record's transaction); newest first, or by deadline with a dispute without one first (MongoDB's
    order of a null), on the indexes declared for them; the filters; one dispute of the merchant's profile."""
    await ensure_indexes(adb, INDEXES)
    stories = history()
    views = MongoViewStore(adb)
    opened, challenged = DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_CHALLENGED
    told: dict[str, list[Any]] = {}
    disputes = {}
    for n, (letter, due) in enumerate([("A", timedelta(days=9)), ("B", timedelta(days=2)), ("F", None)]):
        story = stories[letter]
        at = story.at(LOST_AFTER + timedelta(days=n))
        base = dispute_object(story.payment.payment_id, 1000, at, profile_id=story.payment.profile_id)
        dispute = base.model_copy(
            update={"dispute_status": opened, "challenge_required_by": at + due if due is not None else None}
        )
        disputes[letter] = dispute
        told[letter] = [dispute_updated(story.payment, dispute, opened, at, "needs_response")]

    async def save(letter: str, version: int) -> None:
        story = stories[letter]
        events = [*story.events, *told[letter]]
        record = ViewRecord.of(project(story.payment.payment_id, events), version, events)
        await views.save(record, Transaction.one_document())

    for letter in told:
        await save(letter, 1)

    async def ids(**query: Any) -> list[str]:
        return [d["dispute_id"] for d in await views.disputes(DisputeQuery(merchant_id=MERCHANT, **query))]

    a, b, f = (disputes[k].dispute_id for k in "ABF")
    assert await ids() == [f, b, a]
    assert await ids(statuses=("dispute_opened",), by_answer_by=True) == [f, b, a]
    # A: challenged (answered); a later save of its record replaces its document.
    later = stories["A"].at(LOST_AFTER + timedelta(days=3))
    told["A"].append(dispute_updated(stories["A"].payment, disputes["A"], challenged, later, "under_review"))
    await save("A", 2)
    assert await ids(statuses=("dispute_opened",), by_answer_by=True) == [f, b]
    assert await ids(statuses=("dispute_challenged",)) == [a]
    assert await ids(received=(("gte", disputes["B"].created_at),)) == [f, b]
    assert await ids(received=(("gt", disputes["A"].created_at), ("lt", disputes["F"].created_at))) == [b]
    assert await ids(connectors=("adyen",)) == [] and await ids(limit=1) == [f]
    assert await ids(profile_id="pro_two") == []
    assert await adb[DISPUTES].count_documents({}) == 3
    shown = await views.dispute(MERCHANT, None, a)
    assert shown is not None and shown["dispute_status"] == "dispute_challenged"
    assert shown["created_at"] == format_ms(disputes["A"].created_at)  # received when first told of
    assert (
        await views.dispute(MERCHANT, "pro_two", a) is None and await views.dispute("merchant_other", None, a) is None
    )
    declared = await adb[DISPUTES].index_information()
    assert declared["merchant_status_answer_by"]["key"] == [
        ("merchant_id", 1),
        ("dispute_status", 1),
        ("answer_by", 1),
        ("_id", 1),
    ]
    assert declared["merchant_received"]["key"] == [("merchant_id", 1), ("received_at", -1), ("_id", -1)]
