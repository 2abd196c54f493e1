"""A transaction whose commit result is unknown (the reply lost after the server committed) is committed again, not
run again: its work ran once, it is not reported as a duplicate of itself, and its messages go out once. Against
the MongoDB-wire server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure

from recovery_contracts.envelope import MessageType, envelope_for
from recovery_contracts.messages import RecoveryCancelRequested
from recovery_runtime.testing import FixedClock, RecordingPublisher
from recovery_runtime.unit_of_work import Transaction, UnitOfWork

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
