"""Durable timers in MongoDB: claimed in batches under a lease, so any number of schedulers can run."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.tracing import current_trace_context
from recovery_runtime.unit_of_work import Transaction
from recovery_scheduler.dependencies import Claim, ClaimedTimer
from recovery_scheduler.domain.timers import PLANNED_WORK, Timer, TimerKind, TimerStatus

# Two indexes only: every timer write (insert, claim, cancel) rewrites each of them (SecantusDB rewrites every
# index entry of a document it updates). `timer_due` serves the claim (`status: pending`, a `due_at` range), the
# read back of a claim (`status: fired`, the same range) and expired leases (the `status: leased` prefix: few);
# `timer_payment` the per-recovery queries (cancel, operator views).
TIMERS = "timers"
INDEXES = [
    IndexSpec(TIMERS, [("status", ASCENDING), ("due_at", ASCENDING)], "timer_due"),
    IndexSpec(TIMERS, [("payment_id", ASCENDING), ("status", ASCENDING)], "timer_payment"),
]
# One record per batch of timers being fired (see `MongoTimerRepository.claim_due`): a few at any time.
CLAIMS = "timer_claims"
# Declared by earlier versions; dropped when the timer loop starts (MongoTimerRepository.drop_obsolete_indexes).
OBSOLETE_INDEXES = ("timer_lease", "timer_owner")

_RELEASE = {
    "$set": {"status": TimerStatus.PENDING.value, "lease_owner": None, "lease_expires_at": None},
    "$unset": {"claim_id": "", "fired_at": ""},
}


def new_claim_id(owner: str) -> str:
    return f"{owner}:{uuid.uuid4().hex}"


def timer_document(
    timer_id: str,
    *,
    kind: TimerKind,
    due_at: datetime,
    payment_id: str | None,
    created_at: datetime,
    message: OutgoingMessage | None = None,
    purpose: str = "",
    trace_context: dict[str, str] | None = None,
) -> dict[str, Any]:
    doc = {
        "_id": timer_id,
        "kind": kind.value,
        "purpose": purpose,
        "payment_id": payment_id,
        "due_at": due_at,
        "status": TimerStatus.PENDING.value,
        "message": message.to_document(created_at) if message else None,
        "created_at": created_at,
        "lease_owner": None,
        "lease_expires_at": None,
        "claims": 0,
    }
    if trace_context:
        # A re-plan timer has no message to carry it (a message timer's message carries its own).
        doc["trace_context"] = trace_context
    return doc


def outgoing_message(timer: Timer) -> OutgoingMessage | None:
    """What the timer publishes when it fires: its message as the requester sent it (None: a re-plan timer)."""
    return OutgoingMessage.of(timer.message, timer.body) if timer.message is not None else None


def stored_timer(timer: Timer) -> dict[str, Any]:
    message = outgoing_message(timer)
    return timer_document(
        timer.timer_id,
        kind=timer.kind,
        due_at=timer.due_at,
        payment_id=timer.payment_id,
        created_at=timer.created_at,
        message=message,
        purpose=timer.purpose,
        trace_context=current_trace_context() if message is None else None,
    )


def claimed_timer(doc: dict[str, Any]) -> ClaimedTimer:
    message = doc.get("message")
    return ClaimedTimer(
        timer_id=doc["_id"],
        kind=TimerKind(doc["kind"]),
        due_at=doc["due_at"],
        payment_id=doc.get("payment_id"),
        purpose=doc.get("purpose") or "",
        message=OutgoingMessage.from_document(message) if message else None,
        trace_context=doc.get("trace_context"),
    )


class MongoTimerRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._timers = db[TIMERS]
        self._claims = db[CLAIMS]

    async def add(self, timer: Timer, tx: Transaction) -> bool:
        # Inside a transaction a duplicate-key error would abort everything: look first.
        if await self._timers.find_one({"_id": timer.timer_id}, {"_id": 1}, session=tx.session) is not None:
            return False
        await self._timers.insert_one(stored_timer(timer), session=tx.session)
        return True

    async def add_new(self, timer: Timer, tx: Transaction) -> None:
        # A duplicate key (not expected: a timer id in use without its recovery) aborts the transaction.
        await self._timers.insert_one(stored_timer(timer), session=tx.session)

    async def cancel_planned(self, payment_id: str, tx: Transaction, keep: Sequence[str] = ()) -> frozenset[str]:
        query: dict[str, Any] = {
            "payment_id": payment_id,
            "status": TimerStatus.PENDING.value,
            "purpose": {"$in": list(PLANNED_WORK)},
        }
        if keep:
            query["_id"] = {"$nin": list(keep)}
        # Read, then one write by id (the transaction writes the collection once: docs/operations.md, "SecantusDB's
        # livelock"); a timer the loop claims in between makes the write conflict, and the transaction runs again.
        pending = [doc["_id"] for doc in await self._timers.find(query, {"_id": 1}, session=tx.session).to_list(None)]
        if not pending:
            return frozenset()
        result = await self._timers.update_many(
            {"_id": {"$in": pending}, "status": TimerStatus.PENDING.value},
            {"$set": {"status": TimerStatus.CANCELLED.value}},
            session=tx.session,
        )
        # All of them, or (should a store not conflict) none vouched for: a timer not surely cancelled may have fired.
        return frozenset(pending) if result.modified_count == len(pending) else frozenset()

    async def next_due(self, payment_id: str, purposes: Sequence[str]) -> datetime | None:
        timer = await self._timers.find_one(
            {
                "payment_id": payment_id,
                "purpose": {"$in": list(purposes)},
                "status": {"$in": [TimerStatus.PENDING.value, TimerStatus.LEASED.value]},
            },
            {"due_at": 1},
            sort=[("due_at", ASCENDING)],
        )
        return timer["due_at"] if timer is not None else None

    async def claim_due(
        self,
        now: datetime,
        owner: str,
        lease: timedelta,
        limit: int,
        *,
        lookahead: timedelta = timedelta(0),
        after: datetime | None = None,
        until: datetime | None = None,
    ) -> Claim:
        """Claim up to about `limit` timers due by `now` for `owner`: five round trips per batch, one write per
        timer. A claimed timer is `fired` (with this batch's `claim_id`) before its message is published; the
        batch's record in `timer_claims`, deleted by `complete` once the broker confirmed, is what makes a crash
        in between republish rather than lose (`take_over_expired`).

        1. The due times, earliest first (index `timer_due`), and the earliest pending timer falling due within
           `lookahead` after `now`, so the loop can sleep exactly until then.
        2. The claim's record (owner, lease, the range it covers).
        3. One `update_many` over the range [first, last due time seen] with `status: pending` in the filter: a
           compare-and-set, so a timer another instance claimed first is skipped. A full batch stops below its
           last due time (timers sharing it may be many more than the batch); a full batch that all shares one
           due time claims exactly the ids seen.
        4. The claimed timers read back (a `timer_due` range: `status: fired`, the same due times), so each is
           fired as it is now, not as the first read saw it.
        5. (`complete`) the record deleted.

        `after`/`until` narrow step 1 to a range of due times (the loop's catch-up through a backlog): SecantusDB
        reads every document of the range before it applies the limit, so an unbounded `$lte: now` costs the whole
        backlog on every batch; MongoDB stops at the limit either way.
        """
        last = min(now, until) if until is not None else now
        window: dict[str, Any] = {"$lte": until if until is not None else now + lookahead}
        if after is not None:
            window["$gte"] = after
        found = (
            await self._timers.find({"status": TimerStatus.PENDING.value, "due_at": window}, {"_id": 1, "due_at": 1})
            .sort("due_at", ASCENDING)
            .limit(limit)
            .to_list(limit)
        )
        due = [t for t in found if t["due_at"] <= last]
        claim = Claim(
            new_claim_id(owner),
            next_due=next((t["due_at"] for t in found if t["due_at"] > last), None),
            full=len(due) >= limit,
        )
        if not due:
            return claim
        claim.low, claim.high = due[0]["due_at"], due[-1]["due_at"]
        if claim.full:
            below = [t["due_at"] for t in due if t["due_at"] < claim.high]
            if below:
                claim.high = below[-1]
            else:
                claim.ids = [t["_id"] for t in due]
        await self._claims.insert_one(
            {
                "_id": claim.claim_id,
                "owner": owner,
                "lease_expires_at": now + lease,
                "low": claim.low,
                "high": claim.high,
                "ids": claim.ids,
                "created_at": now,
            }
        )
        query: dict[str, Any] = {"status": TimerStatus.PENDING.value}
        if claim.ids is not None:
            query["_id"] = {"$in": claim.ids}
        else:
            query["due_at"] = {"$gte": claim.low, "$lte": claim.high}
        result = await self._timers.update_many(
            query,
            {
                "$set": {
                    "status": TimerStatus.FIRED.value,
                    "fired_at": now,
                    "claim_id": claim.claim_id,
                    "lease_owner": owner,
                },
                "$inc": {"claims": 1},
            },
        )
        if result.modified_count:
            claim.timers = await self._claimed(claim)
        if not claim.timers:
            await self.complete(claim)
        return claim

    async def _claimed(self, claim: Claim) -> list[ClaimedTimer]:
        # Filtered by claim id here, not in the query: SecantusDB plans `timer_due` for these two fields only.
        if claim.ids is not None:
            query: dict[str, Any] = {"_id": {"$in": claim.ids}}
        else:
            query = {"status": TimerStatus.FIRED.value, "due_at": {"$gte": claim.low, "$lte": claim.high}}
        docs = await self._timers.find(query).sort("due_at", ASCENDING).to_list(None)
        return [
            claimed_timer(d)
            for d in docs
            if d.get("claim_id") == claim.claim_id and d["status"] == TimerStatus.FIRED.value
        ]

    async def complete(self, claim: Claim) -> None:
        """The claim's messages are confirmed (and its re-plans done): nothing left to fire again."""
        await self._claims.delete_one({"_id": claim.claim_id})

    async def release(self, claim: Claim) -> int:
        """Give a claim's timers back (publishing failed): pending again, claimable by any instance at once."""
        ids = [t.timer_id for t in claim.timers]
        result = await self._timers.update_many({"_id": {"$in": ids}, "claim_id": claim.claim_id}, _RELEASE)
        await self.complete(claim)
        return result.modified_count

    async def retry_later(self, claim: Claim, timer_ids: list[str], now: datetime, lease: timedelta) -> None:
        """These timers of the claim failed (a re-plan raised): leased until `now + lease`, then pending again
        (`release_expired`): a back-off of one lease for a failure that persists."""
        await self._timers.update_many(
            {"_id": {"$in": timer_ids}, "claim_id": claim.claim_id},
            {
                "$set": {"status": TimerStatus.LEASED.value, "lease_expires_at": now + lease},
                "$unset": {"fired_at": ""},
            },
        )

    async def take_over_expired(self, now: datetime, owner: str, lease: timedelta, limit: int = 10) -> list[Claim]:
        """Claims whose instance died (or hung) before completing them, past their lease: each is taken over by
        compare-and-set on its lease, so one instance only fires it again."""
        taken = []
        for record in await self._claims.find({"lease_expires_at": {"$lt": now}}).limit(limit).to_list(limit):
            result = await self._claims.update_one(
                {"_id": record["_id"], "lease_expires_at": record["lease_expires_at"]},
                {"$set": {"owner": owner, "lease_expires_at": now + lease, "taken_over_at": now}},
            )
            if not result.modified_count:
                continue
            claim = Claim(record["_id"], low=record["low"], high=record["high"], ids=record.get("ids"))
            claim.timers = await self._claimed(claim)
            if claim.timers:
                taken.append(claim)
            else:
                await self.complete(claim)
        return taken

    async def release_expired(self, now: datetime) -> int:
        """Leased timers whose lease ran out (a failed re-plan's back-off, or leases of earlier versions)."""
        result = await self._timers.update_many(
            {"status": TimerStatus.LEASED.value, "lease_expires_at": {"$lt": now}}, _RELEASE
        )
        return result.modified_count

    async def drop_obsolete_indexes(self) -> None:
        """Indexes earlier versions declared that nothing queries any more (each costs every timer write)."""
        existing = await self._timers.index_information()
        for name in OBSOLETE_INDEXES:
            if name in existing:
                await self._timers.drop_index(name)
