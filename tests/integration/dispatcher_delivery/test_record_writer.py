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

from recovery_dispatcher.adapters.record_writer import DuplicateEvent, RecordWriter
from recovery_dispatcher.adapters.store import INDEXES
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
    return {"_id": idempotent_id, "event_id": f"evt_{idempotent_id}", "payment_id": payment_id, "body": b"{}"}


async def test_concurrent_claims_share_one_insert_and_a_duplicate_fails_only_its_caller(store: Any) -> None:
    db, listener = store
    writer = RecordWriter(db["webhook_events"], interval=0.05, claims=db["webhook_claims"])
    await db["webhook_claims"].insert_one({**claim("taken", "pay_x"), "sequence": 1, "sequence_key": "pay_x#1"})
    listener.inserts.clear()
    claims = [claim(f"idem_{n}", f"pay_{n}") for n in range(20)] + [claim("taken", "pay_y")]
    outcomes = await asyncio.gather(*(writer.claim(c) for c in claims), return_exceptions=True)
    await writer.close()
    assert all(outcome is None for outcome in outcomes[:20])
    assert isinstance(outcomes[20], DuplicateEvent)
    # One round trip for the 21 claims.
    assert listener.inserts == [("webhook_claims", 21)]
    assert {c["sequence"] for c in claims[:20]} == {1}
    assert await db["webhook_claims"].count_documents({}) == 21


async def test_a_taken_number_is_read_back_and_the_next_one_used(store: Any) -> None:
    db, _ = store
    writer = RecordWriter(db["webhook_events"], interval=0.01, claims=db["webhook_claims"])
    # Numbers 1 and 2 of the payment were claimed by another dispatcher: this writer has not seen them.
    await db["webhook_claims"].insert_many(
        [{**claim(f"other_{n}", "pay_1"), "sequence": n, "sequence_key": f"pay_1#{n}"} for n in (1, 2)]
    )
    mine, after = claim("mine", "pay_1"), claim("after", "pay_1")
    await writer.claim(mine)
    await writer.claim(after)
    await writer.close()
    assert (mine["sequence"], mine["sequence_key"]) == (3, "pay_1#3")
    # Remembered: the next event of the payment gets the next number without a conflict.
    assert after["sequence"] == 4


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
