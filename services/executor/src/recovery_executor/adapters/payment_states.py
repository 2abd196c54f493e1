"""The executor's projection of each invoice's status (`recovery.updated`), read by the charge guard."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.messages import RecoveryUpdated
from recovery_executor.adapters.attempts import ATTEMPTS
from recovery_executor.domain.attempt import AttemptStatus
from recovery_executor.domain.charge_guard import ChargeFacts
from recovery_runtime.unit_of_work import Transaction


class MongoPaymentStateRepository:
    """Only newer versions apply; whether the invoice may still be charged is the charge guard's rule."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._states = db["payment_states"]

    async def apply(self, update: RecoveryUpdated, now: datetime, tx: Transaction) -> bool:
        payment_id = update.payment.payment_id
        # Read then write inside the caller's transaction: a concurrent writer makes it retry (write conflict),
        # and a duplicate-key error would abort the whole transaction.
        current = await self._states.find_one({"_id": payment_id}, {"version": 1}, session=tx.session)
        if current is not None and current.get("version", 0) >= update.version:
            return False
        doc = {
            "merchant_id": update.payment.merchant_id,
            "status": update.intent_status.value,
            "action": update.action,
            "version": update.version,
            "updated_at": now,
        }
        await self._states.update_one({"_id": payment_id}, {"$set": doc}, upsert=True, session=tx.session)
        return True

    async def charge_facts(self, payment_id: str) -> ChargeFacts:
        """The two facts the charge guard needs, in one round trip: this payment's state projection and a
        succeeded attempt of it, if any (`$unionWith` the attempts: MongoDB 4.4+)."""
        docs = await (
            await self._states.aggregate(
                [
                    {"$match": {"_id": payment_id}},
                    {"$project": {"status": 1}},
                    {
                        "$unionWith": {
                            "coll": ATTEMPTS,
                            "pipeline": [
                                {"$match": {"payment_id": payment_id, "status": AttemptStatus.SUCCEEDED.value}},
                                {"$limit": 1},
                                {"$project": {"attempt_number": 1, "status": 1}},
                            ],
                        }
                    },
                ]
            )
        ).to_list(None)
        state = next((d for d in docs if d["_id"] == payment_id), None)
        paid = next((d for d in docs if d["_id"] != payment_id and "attempt_number" in d), None)
        return ChargeFacts(
            intent_status=None if state is None else state.get("status"),
            succeeded_attempt=None if paid is None else paid["attempt_number"],
        )
