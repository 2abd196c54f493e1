"""The attempt records on MongoDB: one per planned attempt, written before the connector call, changed only by
compare-and-set on its status (and owner or start time)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_contracts.messages import read_message
from recovery_executor.domain.attempt import Attempt, AttemptStatus
from recovery_executor.domain.connector import ChargeRequest
from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import OUTBOX_FIELD, Transaction

ATTEMPTS = "attempts"
ATTEMPT_INDEXES = [
    IndexSpec(ATTEMPTS, [("payment_id", ASCENDING), ("attempt_number", ASCENDING)], "attempt_unique", unique=True),
    IndexSpec(ATTEMPTS, [("status", ASCENDING), ("started_at", ASCENDING)], "attempt_status"),
]
# The optional fields of a record, stored under the aggregate's names once set.
_LATER_FIELDS = (
    "resumptions",
    "next_sync_at",
    "connector_transaction_id",
    "settled_at",
    "decline_code",
    "error_code",
    "error_message",
    "skip_reason",
)


class MongoAttemptRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._attempts = db[ATTEMPTS]

    async def claim(self, attempt: Attempt) -> Attempt | None:
        """Insert the new attempt; None when it is new, else the attempt already recorded under its key."""
        try:
            await self._attempts.insert_one(claim_document(attempt))
            return None
        except DuplicateKeyError:
            return await self.get(attempt.key)

    async def get(self, key: str) -> Attempt | None:
        doc = await self._attempts.find_one({"_id": key})
        return None if doc is None else attempt_of(doc)

    async def take_over(self, previous: Attempt, taken: Attempt) -> bool:
        """Compare-and-set on the start time `previous` saw: one executor takes an abandoned or unknown attempt."""
        result = await self._attempts.update_one(
            {
                "_id": previous.key,
                "status": {"$in": [AttemptStatus.CHARGING, AttemptStatus.UNKNOWN]},
                "started_at": previous.started_at,
            },
            {
                "$set": {"status": taken.status, "started_at": taken.started_at, "owner": taken.owner},
                "$inc": {"resumptions": 1},
            },
        )
        return result.modified_count == 1

    async def reopen(self, reopened: Attempt) -> bool:
        """A refused attempt planned again under another attempt id, with that plan's charge parameters."""
        result = await self._attempts.update_one(
            {"_id": reopened.key, "status": AttemptStatus.SKIPPED, "attempt_id": {"$ne": reopened.attempt_id}},
            {
                "$set": {
                    "status": reopened.status,
                    "attempt_id": reopened.attempt_id,
                    "started_at": reopened.started_at,
                    "owner": reopened.owner,
                    "token": reopened.token,
                    "charge": reopened.charge.parameters(),
                }
            },
        )
        return result.modified_count == 1

    async def save_unknown(self, attempt: Attempt, tx: Transaction) -> bool:
        fields: dict[str, Any] = {"status": attempt.status, "next_sync_at": attempt.next_sync_at}
        if attempt.connector_transaction_id:
            fields["connector_transaction_id"] = attempt.connector_transaction_id
        return await self._while_held(attempt, {"$set": fields}, tx)

    async def save_refused(self, attempt: Attempt, tx: Transaction) -> bool:
        fields = {"status": attempt.status, "settled_at": attempt.settled_at, "skip_reason": attempt.skip_reason}
        return await self._while_held(attempt, {"$set": fields}, tx)

    async def save_settled(self, attempt: Attempt, tx: Transaction) -> bool:
        """The final outcome and the messages it emits in one write (embedded outbox, no transaction): the
        record is the consumed command's inbox too (a copy of the command finds it settled)."""
        assert attempt.outcome_message is not None, "a settled attempt carries its outcome message"
        fields = {
            "status": attempt.status,
            "settled_at": attempt.settled_at,
            "connector_transaction_id": attempt.connector_transaction_id,
            "decline_code": attempt.decline_code,
            "error_code": attempt.error_code,
            "error_message": attempt.error_message,
            "emitted": OutgoingMessage.of(attempt.outcome_message).to_document(attempt.settled_at),
        }
        update: dict[str, Any] = {"$set": fields}
        outbox = tx.embed(ATTEMPTS, attempt.key, attempt.settled_at)
        if outbox:
            update["$push"] = {OUTBOX_FIELD: {"$each": outbox}}
        return await self._while_held(attempt, update, tx)

    async def _while_held(self, attempt: Attempt, update: dict[str, Any], tx: Transaction) -> bool:
        """Apply `update` only while this executor still holds the attempt (status `charging`, its owner)."""
        result = await self._attempts.update_one(
            {"_id": attempt.key, "status": AttemptStatus.CHARGING, "owner": attempt.owner}, update, session=tx.session
        )
        return result.modified_count == 1


def claim_document(attempt: Attempt) -> dict[str, Any]:
    return {
        "_id": attempt.key,
        "payment_id": attempt.payment_id,
        "attempt_number": attempt.attempt_number,
        "attempt_id": attempt.attempt_id,
        "token": attempt.token,
        "idempotency_key": attempt.idempotency_key,
        "status": attempt.status,
        "first_started_at": attempt.first_started_at,
        "started_at": attempt.started_at,
        "owner": attempt.owner,
        "command_message_id": attempt.command_message_id,
        # What every call of the attempt sends to the connector (`token` and `idempotency_key` repeat two of them).
        "charge": attempt.charge.parameters(),
    }


def attempt_of(doc: dict[str, Any]) -> Attempt:
    emitted = doc.get("emitted")
    outcome_message = None
    if emitted:
        stored = OutgoingMessage.from_document(emitted)
        outcome_message = read_message(stored.message_type, stored.body)
    return Attempt(
        key=doc["_id"],
        payment_id=doc["payment_id"],
        attempt_number=doc["attempt_number"],
        attempt_id=doc["attempt_id"],
        status=AttemptStatus(doc["status"]),
        first_started_at=doc["first_started_at"],
        started_at=doc["started_at"],
        owner=doc.get("owner", ""),
        command_message_id=doc.get("command_message_id", ""),
        charge=ChargeRequest.of_parameters(doc["charge"]),
        outcome_message=outcome_message,
        **{name: doc[name] for name in _LATER_FIELDS if doc.get(name) is not None},
    )
