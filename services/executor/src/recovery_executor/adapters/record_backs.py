"""Record-back progress on MongoDB: one record per payment, with every try and the last try's request."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.messages import RecordBack, read_stored
from recovery_executor.domain.record_back import (
    CUSTOMBILLING,
    RecordBackHistory,
    RecordBackProgress,
    RecordBackStatus,
    RecordBackTry,
)
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import Transaction

RECORD_BACKS = "record_backs"
RECORD_BACK_INDEXES = [IndexSpec(RECORD_BACKS, [("status", ASCENDING)], "record_back_status")]


class MongoRecordBackRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._records = db[RECORD_BACKS]

    async def get(self, payment_id: str) -> RecordBackProgress | None:
        doc = await self._records.find_one({"_id": payment_id}, {"tries": 0})
        return None if doc is None else _progress(doc)

    async def history(self, merchant_id: str, payment_id: str) -> RecordBackHistory | None:
        doc = await self._records.find_one({"_id": payment_id, "merchant_id": merchant_id})
        if doc is None:
            return None
        return RecordBackHistory(_progress(doc), tuple(_try(record) for record in doc.get("tries", [])))

    async def save(self, progress: RecordBackProgress, tried: RecordBackTry, tx: Transaction) -> None:
        fields = {
            "status": progress.status,
            "url": progress.url,
            "attempts": progress.attempts,
            "updated_at": progress.updated_at,
            "merchant_id": progress.merchant_id,
            "billing_connector": progress.billing_connector,
            "profile_id": progress.profile_id,
            "request": None if progress.request is None else progress.request.model_dump(mode="json"),
        }
        try_record = {
            "attempt": tried.attempt,
            "at": tried.at,
            "status_code": tried.status_code,
            "error": tried.error,
            "outcome": tried.outcome,
        }
        await self._records.update_one(
            {"_id": progress.payment_id},
            {"$set": fields, "$push": {"tries": try_record}},
            upsert=True,
            session=tx.session,
        )

    async def restart(self, restarted: RecordBackProgress, tx: Transaction) -> bool:
        """`restarted`'s status stored if the record back is still abandoned or blocked (another operator's restart,
        or the last try of a round, may have moved it meanwhile)."""
        stopped = [RecordBackStatus.ABANDONED, RecordBackStatus.BLOCKED]
        done = await self._records.update_one(
            {"_id": restarted.payment_id, "status": {"$in": stopped}},
            {"$set": {"status": restarted.status, "updated_at": restarted.updated_at}},
            session=tx.session,
        )
        return done.matched_count == 1


def _progress(doc: dict[str, Any]) -> RecordBackProgress:
    return RecordBackProgress(
        payment_id=doc["_id"],
        status=RecordBackStatus(doc["status"]),
        url=doc["url"],
        attempts=doc["attempts"],
        updated_at=doc["updated_at"],
        merchant_id=doc.get("merchant_id"),
        billing_connector=doc.get("billing_connector") or CUSTOMBILLING,
        request=read_stored(RecordBack, doc["request"]) if doc.get("request") else None,
        profile_id=doc.get("profile_id"),
    )


def _try(record: dict[str, Any]) -> RecordBackTry:
    outcome = record.get("outcome")
    return RecordBackTry(
        attempt=record["attempt"],
        at=record["at"],
        status_code=record.get("status_code"),
        error=record.get("error"),
        outcome=RecordBackStatus(outcome) if outcome else None,
    )
