"""RecordWriter (group commit of claims and records) against the MongoDB-wire server: one batch for many
callers, duplicate keys mapped back to their caller only, numbers renumbered after a conflict, and no caller
left waiting when the writer stops mid-flush."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from recovery_dispatcher.adapters.event_repository import INDEXES
from recovery_dispatcher.adapters.record_writer import RecordWriter
from recovery_dispatcher.domain.event import DuplicateEvent
from recovery_runtime.mongo import ensure_indexes

pytestmark = pytest.mark.integration


class InsertCommands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.inserts: list[tuple[str, int]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.inserts.append((event.command["insert"], len(event.command.get("documents", []))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def store(mongodb_url: str, mongodb_database: str) -> AsyncIterator[tuple[Any, InsertCommands]]:
    listener = InsertCommands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[listener])
    db = client[mongodb_database]
    await ensure_indexes(db, INDEXES)
    listener.inserts.clear()
    yield db, listener
    await client.close()


def claim(idempotent_id: str, payment_id: str) -> dict[str, Any]:
    return {"idempotent_event_id": idempotent_id, "event_id": f"evt_{idempotent_id}", "payment_id": payment_id}


def stored(idempotent_id: str, payment_id: str, sequence: int) -> dict[str, Any]:
    """A claim another dispatcher stored."""
    return {**claim(idempotent_id, payment_id), "_id": f"{payment_id}#{sequence}", "sequence": sequence}


async def test_concurrent_claims_share_one_insert_and_a_duplicate_fails_only_its_caller(store: Any) -> None:
    db, listener = store
    writer = RecordWriter(db["webhook_events"], interval=0.05, claims=db["webhook_claims"])
    await db["webhook_claims"].insert_one(stored("taken", "pay_x", 1))
    listener.inserts.clear()
    claims = [claim(f"idem_{n}", f"pay_{n}") for n in range(20)] + [claim("taken", "pay_x")]
    outcomes = await asyncio.gather(*(writer.claim(c) for c in claims), return_exceptions=True)
    await writer.close()
    assert all(outcome is None for outcome in outcomes[:20])
    assert isinstance(outcomes[20], DuplicateEvent)
    # One round trip for the 21 claims; the duplicate's conflict is read back and settled without another insert.
    assert listener.inserts == [("webhook_claims", 21)]
    assert {c["sequence"] for c in claims[:20]} == {1}
    assert {c["_id"] for c in claims[:20]} == {f"pay_{n}#1" for n in range(20)}
    assert await db["webhook_claims"].count_documents({}) == 21


async def test_a_taken_number_is_read_back_and_the_next_one_used(store: Any) -> None:
    db, _ = store
    writer = RecordWriter(db["webhook_events"], interval=0.01, claims=db["webhook_claims"])
    # Numbers 1 and 2 of the payment were claimed by another dispatcher: this writer has not seen them.
    await db["webhook_claims"].insert_many([stored(f"other_{n}", "pay_1", n) for n in (1, 2)])
    mine, after = claim("mine", "pay_1"), claim("after", "pay_1")
    await writer.claim(mine)
    await writer.claim(after)
    await writer.close()
    assert (mine["sequence"], mine["sequence_key"], mine["_id"]) == (3, "pay_1#3", "pay_1#3")
    assert after["sequence"] == 4


async def test_duplicates_and_other_events_of_one_payment_in_one_flush_make_one_claim_each(store: Any) -> None:
    """The same event three times and two other events of the payment, at once: each event is claimed once,
    numbered densely, and every duplicate is refused (at most one claim per payment goes in a flush)."""
    db, _ = store
    writer = RecordWriter(db["webhook_events"], interval=0.02, claims=db["webhook_claims"])
    await db["webhook_claims"].insert_one(stored("earlier", "pay_2", 1))
    docs = [claim(name, "pay_2") for name in ("a", "a", "b", "a", "c", "earlier")]
    outcomes = await asyncio.gather(*(writer.claim(d) for d in docs), return_exceptions=True)
    await writer.close()
    won = [d for d, outcome in zip(docs, outcomes, strict=True) if outcome is None]
    assert sorted(d["idempotent_event_id"] for d in won) == ["a", "b", "c"]
    assert all(isinstance(o, DuplicateEvent) for o in outcomes if o is not None)
    assert sorted(d["sequence"] for d in won) == [2, 3, 4]
    stored_claims = await db["webhook_claims"].find({"payment_id": "pay_2"}).to_list(None)
    assert sorted(c["_id"] for c in stored_claims) == ["pay_2#1", "pay_2#2", "pay_2#3", "pay_2#4"]


async def test_two_writers_racing_on_the_same_events_claim_each_once(store: Any) -> None:
    """Two dispatchers' writers (separate processes in production: nothing shared but the database) given the
    same events of the same payments at the same moment."""
    db, _ = store
    first = RecordWriter(db["webhook_events"], interval=0.01, claims=db["webhook_claims"])
    second = RecordWriter(db["webhook_events"], interval=0.01, claims=db["webhook_claims"])
    events = [(f"ev_{p}_{n}", f"pay_r{p}") for p in range(5) for n in range(3)]
    attempts = [(writer, claim(idem, payment)) for idem, payment in events for writer in (first, second)]
    outcomes = await asyncio.gather(*(writer.claim(doc) for writer, doc in attempts), return_exceptions=True)
    await first.close()
    await second.close()
    assert all(o is None or isinstance(o, DuplicateEvent) for o in outcomes), outcomes
    won = sorted(doc["idempotent_event_id"] for (_, doc), o in zip(attempts, outcomes, strict=True) if o is None)
    assert won == sorted(idem for idem, _ in events)
    for p in range(5):
        numbers = sorted([c["sequence"] async for c in db["webhook_claims"].find({"payment_id": f"pay_r{p}"})])
        assert numbers == [1, 2, 3]


async def test_a_writer_stopped_mid_flush_fails_its_callers_instead_of_leaving_them_waiting(store: Any) -> None:
    db, _ = store
    writer = RecordWriter(db["webhook_events"], interval=0.01, claims=db["webhook_claims"])
    started = asyncio.Event()
    release = asyncio.Event()
    original = writer._insert_many

    async def stalled(collection: Any, items: list[Any]) -> dict[int, Any]:
        started.set()
        await release.wait()  # the database does not answer
        return await original(collection, items)

    writer._insert_many = stalled  # type: ignore[method-assign]
    record = {"_id": "evt_1", "created_at": datetime.now(UTC)}
    waiting = asyncio.create_task(writer.insert(record))
    await asyncio.wait_for(started.wait(), 5)
    writer._insert_many = original  # type: ignore[method-assign]
    await writer.close()
    with pytest.raises(RuntimeError, match="record writer stopped mid-flush"):
        await asyncio.wait_for(waiting, 5)
