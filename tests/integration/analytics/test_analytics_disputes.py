"""A dispute lost on a recovered payment against the real broker and database: `payment.dispute-lost` reaches the
running analytics service on its own queue, and the refund record's tries on `record-back.updated`; the payment's
timeline shows the dispute and the refund's tries apart from the payment's record back, a redelivery changes
nothing, and a rebuild from the event log gives the same view."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from recovery_analytics.adapters.rebuild import rebuild
from recovery_analytics.adapters.views import COLLECTION as VIEWS
from recovery_contracts.messages import RecordBackState
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.mongo import connect
from recovery_runtime.settings import DEVELOPMENT_INTERNAL_TOKEN
from support.broker import broker_probe, eventually
from support.disputes import dispute_lost, refund_try
from support.recovery_history import MERCHANT, history
from support.stack import StackFactory

HEADERS = {TOKEN_HEADER: DEVELOPMENT_INTERNAL_TOKEN, MERCHANT_HEADER: MERCHANT}
LOST_AFTER = timedelta(weeks=6)


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

    client = connect(stack.mongodb_url, app_name="analytics-test")
    try:
        db = client[stack.config.mongodb_database]
        assert await db["analytics_events"].count_documents({}) == len(events)  # the redelivery stored nothing
        live = await db[VIEWS].find_one({"_id": story.payment.payment_id}, {"version": 0})
        stack.stop()  # a rebuild runs with the projection stopped
        await rebuild(db)
        assert await db[VIEWS].find_one({"_id": story.payment.payment_id}, {"version": 0}) == live
    finally:
        await client.close()
