"""The unit of work's edges, against the MongoDB-wire server: a transaction whose commit result is unknown (the reply
lost after the server committed) is committed again, not run again (its work ran once, it is not reported as a
duplicate of itself, its messages go out once); and the outbox relay skips a record it cannot read instead of
stopping at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure

from recovery_contracts.envelope import MessageType, envelope_for
from recovery_contracts.messages import RecoveryCancelRequested
from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.testing import FixedClock, RecordingPublisher
from recovery_runtime.unit_of_work import OUTBOX_FIELD, OutboxRelay, Transaction, UnitOfWork

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(mongodb_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    connected: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield connected
    await connected.close()


async def test_a_commit_whose_reply_was_lost_is_committed_again_and_its_work_runs_once(
    client: AsyncMongoClient[dict[str, Any]], mongodb_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = client[mongodb_database]
    publisher = RecordingPublisher()
    unit_of_work = UnitOfWork(client, db, "probe", publisher, FixedClock())
    commit = AsyncClientSession.commit_transaction
    lost: list[int] = []

    async def reply_lost_once(session: AsyncClientSession) -> None:
        await commit(session)  # the server commits
        if not lost:
            lost.append(1)
            error = ConnectionFailure("connection closed before the commit's reply")
            error._add_error_label("UnknownTransactionCommitResult")
            raise error

    monkeypatch.setattr(AsyncClientSession, "commit_transaction", reply_lost_once)
    consumed = envelope_for(
        MessageType.RECOVERY_CANCEL_REQUESTED,
        RecoveryCancelRequested(merchant_reference_id="inv_1"),
        merchant_id="merchant_1",
        profile_id="pro_1",
    )
    runs: list[int] = []

    async def work(tx: Transaction) -> str:
        runs.append(1)
        await db.probe_effects.insert_one({"_id": "effect"}, session=tx.session)
        tx.emit(consumed)
        return "done"

    assert await unit_of_work.apply(work, consumed=consumed, consumer="probe.queue") == "done"

    assert lost == [1] and runs == [1]
    assert await db.probe_effects.count_documents({}) == 1
    assert await db.inbox_probe.count_documents({}) == 1
    assert [m.message_id for m in publisher.published] == [consumed.message_id]


async def test_the_relay_skips_an_outbox_record_it_cannot_read_and_relays_the_others(
    client: AsyncMongoClient[dict[str, Any]], mongodb_database: str
) -> None:
    """A record of a message type this release does not know (written by a newer release, then rolled back) stays
    where it is for that release, and neither the outbox's later records nor the embedded outboxes wait behind it."""
    db = client[mongodb_database]
    clock = FixedClock()
    publisher = RecordingPublisher()
    unit_of_work = UnitOfWork(client, db, "probe", publisher, clock)
    unit_of_work.embed_outbox_in("probe_holders")
    old = clock.now() - timedelta(minutes=5)
    message = envelope_for(
        MessageType.RECOVERY_CANCEL_REQUESTED,
        RecoveryCancelRequested(merchant_reference_id="inv_1"),
        merchant_id="merchant_1",
        profile_id="pro_1",
    )
    readable = OutgoingMessage.of(message).to_document(old)
    unknown = {**readable, "_id": "from-a-newer-release", "message_type": "payment.not-yet-known"}
    embedded = {**OutgoingMessage.of(message.model_copy(update={"message_id": "embedded-1"})).to_document(old)}
    await db.outbox_probe.insert_many([{**unknown, "created_at": old - timedelta(seconds=1)}, readable])
    await db.probe_holders.insert_one({"_id": "holder", OUTBOX_FIELD: [embedded]})

    unknown_only = {
        **OutgoingMessage.of(message).to_document(old),
        "_id": "m2",
        "message_type": "payment.not-yet-known",
    }
    await db.probe_holders.insert_one({"_id": "holder-of-unknown", OUTBOX_FIELD: [unknown_only]})

    # A page of one: the unknown record, older, is not even fetched, so it cannot fill the page.
    relayed = await OutboxRelay(unit_of_work, clock, after=timedelta(seconds=30)).relay_once(limit=1)

    assert relayed == 2
    assert sorted(m.message_id for m in publisher.published) == sorted([message.message_id, "embedded-1"])
    assert await db.outbox_probe.find_one({"_id": "from-a-newer-release"}) is not None  # left for its release
    assert REGISTRY.get_sample_value("recovery_outbox_unreadable", {"outbox": "outbox_probe"}) == 1
