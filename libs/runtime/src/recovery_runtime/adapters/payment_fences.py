"""The payment fence records in MongoDB (`payment_fences`, one per payment, `_id` = payment id): apply the rule
(`recovery_runtime.payment_fence`) to the record, compare-and-set on `version`; a lost race is read again and
decided anew.

The first round decides on a guess instead of a read: the state this process last wrote for the payment (the
executor's release follows its own hold), else no record (a payment's first charge, a cancel of a payment never
charged). A guess is only ever acted on through the compare-and-set, which fails unless the record is at the
guessed version: every write moves the version and records are never deleted, so a version names one state for
good (a TTL on this collection would break that: drop the guess before adding one), and a record that exists
refuses the insert of a guessed first version. So a wrong guess costs one round trip and never a wrong decision;
a decision that would change nothing is never taken on a guess. A charge's hold and release are one write each
instead of a read and a write each.

Written by intake (the cancel's tombstone) and the executor (the charge lease) through this repository only; no
other code reads or writes the collection (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_runtime.payment_fence import FenceDecision, FenceVerdict, PaymentFence, RuledPaymentFences
from recovery_runtime.ttl_cache import TtlCache

COLLECTION = "payment_fences"
# Compare-and-set rounds before giving up: each lost one means another writer changed the record meanwhile, and
# only the executor holding the attempt and the cancels of one invoice write it.
ROUNDS = 8
# What this process wrote last, per payment: the next change's guess. A charge's hold and release are seconds
# apart; an old or evicted entry only costs the read it would have saved.
GUESS_SECONDS = 300.0
GUESSES = 10_000


class FenceContended(RuntimeError):
    """The record kept changing under this writer: the caller's message or request is retried."""


class MongoPaymentFences(RuledPaymentFences):
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._fences = db[COLLECTION]
        self._written: TtlCache[str, PaymentFence] = TtlCache(GUESS_SECONDS, GUESSES)

    async def _change(self, payment_id: str, decide: FenceDecision) -> tuple[FenceVerdict, PaymentFence]:
        current, read = self._written.get(payment_id) or PaymentFence(payment_id), False
        for _ in range(ROUNDS):
            verdict, after = decide(current)
            if after == current and read:
                return verdict, after
            if after != current and await self._saved(current, after):
                self._written.put(payment_id, after)
                return verdict, after
            # A lost compare-and-set, or a decision to change nothing taken on a guess: read and decide again.
            current, read = _fence(payment_id, await self._fences.find_one({"_id": payment_id})), True
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
