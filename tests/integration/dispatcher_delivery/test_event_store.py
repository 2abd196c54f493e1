"""EventStore against the MongoDB-wire server: the records carry one secondary index (the merchant's list), the
claims none, and every other lookup goes by `_id` (computed ids, `_id` ranges); earlier indexes are dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, AsyncMongoClient

from recovery_contracts.ids import idempotent_event_id, new_event_id
from recovery_dispatcher.adapters.store import (
    INDEXES,
    EventStore,
    event_ids_of_attempt,
    initial_event_id,
    retry_record_id,
)
from recovery_runtime.mongo import ensure_indexes

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
async def db(mongodb_url: str, mongodb_database: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield client[mongodb_database]
    await client.close()


def record(event_id: str, payment_id: str, sequence: int, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "_id": event_id,
        "initial_attempt_id": event_id,
        "merchant_id": "m1",
        "payment_id": payment_id,
        "sequence": sequence,
        "status": status,
        "delivery_attempt": "initial_attempt",
        "created_at": T0 + timedelta(seconds=sequence),
        **extra,
    }


async def claim(db: Any, event_type: str, attempt_id: str, payment_id: str, sequence: int) -> str:
    idempotent_id = idempotent_event_id(attempt_id, event_type)
    event_id = initial_event_id(idempotent_id)
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
    await events.create_index([("initial_attempt_id", ASCENDING), ("created_at", ASCENDING)], name="event_attempts")
    await events.create_index([("payment_id", ASCENDING)], name="event_payment")
    await db.webhook_claims.create_index([("sequence_key", ASCENDING)], name="claim_payment_sequence", unique=True)
    await ensure_indexes(db, INDEXES)
    await ensure_indexes(db, INDEXES)
    assert {index["name"] async for index in await events.list_indexes()} == {"_id_", "event_merchant"}
    assert {index["name"] async for index in await db.webhook_claims.list_indexes()} == {"_id_"}


async def test_a_retired_index_on_a_collection_not_created_yet_is_no_error(db: Any) -> None:
    await ensure_indexes(db, [spec for spec in INDEXES if spec.retired])
    assert "webhook_events" not in await db.list_collection_names()


async def test_the_attempts_of_an_event_are_its_id_range_and_nothing_of_another_event(db: Any) -> None:
    await ensure_indexes(db, INDEXES)
    store = EventStore(db)
    first, second = new_event_id(), new_event_id()
    retries = [retry_record_id(first) for _ in range(3)]
    await db.webhook_events.insert_many(
        [
            record(first, "pay_1", 1, "delivered"),
            record(second, "pay_1", 2, "delivered"),
            *(
                {**record(r, "pay_1", 1, "delivered"), "initial_attempt_id": first, "created_at": T0 + timedelta(n)}
                for n, r in enumerate(retries, start=1)
            ),
            {**record(retry_record_id(second), "pay_1", 2, "delivered"), "initial_attempt_id": second},
        ]
    )
    attempts = await store.attempts_of(first, "m1")
    assert [a["_id"] for a in attempts] == [first, *retries]
    assert await store.attempts_of(first, "another_merchant") == []


async def test_the_events_of_an_object_are_found_by_payment_through_the_claims_and_by_attempt_computed(
    db: Any,
) -> None:
    await ensure_indexes(db, INDEXES)
    store = EventStore(db)
    failed = await claim(db, "payment_failed", "att_1", "pay_a", 1)
    succeeded = await claim(db, "payment_succeeded", "att_2", "pay_a", 2)
    other = await claim(db, "payment_succeeded", "att_3", "pay_ab", 1)  # a payment id that extends "pay_a"
    assert set(await store.event_ids_of_object("pay_a")) >= {failed, succeeded}
    assert other not in await store.event_ids_of_object("pay_a")
    assert succeeded in await store.event_ids_of_object("att_2")
    assert set(await store.event_ids_of_object("att_2")) == set(event_ids_of_attempt("att_2"))
    assert other in await store.event_ids_of_object("pay_ab")


def test_an_initial_event_id_is_computed_from_its_idempotent_id() -> None:
    key = idempotent_event_id("12345_att_0190", "payment_succeeded")
    event_id = initial_event_id(key)
    assert event_id == initial_event_id(key) and len(event_id) == len(new_event_id())
    assert event_id.startswith("evt_") and int(event_id[4:], 16) >= 0
    assert initial_event_id(idempotent_event_id("12345_att_0190", "payment_failed")) != event_id


async def test_the_earliest_unfinished_earlier_event_holds_a_later_one_back(db: Any) -> None:
    await ensure_indexes(db, INDEXES)
    store = EventStore(db)
    first = await claim(db, "payment_failed", "att_1", "pay_o", 1)
    second = await claim(db, "payment_failed", "att_2", "pay_o", 2)
    await claim(db, "payment_succeeded", "att_3", "pay_o", 3)
    # The first is claimed but not recorded yet (its first attempt in flight): it holds both later ones.
    assert (await store.earlier_unfinished("pay_o", 3) or {})["_id"] == first
    due = T0 + timedelta(minutes=5)
    await db.webhook_events.insert_many(
        [record(first, "pay_o", 1, "delivered"), record(second, "pay_o", 2, "retry_scheduled", next_retry_at=due)]
    )
    pending = await store.earlier_unfinished("pay_o", 3)
    assert pending is not None and pending["_id"] == second and pending["next_retry_at"] == due
    assert await store.earlier_unfinished("pay_o", 2) is None
    await db.webhook_events.update_one({"_id": second}, {"$set": {"status": "failed"}})
    assert await store.earlier_unfinished("pay_o", 3) is None
    assert await store.earlier_unfinished("pay_o", 1) is None
