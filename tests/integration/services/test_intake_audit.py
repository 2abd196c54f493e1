"""The audit trail's store on the real database (MongoDB's wire protocol): entries kept with their expiry (the TTL
index), a merchant's read newest first and page after page on the index declared for it (one key's, the refused,
within a window of time), no other merchant's.
Through intake's HTTP port: tests/integration/services/test_intake.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from recovery_contracts.api.audit import AuditActorKind
from recovery_intake.adapters.audit_log import COLLECTION, INDEXES, MongoAuditLog
from recovery_intake.domain.audit import AuditActor, AuditEntry, AuditFilter
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


async def test_one_keys_entries_or_only_the_refused_are_read_on_the_same_index(adb: Any) -> None:
    await ensure_indexes(adb, INDEXES)
    trail = MongoAuditLog(adb, timedelta(days=400))
    for n in range(6):
        refused = replace(entry(n, key_id="key_b" if n % 2 else "key_a"), status=403 if n in (1, 4) else 200)
        await trail.record(refused)
    await trail.record(replace(entry(9, merchant_id="merchant_b", key_id="key_b"), status=403))

    of_b = await trail.page("merchant_a", 10, None, AuditFilter(key_id="key_b"))
    refused = await trail.page("merchant_a", 10, None, AuditFilter(refused_only=True))
    first = await trail.page("merchant_a", 1, None, AuditFilter(key_id="key_b", refused_only=True))
    rest = await trail.page("merchant_a", 10, (first[0].at, first[0].entry_id), AuditFilter("key_b", True))

    assert [e.entry_id for e in of_b] == ["audit_005", "audit_003", "audit_001"]
    assert [e.entry_id for e in refused] == ["audit_004", "audit_001"]
    assert [e.entry_id for e in first + rest] == ["audit_001"]
    assert await trail.page("merchant_a", 10, None, AuditFilter(key_id="key_c")) == []


async def test_a_window_of_time_bounds_the_read_both_ends_included_with_the_other_filters(adb: Any) -> None:
    await ensure_indexes(adb, INDEXES)
    trail = MongoAuditLog(adb, timedelta(days=400))
    for n in range(8):
        await trail.record(replace(entry(n), status=403 if n in (2, 5) else 200))
    await trail.record(replace(entry(4, merchant_id="merchant_b"), entry_id="audit_104"))
    second = timedelta(seconds=1)
    window = AuditFilter(created_after=AT + 2 * second, created_before=AT + 6 * second)

    inside = await trail.page("merchant_a", 10, None, window)
    first = await trail.page("merchant_a", 2, None, window)
    rest = await trail.page("merchant_a", 10, (first[-1].at, first[-1].entry_id), window)
    refused = await trail.page("merchant_a", 10, None, replace(window, refused_only=True))
    since = await trail.page("merchant_a", 10, None, AuditFilter(created_after=AT + 6 * second))
    until = await trail.page("merchant_a", 10, None, AuditFilter(created_before=AT + second))

    assert [e.entry_id for e in inside] == ["audit_006", "audit_005", "audit_004", "audit_003", "audit_002"]
    assert [e.entry_id for e in first + rest] == [e.entry_id for e in inside]
    assert [e.entry_id for e in refused] == ["audit_005", "audit_002"]
    assert [e.entry_id for e in since] == ["audit_007", "audit_006"]
    assert [e.entry_id for e in until] == ["audit_001", "audit_000"]


async def test_a_payments_entries_are_read_on_their_own_index_with_the_other_filters(adb: Any) -> None:
    await ensure_indexes(adb, INDEXES)
    trail = MongoAuditLog(adb, timedelta(days=400))
    for n in range(6):
        payment = {"payment_id": "pay_a" if n % 2 else "pay_b", "dispute_id": f"dp_{n}"}
        await trail.record(replace(entry(n), target=payment, status=404 if n == 5 else 200))
    await trail.record(entry(6))  # on no payment
    await trail.record(replace(entry(7, merchant_id="merchant_b"), target={"payment_id": "pay_a"}))

    on_a = await trail.page("merchant_a", 10, None, AuditFilter(payment_id="pay_a"))
    first = await trail.page("merchant_a", 1, None, AuditFilter(payment_id="pay_a"))
    rest = await trail.page("merchant_a", 10, (first[0].at, first[0].entry_id), AuditFilter(payment_id="pay_a"))
    refused = await trail.page("merchant_a", 10, None, AuditFilter(refused_only=True, payment_id="pay_a"))
    window = AuditFilter(created_after=AT + timedelta(seconds=1), created_before=AT + timedelta(seconds=3))
    within = await trail.page("merchant_a", 10, None, replace(window, payment_id="pay_a"))

    assert [e.entry_id for e in on_a] == ["audit_005", "audit_003", "audit_001"]
    assert [e.entry_id for e in first + rest] == ["audit_005", "audit_003", "audit_001"]
    assert [e.entry_id for e in refused] == ["audit_005"]
    assert [e.entry_id for e in within] == ["audit_003", "audit_001"]  # both ends included
    declared = await adb[COLLECTION].index_information()
    assert declared["audit_merchant_payment"]["key"] == [
        ("merchant_id", 1),
        ("target.payment_id", 1),
        ("at", -1),
        ("_id", -1),
    ]


async def test_the_platforms_own_entries_are_those_of_no_merchant(adb: Any) -> None:
    await ensure_indexes(adb, INDEXES)
    trail = MongoAuditLog(adb, timedelta(days=400))
    await trail.record(entry(1))
    await trail.record(replace(entry(2), actor=AuditActor(AuditActorKind.ADMIN_KEY, None)))

    assert [e.entry_id for e in await trail.page(None, 10, None)] == ["audit_002"]
    assert [e.entry_id for e in await trail.page("merchant_a", 10, None)] == ["audit_001"]
    assert (await trail.page(None, 10, None))[0].actor == AuditActor(AuditActorKind.ADMIN_KEY, None)
