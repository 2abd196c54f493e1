"""The event repository and the events API's queries against the MongoDB-wire server: no secondary index on the
records or the claims; every lookup goes by `_id` (record keys `<merchant>/<time-ordered event id>`, `_id`
ranges, claims by payment); earlier indexes are dropped."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient

from recovery_contracts.ids import idempotent_event_id, new_attempt_id, new_event_id, new_payment_id
from recovery_dispatcher.adapters.event_queries import MongoEventQueries
from recovery_dispatcher.adapters.event_repository import INDEXES, MongoEventRepository
from recovery_dispatcher.adapters.record_writer import RecordWriter
from recovery_dispatcher.domain.event import EarlierEvent, WebhookEvent
from recovery_dispatcher.domain.ids import created_at_of, initial_event_id, record_key
from recovery_dispatcher.domain.ids import retry_event_id as retry_id_of
from recovery_dispatcher.domain.status import EventStatus
from recovery_runtime.mongo import ensure_indexes

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def retry_event_id(initial_id: str) -> str:
    return retry_id_of(initial_id, secrets.token_hex(8))


def repository(db: Any) -> MongoEventRepository:
    return MongoEventRepository(db, RecordWriter(db.webhook_events, claims=db.webhook_claims))


@pytest.fixture
async def db(mongodb_url: str, mongodb_database: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield client[mongodb_database]
    await client.close()


def record(
    event_id: str, payment_id: str, sequence: int, status: str, merchant: str = "m1", **extra: Any
) -> dict[str, Any]:
    return {
        "_id": record_key(merchant, event_id),
        "event_id": event_id,
        "initial_attempt_id": event_id,
        "merchant_id": merchant,
        "payment_id": payment_id,
        "sequence": sequence,
        "status": status,
        "delivery_attempt": "initial_attempt",
        "created_at": T0 + timedelta(seconds=sequence),
        **extra,
    }


def initial(merchant: str, created_at: datetime, **extra: Any) -> dict[str, Any]:
    """An initial record as the dispatcher writes it: its event id from its creation time."""
    event_id = initial_event_id(new_event_id(), created_at)
    return {**record(event_id, "pay", 1, "delivered", merchant), "created_at": created_at, **extra}


async def claim(db: Any, event_type: str, attempt_id: str, payment_id: str, sequence: int) -> str:
    idempotent_id = idempotent_event_id(attempt_id, event_type)
    event_id = initial_event_id(idempotent_id, T0 + timedelta(seconds=sequence))
    await db.webhook_claims.insert_one(
        {
            "_id": f"{payment_id}#{sequence}",
            "idempotent_event_id": idempotent_id,
            "event_id": event_id,
            "payment_id": payment_id,
            "sequence": sequence,
            "sequence_key": f"{payment_id}#{sequence}",
        }
    )
    return event_id


async def test_indexes_of_earlier_versions_are_dropped_and_ensuring_twice_is_harmless(db: Any) -> None:
    events = db.webhook_events
    await events.create_index([("merchant_id", ASCENDING), ("created_at", DESCENDING)], name="event_merchant")
    await events.create_index([("initial_attempt_id", ASCENDING), ("created_at", ASCENDING)], name="event_attempts")
    await events.create_index([("payment_id", ASCENDING)], name="event_payment")
    await db.webhook_claims.create_index([("sequence_key", ASCENDING)], name="claim_payment_sequence", unique=True)
    await ensure_indexes(db, INDEXES)
    await ensure_indexes(db, INDEXES)
    assert {index["name"] async for index in await events.list_indexes()} == {"_id_"}
    assert {index["name"] async for index in await db.webhook_claims.list_indexes()} == {"_id_"}


async def test_a_retired_index_on_a_collection_not_created_yet_is_no_error(db: Any) -> None:
    await ensure_indexes(db, [spec for spec in INDEXES if spec.retired])
    assert "webhook_events" not in await db.list_collection_names()


async def test_the_attempts_of_an_event_are_its_id_range_and_nothing_of_another_event(db: Any) -> None:
    await ensure_indexes(db, INDEXES)
    store, queries = repository(db), MongoEventQueries(db)
    first, second = initial_event_id("a", T0), initial_event_id("b", T0)
    retries = [retry_event_id(first) for _ in range(3)]
    await db.webhook_events.insert_many(
        [
            record(first, "pay_1", 1, "delivered"),
            record(second, "pay_1", 2, "delivered"),
            *(
                {**record(r, "pay_1", 1, "delivered"), "initial_attempt_id": first, "created_at": T0 + timedelta(n)}
                for n, r in enumerate(retries, start=1)
            ),
            {**record(retry_event_id(second), "pay_1", 2, "delivered"), "initial_attempt_id": second},
        ]
    )
    attempts = await queries.attempts_of("m1", first)
    assert [a["event_id"] for a in attempts] == [first, *retries]
    assert await queries.attempts_of("another_merchant", first) == []
    initial = await store.load_initial("m1", retries[0])
    assert initial is not None and initial.event_id == first
    assert await store.load_initial("another_merchant", first) is None
    assert await store.load("m1/evt", first) is None


async def test_the_events_of_a_payment_are_found_through_its_claims(db: Any) -> None:
    await ensure_indexes(db, INDEXES)
    store = MongoEventQueries(db)
    failed = await claim(db, "payment_failed", "att_1", "pay_a", 1)
    succeeded = await claim(db, "payment_succeeded", "att_2", "pay_a", 2)
    other = await claim(db, "payment_succeeded", "att_3", "pay_ab", 1)  # a payment id that extends "pay_a"
    assert await store.event_ids_of_payment("pay_a") == [failed, succeeded]
    assert await store.event_ids_of_payment("pay_ab") == [other]
    assert await store.event_ids_of_payment("att_2") == []


def test_initial_event_ids_are_time_ordered_and_differ_within_a_millisecond() -> None:
    key = idempotent_event_id("12345_att_0190", "payment_succeeded")
    event_id = initial_event_id(key, T0)
    assert event_id == initial_event_id(key, T0 + timedelta(microseconds=999))
    assert len(event_id) == len(new_event_id()) and event_id.startswith("evt_") and int(event_id[4:], 16) >= 0
    assert int(event_id[4:16], 16) == int(T0.timestamp() * 1000)
    assert initial_event_id(idempotent_event_id("12345_att_0190", "payment_failed"), T0) != event_id
    later = initial_event_id(idempotent_event_id("12345_att_0191", "payment_failed"), T0 + timedelta(milliseconds=1))
    assert later > event_id and initial_event_id(key, T0 + timedelta(days=3650)) > later


def test_record_keys_refuse_merchant_ids_that_could_overlap_another_merchants_range() -> None:
    assert record_key("cloth_seller-1", "evt_1") == "cloth_seller-1/evt_1"
    for merchant in ("", "m/1", "m 1", "m" * 65, "m1\x00"):
        with pytest.raises(ValueError, match="merchant id"):
            record_key(merchant, "evt_1")


def test_the_creation_time_of_a_time_ordered_object_id_and_none_for_other_ids() -> None:
    for object_id in (new_attempt_id("12345"), new_payment_id("12345")):
        created = created_at_of(object_id, datetime.now(UTC))
        assert created is not None and abs(created - datetime.now(UTC)) < timedelta(seconds=5)
    assert created_at_of("att_2", datetime.now(UTC)) is None
    assert created_at_of("12345_att_" + "f" * 32, datetime.now(UTC)) is None  # not version 7
    future = f"{int((datetime.now(UTC) + timedelta(days=2)).timestamp() * 1000):012x}7000800000000000000"
    assert created_at_of(f"12345_att_{future}", datetime.now(UTC)) is None


async def test_a_merchants_list_is_its_id_range_newest_first_bounded_by_time_exactly(db: Any) -> None:
    await ensure_indexes(db, INDEXES)
    store = MongoEventQueries(db)
    at = [T0 + timedelta(milliseconds=n * 250, microseconds=n) for n in range(8)]
    mine = [initial("m1", created) for created in at]
    # Merchants whose ids sort next to "m1/" ("-" before "/"; "0", "_" and letters after it), retry records.
    others = [initial(m, T0 + timedelta(seconds=1)) for m in ("m1-a", "m1_a", "m10", "m1a")]
    retries = [
        {**record(retry_event_id(doc["event_id"]), "pay", 1, "delivered"), "delivery_attempt": "automatic_retry"}
        for doc in mine[:3]
    ]
    await db.webhook_events.insert_many([*mine, *others, *retries])
    newest_first = [doc["event_id"] for doc in reversed(mine)]

    docs, total, more = await store.list_initial("m1", {}, 0, 100)
    assert [d["event_id"] for d in docs] == newest_first and total == 8 and not more
    docs, total, more = await store.list_initial("m1", {}, 2, 3)
    assert [d["event_id"] for d in docs] == newest_first[2:5] and total == 8 and more
    # A full last page: nothing follows it.
    docs, _, more = await store.list_initial("m1", {}, 5, 3)
    assert [d["event_id"] for d in docs] == newest_first[5:] and not more
    # Inclusive bounds (BSON keeps milliseconds, as the event ids do).
    window = {"created_at": {"$gte": at[2], "$lte": at[5]}}
    docs, total, _ = await store.list_initial("m1", window, 0, 100, after=at[2], before=at[5])
    assert [d["event_id"] for d in docs] == newest_first[2:6] and total == 4
    just_after = at[2] + timedelta(milliseconds=1)
    docs, *_ = await store.list_initial("m1", {"created_at": {"$gte": just_after}}, 0, 100, after=just_after)
    assert [d["event_id"] for d in docs] == newest_first[:5]
    docs, *_ = await store.list_initial("m1", {"created_at": {"$lte": at[0]}}, 0, 100, before=at[0])
    assert [d["event_id"] for d in docs] == newest_first[-1:]
    by_id = {"_id": {"$in": [mine[1]["_id"], mine[6]["_id"]]}}
    docs, total, _ = await store.list_initial("m1", by_id, 0, 100)
    assert [d["event_id"] for d in docs] == [mine[6]["event_id"], mine[1]["event_id"]] and total == 2
    docs, total, _ = await store.list_initial("m10", {}, 0, 100)
    assert [d["merchant_id"] for d in docs] == ["m10"] and total == 1
    with pytest.raises(ValueError, match="merchant id"):
        await store.list_initial("m/1", {}, 0, 100)


async def test_a_cursor_pages_through_a_merchants_list_and_the_count_is_capped(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ensure_indexes(db, INDEXES)
    store = MongoEventQueries(db)
    mine = [initial("m1", T0 + timedelta(milliseconds=n)) for n in range(7)]
    await db.webhook_events.insert_many([*mine, initial("m1a", T0)])
    newest_first = [doc["event_id"] for doc in reversed(mine)]
    pages, below = [], None
    for _ in range(4):
        docs, total, more = await store.list_initial("m1", {}, 0, 3, below=below)
        assert total == 7  # every match, whatever the page
        pages.append([d["event_id"] for d in docs])
        if not more:
            break
        below = record_key("m1", docs[-1]["event_id"])
    assert pages == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    # A cursor within a list of keys, and with time bounds.
    by_id = {"_id": {"$in": [mine[1]["_id"], mine[4]["_id"], mine[6]["_id"]]}}
    docs, total, _ = await store.list_initial("m1", by_id, 0, 10, below=mine[6]["_id"])
    assert [d["event_id"] for d in docs] == [mine[4]["event_id"], mine[1]["event_id"]] and total == 3
    docs, *_ = await store.list_initial("m1", {}, 0, 10, before=mine[5]["created_at"], below=mine[3]["_id"])
    assert [d["event_id"] for d in docs] == newest_first[4:]
    # The count stops at the cap (a count costs at most that many records).
    monkeypatch.setattr("recovery_dispatcher.adapters.event_queries.EVENTS_COUNT_CAP", 5)
    docs, total, more = await store.list_initial("m1", {}, 0, 2)
    assert total == 5 and len(docs) == 2 and more


async def test_the_earliest_unfinished_earlier_event_holds_a_later_one_back(db: Any) -> None:
    await ensure_indexes(db, INDEXES)
    store = repository(db)
    first = await claim(db, "payment_failed", "att_1", "pay_o", 1)
    second = await claim(db, "payment_failed", "att_2", "pay_o", 2)
    await claim(db, "payment_succeeded", "att_3", "pay_o", 3)
    # The first is claimed but not recorded yet (its first attempt in flight): it holds both later ones.
    assert (await store.earlier_unfinished(event("pay_o", 3)) or EMPTY).event_id == first
    due = T0 + timedelta(minutes=5)
    await db.webhook_events.insert_many(
        [record(first, "pay_o", 1, "delivered"), record(second, "pay_o", 2, "retry_scheduled", next_retry_at=due)]
    )
    pending = await store.earlier_unfinished(event("pay_o", 3))
    assert pending is not None and pending.event_id == second and pending.next_retry_at == due
    assert await store.earlier_unfinished(event("pay_o", 2)) is None
    await db.webhook_events.update_one({"_id": record_key("m1", second)}, {"$set": {"status": "failed"}})
    assert await store.earlier_unfinished(event("pay_o", 3)) is None
    assert await store.earlier_unfinished(event("pay_o", 1)) is None


EMPTY = EarlierEvent("", None, None)


def event(payment_id: str, sequence: int) -> WebhookEvent:
    return WebhookEvent(
        event_id=f"evt_{sequence}",
        idempotent_event_id=f"key_{sequence}",
        event_type="payment_succeeded",
        primary_object_id="att",
        payment_id=payment_id,
        merchant_id="m1",
        profile_id="pro",
        created_at=T0,
        body=b"{}",
        sequence=sequence,
    )


async def test_an_event_is_taken_only_at_the_retry_it_was_loaded_at(db: Any) -> None:
    """A copy of `webhook.deliver` for retry 1, loaded just before another dispatcher's delivery of that retry
    settled (retry 2 scheduled for later), cannot take retry 2 early."""
    store = repository(db)
    doc = initial("m1", T0, status="retry_scheduled", retry_index=1, next_retry_at=T0 + timedelta(minutes=1))
    await db.webhook_events.insert_one(doc)
    loaded = await store.load("m1", doc["event_id"])
    assert loaded is not None and loaded.retry_index == 1
    later = T0 + timedelta(minutes=30)
    await db.webhook_events.update_one({"_id": doc["_id"]}, {"$set": {"retry_index": 2, "next_retry_at": later}})
    now, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=3)

    assert not await store.take(loaded, (EventStatus.RETRY_SCHEDULED,), now, until, "dispatcher-2")
    current = await store.load("m1", doc["event_id"])
    assert current is not None and await store.take(current, (EventStatus.RETRY_SCHEDULED,), now, until, "dispatcher-2")
    taken = await db.webhook_events.find_one({"_id": doc["_id"]})
    assert (taken["status"], taken["retry_index"], taken["lease_owner"]) == ("delivering", 2, "dispatcher-2")
