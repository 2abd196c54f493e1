"""Durable timers in MongoDB: claimed in batches under a lease, so any number of schedulers can run."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.mongo import IndexSpec


class TimerKind(StrEnum):
    MESSAGE = "message"  # publish the stored message when due
    REPLAN = "replan"  # run the retry planner for the payment again when due


class TimerStatus(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    FIRED = "fired"
    CANCELLED = "cancelled"


# Timer purposes that belong to the recovery's plan (cancelled when it ends or pauses).
PLANNED_WORK = frozenset({"execute_retry", "replan"})
# The purpose of the executor's PSYNC timers (`timer.schedule` with a `payment.sync` command inside).
PSYNC_PURPOSE = "payment_sync"

INDEXES = [
    IndexSpec("timers", [("status", ASCENDING), ("due_at", ASCENDING)], "timer_due"),
    IndexSpec("timers", [("status", ASCENDING), ("lease_expires_at", ASCENDING)], "timer_lease"),
    IndexSpec("timers", [("payment_id", ASCENDING), ("status", ASCENDING)], "timer_payment"),
    IndexSpec("timers", [("lease_owner", ASCENDING), ("status", ASCENDING)], "timer_owner"),
]


def timer_document(
    timer_id: str,
    *,
    kind: TimerKind,
    due_at: datetime,
    payment_id: str | None,
    created_at: datetime,
    message: OutgoingMessage | None = None,
    purpose: str = "",
) -> dict[str, Any]:
    return {
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


class TimerRepository:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._timers = db["timers"]

    async def add(self, timer: dict[str, Any], session: AsyncClientSession | None = None) -> bool:
        """Insert a timer; False if one with that id exists (timer ids are deterministic: idempotent)."""
        if session is not None:
            # Inside a transaction a duplicate-key error would abort everything: look first.
            existing = await self._timers.find_one({"_id": timer["_id"]}, {"status": 1}, session=session)
            if existing is None:
                await self._timers.insert_one(timer, session=session)
                return True
            if existing.get("status") == TimerStatus.CANCELLED.value:
                # A plan that was stopped (pending_payment) and is planned again reuses its deterministic id.
                await self._timers.replace_one({"_id": timer["_id"]}, timer, session=session)
                return True
            return False
        try:
            await self._timers.insert_one(timer)
            return True
        except DuplicateKeyError:
            return False

    async def cancel_pending(self, payment_id: str, session: AsyncClientSession) -> int:
        """Cancel the recovery's planned work (attempts, re-plans). PSYNC and record-back timers stay: an
        attempt whose outcome is unknown must still be settled, and a success must still be recorded back."""
        result = await self._timers.update_many(
            {"payment_id": payment_id, "status": TimerStatus.PENDING.value, "purpose": {"$in": list(PLANNED_WORK)}},
            {"$set": {"status": TimerStatus.CANCELLED.value}},
            session=session,
        )
        return result.modified_count

    async def claim_due(self, now: datetime, owner: str, lease: timedelta, limit: int) -> list[dict[str, Any]]:
        """Lease up to `limit` due timers for `owner`; returns those this owner won."""
        candidates = (
            await self._timers.find({"status": TimerStatus.PENDING.value, "due_at": {"$lte": now}}, {"_id": 1})
            .sort("due_at", ASCENDING)
            .limit(limit)
            .to_list(limit)
        )
        if not candidates:
            return []
        ids = [c["_id"] for c in candidates]
        # The status filter makes the claim a compare-and-set: a timer another instance leased first is skipped.
        await self._timers.update_many(
            {"_id": {"$in": ids}, "status": TimerStatus.PENDING.value},
            {
                "$set": {
                    "status": TimerStatus.LEASED.value,
                    "lease_owner": owner,
                    "lease_expires_at": now + lease,
                },
                "$inc": {"claims": 1},
            },
        )
        return await self._timers.find(
            {"_id": {"$in": ids}, "status": TimerStatus.LEASED.value, "lease_owner": owner}
        ).to_list(None)

    async def mark_fired(self, timer_ids: list[str], owner: str, now: datetime) -> None:
        if timer_ids:
            await self._timers.update_many(
                {"_id": {"$in": timer_ids}, "lease_owner": owner, "status": TimerStatus.LEASED.value},
                {"$set": {"status": TimerStatus.FIRED.value, "fired_at": now}},
            )

    async def release_expired(self, now: datetime) -> int:
        result = await self._timers.update_many(
            {"status": TimerStatus.LEASED.value, "lease_expires_at": {"$lt": now}},
            {"$set": {"status": TimerStatus.PENDING.value, "lease_owner": None, "lease_expires_at": None}},
        )
        return result.modified_count

    async def for_payment(self, payment_id: str) -> list[dict[str, Any]]:
        return await self._timers.find({"payment_id": payment_id}).sort("due_at", ASCENDING).to_list(None)

    async def pending_for(self, payment_id: str, purpose: str) -> dict[str, Any] | None:
        return await self._timers.find_one(
            {"payment_id": payment_id, "purpose": purpose, "status": {"$in": ["pending", "leased"]}},
            sort=[("due_at", ASCENDING)],
        )
