"""The payment fence records in MongoDB (`payment_fences`, one per payment, `_id` = payment id): load, apply the
rule (`recovery_runtime.payment_fence`), compare-and-set on `version`; a lost race is read again and decided anew.

Written by intake (the cancel's tombstone) and the executor (the charge lease) through this repository only; no
other code reads or writes the collection (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_runtime.payment_fence import FenceDecision, FenceVerdict, PaymentFence, RuledPaymentFences

COLLECTION = "payment_fences"
# Compare-and-set rounds before giving up: each lost one means another writer changed the record meanwhile, and
# only the executor holding the attempt and the cancels of one invoice write it.
ROUNDS = 8


class FenceContended(RuntimeError):
    """The record kept changing under this writer: the caller's message or request is retried."""


class MongoPaymentFences(RuledPaymentFences):
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._fences = db[COLLECTION]

    async def _change(self, payment_id: str, decide: FenceDecision) -> FenceVerdict:
        for _ in range(ROUNDS):
            current = _fence(payment_id, await self._fences.find_one({"_id": payment_id}))
            verdict, after = decide(current)
            if after == current or await self._saved(current, after):
                return verdict
        raise FenceContended(f"the fence of payment {payment_id} kept changing ({ROUNDS} rounds)")

    async def _saved(self, current: PaymentFence, after: PaymentFence) -> bool:
        fields = {
            "version": after.version,
            "cancelled_at": after.cancelled_at,
            "holder": after.holder,
            "lease_until": after.lease_until,
            "paid": after.paid,
        }
        if current.version == 0:
            try:
                await self._fences.insert_one({"_id": after.payment_id, **fields})
            except DuplicateKeyError:
                return False
            return True
        done = await self._fences.update_one({"_id": after.payment_id, "version": current.version}, {"$set": fields})
        return done.matched_count == 1


def _fence(payment_id: str, doc: dict[str, Any] | None) -> PaymentFence:
    if doc is None:
        return PaymentFence(payment_id)
    return PaymentFence(
        payment_id,
        version=int(doc["version"]),
        cancelled_at=doc.get("cancelled_at"),
        holder=doc.get("holder"),
        lease_until=doc.get("lease_until"),
        paid=bool(doc.get("paid")),
    )
