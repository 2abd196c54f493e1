"""The executor's record-back store against the MongoDB-wire server: a try saved after another was accepted (a copy
of the same try whose answer came second, say the billing system's 409 for the key in flight) keeps its try but
never takes the record back from `accepted`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from recovery_executor.adapters.record_backs import MongoRecordBackRepository
from recovery_executor.domain.record_back import RecordBackProgress, RecordBackStatus, RecordBackTry
from recovery_runtime.testing import FixedClock, RecordingPublisher
from recovery_runtime.unit_of_work import UnitOfWork

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
async def client(mongodb_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    connected: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield connected
    await connected.close()


def progress(status: RecordBackStatus, at: datetime) -> RecordBackProgress:
    return RecordBackProgress("12345_pay_1", status, "https://billing.example/record", 1, at, merchant_id="m1")


async def test_a_try_saved_after_an_accepted_one_keeps_its_try_and_the_record_accepted(
    client: AsyncMongoClient[dict[str, Any]], mongodb_database: str
) -> None:
    db = client[mongodb_database]
    store = MongoRecordBackRepository(db)
    unit_of_work = UnitOfWork(client, db, "probe", RecordingPublisher(), FixedClock())
    accepted, late = progress(RecordBackStatus.ACCEPTED, T0), progress(RecordBackStatus.RETRYING, T0 + timedelta(1))
    first = RecordBackTry(1, T0, 200, None, RecordBackStatus.ACCEPTED)
    second = RecordBackTry(1, T0 + timedelta(seconds=1), 409, "key in flight", RecordBackStatus.RETRYING)

    await unit_of_work.apply(lambda tx: store.save(accepted, first, tx))
    await unit_of_work.apply(lambda tx: store.save(late, second, tx))

    stored = await store.get(accepted.key)
    assert stored is not None and stored.status == RecordBackStatus.ACCEPTED
    doc = await db.record_backs.find_one({"_id": accepted.key})
    assert doc is not None and [t["status_code"] for t in doc["tries"]] == [200, 409]
