"""The recover's reads and writes on the MongoDB-wire server: the merchant's failed initial events of a window, of
a profile when asked, oldest first after a cursor, on the merchant's `_id` range (no other merchant's, no attempt
record, nothing delivered or pending); and reopening one is a compare-and-set, so two recovers of one event reopen
it once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from recovery_dispatcher.adapters.event_documents import initial_document
from recovery_dispatcher.adapters.event_queries import MongoEventQueries
from recovery_dispatcher.adapters.event_repository import MongoEventRepository
from recovery_dispatcher.adapters.record_writer import RecordWriter
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.ids import initial_event_id, retry_event_id
from recovery_dispatcher.domain.status import EventStatus

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(mongodb_url: str, mongodb_database: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield client[mongodb_database]
    await client.close()


def event(n: int, status: EventStatus, merchant: str = "m1", profile: str = "pro_a") -> WebhookEvent:
    created = T0 + timedelta(minutes=n)
    idempotent = f"idem_{merchant}_{n}"
    return WebhookEvent(
        event_id=initial_event_id(idempotent, created),
        idempotent_event_id=idempotent,
        event_type="payment_succeeded",
        primary_object_id=f"12345_att_{n}",
        payment_id=f"12345_pay_{n}",
        merchant_id=merchant,
        profile_id=profile,
        created_at=created,
        body=b'{"n": %d}' % n,
        sequence=1,
        status=status,
        status_reason="RETRIES_EXCEEDED: HTTP 500" if status is EventStatus.FAILED else None,
        finished_at=created if status is EventStatus.FAILED else None,
    )


async def test_the_failed_events_of_a_window_oldest_first_of_the_merchant_and_profile(db: Any) -> None:
    failed = [event(n, EventStatus.FAILED) for n in (1, 3, 5, 7)]
    others = [
        event(2, EventStatus.DELIVERED),
        event(4, EventStatus.RETRY_SCHEDULED),
        event(6, EventStatus.FAILED, merchant="m2"),
        event(8, EventStatus.FAILED, profile="pro_b"),
        event(30, EventStatus.FAILED),  # after the window
    ]
    await db.webhook_events.insert_many([initial_document(e) for e in failed + others])
    # A later attempt's record of a failed event is no event of its own.
    attempt = {**initial_document(failed[0]), "delivery_attempt": "automatic_retry"}
    attempt["_id"] = attempt["_id"] + "_r" + "0" * 16
    attempt["event_id"] = retry_event_id(failed[0].event_id, "0" * 16)
    await db.webhook_events.insert_one(attempt)
    queries = MongoEventQueries(db)
    until = T0 + timedelta(minutes=20)

    of_a = await queries.failed_since("m1", T0, until, "pro_a", None, 3)
    rest = await queries.failed_since("m1", T0, until, "pro_a", of_a[-1].event_id, 3)
    merchant_wide = await queries.failed_since("m1", T0 + timedelta(minutes=4), until, None, None, 10)

    assert [e.event_id for e in of_a] == [e.event_id for e in failed[:3]]
    assert [e.event_id for e in rest] == [failed[3].event_id]
    assert of_a[0] == failed[0]  # read back whole: its body, reason and finish
    assert [e.event_id for e in merchant_wide] == [failed[2].event_id, failed[3].event_id, others[3].event_id]


async def test_two_recovers_of_one_event_reopen_it_once(db: Any) -> None:
    failed = event(1, EventStatus.FAILED)
    await db.webhook_events.insert_one(initial_document(failed))
    events = MongoEventRepository(db, RecordWriter(db.webhook_events, claims=db.webhook_claims))
    now = T0 + timedelta(days=1)
    first, second = failed.recovered(now), failed.recovered(now + timedelta(seconds=1))

    assert await events.reopen(failed, first.event, None) is True
    assert await events.reopen(failed, second.event, None) is False

    stored = await events.load("m1", failed.event_id)
    assert stored is not None
    assert (stored.status, stored.retry_index, stored.next_retry_at, stored.finished_at) == (
        EventStatus.RETRY_SCHEDULED,
        0,
        now,
        None,
    )
