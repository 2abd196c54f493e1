"""The `audit_events` collection: the audit trail's entries (domain/audit.py), one document each, kept
`AUDIT_RETENTION_DAYS` (`expires_at`, where the TTL index removes it), listed per merchant newest first (all of
them, or a payment's)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.api.audit import AuditActorKind
from recovery_intake.domain.audit import (
    EVERY_ENTRY,
    PAYMENT_TARGET,
    REFUSED_FROM,
    AuditActor,
    AuditEntry,
    AuditFilter,
)
from recovery_runtime.mongo import IndexSpec, within

COLLECTION = "audit_events"
PAYMENT_FIELD = f"target.{PAYMENT_TARGET}"
INDEXES = [
    IndexSpec(COLLECTION, [("merchant_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], "audit_merchant_at"),
    # A payment's changes (`payment_id`), on its own walk: a merchant's trail is long, a payment's few.
    IndexSpec(
        COLLECTION,
        [("merchant_id", ASCENDING), (PAYMENT_FIELD, ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)],
        "audit_merchant_payment",
    ),
    IndexSpec(COLLECTION, [("expires_at", ASCENDING)], "audit_ttl", options={"expireAfterSeconds": 0}),
]


def audit_document(entry: AuditEntry, retention: timedelta) -> dict[str, Any]:
    actor = entry.actor
    return {
        "_id": entry.entry_id,
        "merchant_id": actor.merchant_id,
        "profile_id": actor.profile_id,
        "actor": actor.kind.value,
        "key_id": actor.key_id,
        "method": entry.method,
        "route": entry.route,
        "target": dict(entry.target),
        "status": entry.status,
        "at": entry.at,
        "expires_at": entry.at + retention,
    }


def audit_entry(doc: dict[str, Any]) -> AuditEntry:
    actor = AuditActor(AuditActorKind(doc["actor"]), doc.get("merchant_id"), doc.get("key_id"), doc.get("profile_id"))
    return AuditEntry(doc["_id"], doc["at"], actor, doc["method"], doc["route"], doc.get("target") or {}, doc["status"])


class MongoAuditLog:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], retention: timedelta) -> None:
        self._entries = db[COLLECTION]
        self._retention = retention

    async def record(self, entry: AuditEntry) -> None:
        await self._entries.insert_one(audit_document(entry, self._retention))

    async def page(
        self, merchant_id: str | None, limit: int, after: tuple[datetime, str] | None, where: AuditFilter = EVERY_ENTRY
    ) -> list[AuditEntry]:
        # On the merchant's index, newest first; the key and refused filters are applied to the entries it walks (a
        # merchant's changes are few: a key's or the refused ones are found among them).
        matching: dict[str, Any] = {"merchant_id": merchant_id}
        if where.key_id is not None:
            matching["key_id"] = where.key_id
        if where.payment_id is not None:
            matching[PAYMENT_FIELD] = where.payment_id
        if where.refused_only:
            matching["status"] = {"$gte": REFUSED_FROM}
        window = within("at", (("gte", where.created_after), ("lte", where.created_before)))
        if window:
            # The index's second key: the window bounds the walk itself.
            matching["$and"] = window
        if after is not None:
            at, entry_id = after
            matching["$or"] = [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": entry_id}}]
        cursor = self._entries.find(matching).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [audit_entry(doc) for doc in await cursor.to_list(limit)]
