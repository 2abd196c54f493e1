"""The audit trail's store on the real database (MongoDB's wire protocol): entries kept with their expiry (the TTL
index), a merchant's read newest first and page after page on the index declared for it, no other merchant's.
Through intake's HTTP port: tests/integration/services/test_intake.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from recovery_contracts.api.audit import AuditActorKind
from recovery_intake.adapters.audit_log import COLLECTION, INDEXES, MongoAuditLog
from recovery_intake.domain.audit import AuditActor, AuditEntry
from recovery_runtime.mongo import ensure_indexes

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def entry(n: int, merchant_id: str = "merchant_a", key_id: str | None = "key_a") -> AuditEntry:
    actor = AuditActor(AuditActorKind.API_KEY, merchant_id, key_id, "pro_a")
    target = {"key_id": f"key_{n}"}
    return AuditEntry(
        f"audit_{n:03d}", AT + timedelta(seconds=n), actor, "DELETE", "/v2/api-keys/{key_id}", target, 200
    )


async def test_entries_are_kept_with_their_expiry_and_read_newest_first_per_merchant(adb: Any) -> None:
    await ensure_indexes(adb, INDEXES)
    trail = MongoAuditLog(adb, timedelta(days=400))
    for n in range(5):
        await trail.record(entry(n))
    await trail.record(entry(9, merchant_id="merchant_b", key_id=None))

    first = await trail.page("merchant_a", 3, None)
    rest = await trail.page("merchant_a", 3, (first[-1].at, first[-1].entry_id))

    assert [e.entry_id for e in first] == ["audit_004", "audit_003", "audit_002"]
    assert [e.entry_id for e in rest] == ["audit_001", "audit_000"]
    assert first[0] == entry(4)  # as recorded, every field
    assert [e.entry_id for e in await trail.page("merchant_b", 10, None)] == ["audit_009"]
    stored = await adb[COLLECTION].find_one({"_id": "audit_004"})
    assert stored["expires_at"].replace(tzinfo=UTC) == AT + timedelta(seconds=4, days=400)
    declared = await adb[COLLECTION].index_information()
    assert declared["audit_ttl"]["expireAfterSeconds"] == 0
    assert declared["audit_merchant_at"]["key"] == [("merchant_id", 1), ("at", -1), ("_id", -1)]
