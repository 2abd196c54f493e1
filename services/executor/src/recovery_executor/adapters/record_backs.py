"""Record-back progress on MongoDB: one record per payment, with every try and the last try's request; the refund of
a dispute lost on the payment is a record of its own beside it (`_id` `<payment_id>:dispute:<dispute_id>`, with
`payment_id` and `dispute_id` as fields). A record stored before refunds existed (no `payment_id` field: its `_id`
is the payment id; no `dispute_id`, no `billing_transaction_id`) reads as the payment's own."""

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
    record_back_key,
)
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import Transaction

RECORD_BACKS = "record_backs"
RECORD_BACK_INDEXES = [IndexSpec(RECORD_BACKS, [("status", ASCENDING)], "record_back_status")]


class MongoRecordBackRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._records = db[RECORD_BACKS]

    async def get(self, key: str) -> RecordBackProgress | None:
        doc = await self._records.find_one({"_id": key}, {"tries": 0})
        return None if doc is None else _progress(doc)

    async def history(
        self, merchant_id: str, payment_id: str, dispute_id: str | None = None
    ) -> RecordBackHistory | None:
        doc = await self._records.find_one({"_id": record_back_key(payment_id, dispute_id), "merchant_id": merchant_id})
        if doc is None:
            return None
        return RecordBackHistory(_progress(doc), tuple(_try(record) for record in doc.get("tries", [])))

    async def create(self, progress: RecordBackProgress, tx: Transaction) -> bool:
        """Inserted only if no record has its key: the `_id` is the one unique guard (two creators at once: the
        transaction of one conflicts and, tried again, finds the other's record)."""
        done = await self._records.update_one(
            {"_id": progress.key},
            {"$setOnInsert": {**_fields(progress), "tries": []}},
            upsert=True,
            session=tx.session,
        )
        return done.upserted_id is not None

    async def save(self, progress: RecordBackProgress, tried: RecordBackTry, tx: Transaction) -> None:
        fields = _fields(progress)
        if progress.billing_transaction_id is None:
            del fields["billing_transaction_id"]  # never forget the id an accepted try named
        try_record = {
            "attempt": tried.attempt,
            "at": tried.at,
            "status_code": tried.status_code,
            "error": tried.error,
            "outcome": tried.outcome,
        }
        if progress.status != RecordBackStatus.ACCEPTED:
            # Never over an accepted record: a copy of a try whose answer came second (a 409 for the key in flight
            # while the other got 200) keeps only its try (read in the transaction: a concurrent write conflicts).
            stored = await self._records.find_one({"_id": progress.key}, {"status": 1}, session=tx.session)
            if stored is not None and stored.get("status") == RecordBackStatus.ACCEPTED:
                fields = {}
        update: dict[str, Any] = {"$push": {"tries": try_record}}
        if fields:
            update["$set"] = fields
        await self._records.update_one({"_id": progress.key}, update, upsert=True, session=tx.session)

    async def restart(self, restarted: RecordBackProgress, tx: Transaction) -> bool:
        """`restarted`'s status stored if the record back is still abandoned or blocked (another operator's restart,
        or the last try of a round, may have moved it meanwhile)."""
        stopped = [RecordBackStatus.ABANDONED, RecordBackStatus.BLOCKED]
        done = await self._records.update_one(
            {"_id": restarted.key, "status": {"$in": stopped}},
            {"$set": {"status": restarted.status, "updated_at": restarted.updated_at}},
            session=tx.session,
        )
        return done.matched_count == 1


def _fields(progress: RecordBackProgress) -> dict[str, Any]:
    return {
        "payment_id": progress.payment_id,
        "dispute_id": progress.dispute_id,
        "status": progress.status,
        "url": progress.url,
        "attempts": progress.attempts,
        "updated_at": progress.updated_at,
        "merchant_id": progress.merchant_id,
        "billing_connector": progress.billing_connector,
        "profile_id": progress.profile_id,
        "request": None if progress.request is None else progress.request.model_dump(mode="json"),
        "billing_transaction_id": progress.billing_transaction_id,
    }


def _progress(doc: dict[str, Any]) -> RecordBackProgress:
    return RecordBackProgress(
        payment_id=doc.get("payment_id") or doc["_id"],
        status=RecordBackStatus(doc["status"]),
        url=doc["url"],
        attempts=doc["attempts"],
        updated_at=doc["updated_at"],
        merchant_id=doc.get("merchant_id"),
        billing_connector=doc.get("billing_connector") or CUSTOMBILLING,
        request=read_stored(RecordBack, doc["request"]) if doc.get("request") else None,
        profile_id=doc.get("profile_id"),
        dispute_id=doc.get("dispute_id"),
        billing_transaction_id=doc.get("billing_transaction_id"),
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
