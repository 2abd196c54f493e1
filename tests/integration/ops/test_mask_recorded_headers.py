"""`recovery secrets mask-recorded-headers` and `status` on attempt records (`webhook_events`) the dispatcher's
repository wrote: records written as before custom header values were masked (their values as sent) are masked by
the dispatcher's own rule and nothing else of them changes, the signatures and the other reserved headers included;
records written masked, and records without a request, are left alone; a second run masks nothing; a dry run writes
nothing; a record written between the read and the write keeps what was written."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from recovery_cli.commands.secrets import render_mask
from recovery_cli.secrets_at_rest import HeaderScan, compare_and_set, mask_recorded_headers, unmasked_records
from recovery_contracts.api.masking import mask_secret
from recovery_dispatcher.adapters import event_documents
from recovery_dispatcher.adapters.event_repository import MongoEventRepository
from recovery_dispatcher.adapters.record_writer import RecordWriter
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.outgoing_webhook import RESERVED_HEADERS, generate_whsec_secret
from recovery_dispatcher.domain.policy import classify_response
from support.payments import payment_succeeded, recovery_payment
from support.secrets_command import command_environment, run

pytestmark = pytest.mark.integration

Document = dict[str, Any]
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TOKEN = "Bearer merchant-endpoint-token-1234"
CUSTOM = {"Authorization": TOKEN, "X-Tenant": "tenant-7"}
ENDPOINT = Endpoint(
    "pro_test", hash_key="a-profile-hash-key", whsec_secrets=(generate_whsec_secret(),), custom_headers=CUSTOM
)


def raised(n: int) -> WebhookEvent:
    message = payment_succeeded(recovery_payment())
    return WebhookEvent.raised(
        event_type="payment_succeeded",
        primary_object_id=message.payload.attempt_id,
        content=message.payload.payment,
        merchant_id="merchant_test",
        profile_id="pro_test",
        now=T0 + timedelta(minutes=n),
        lease_until=T0 + timedelta(minutes=n + 1),
        lease_owner="dispatcher-1",
    ).numbered(1)


def attempt(event: WebhookEvent, status: int, second: int) -> DeliveryResult:
    """One attempt as the sender reports it: the headers as sent, the custom values in the clear."""
    headers = ENDPOINT.headers(event.body, webhook_id=event.event_id, timestamp=1_764_000_000 + second, sequence=1)
    return DeliveryResult(
        url="https://merchant.example/hook",
        request_headers=tuple(headers),
        started_at=T0 + timedelta(seconds=second),
        duration_ms=12,
        status_code=status,
        response_headers=(),
        response_body="ok",
        response_body_truncated=False,
        error_message=None,
        verdict=classify_response(status, None),
    )


async def write_records(url: str, database: str) -> dict[str, list[str]]:
    """Through the dispatcher's repository: an event delivered on its second attempt and retried by hand, recorded
    as the dispatcher did before it masked custom values (3 records); one recorded as it does now; one recorded
    before its first attempt (no request). The records' `_id`s by kind."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(url, tz_aware=True)
    db = client[database]
    events = MongoEventRepository(db, RecordWriter(db.webhook_events, claims=db.webhook_claims))
    try:
        old = raised(1)
        first, second = attempt(old, 500, 1), attempt(old, 200, 2)
        with pytest.MonkeyPatch.context() as earlier_version:
            # What `attempt_fields` recorded before: `{"headers": result.request_headers}`.
            earlier_version.setattr(event_documents, "recorded_headers", tuple)
            delivered = old.attempts_made(2, first_succeeded=False, delivered_at=T0)
            await events.record_attempts(old, delivered, [first, second], recorded=False)
            await events.record_manual_attempt(delivered, delivered, attempt(old, 200, 3))
        new = raised(2)
        await events.record_attempts(
            new, new.attempts_made(1, first_succeeded=True, delivered_at=T0), [attempt(new, 200, 4)], recorded=False
        )
        unattempted = raised(3)
        await events.insert(unattempted)
    finally:
        await events.close()
        await client.close()
    return {"old": ids_of_event(url, database, old), "new": [new.key], "unattempted": [unattempted.key]}


def ids_of_event(url: str, database: str, event: WebhookEvent) -> list[str]:
    """The `_id`s of an event's records (an attempt's record id starts with its initial event's)."""
    with MongoClient(url) as client:
        return [
            doc["_id"] for doc in client[database].webhook_events.find({"_id": {"$regex": f"^{re.escape(event.key)}"}})
        ]


@pytest.fixture
def db(mongodb_url: str, mongodb_database: str) -> Iterator[Database[Document]]:
    with MongoClient(mongodb_url, tz_aware=True) as client:
        yield client[mongodb_database]


@pytest.fixture
def records(db: Database[Document], mongodb_url: str) -> dict[str, list[str]]:
    return asyncio.run(write_records(mongodb_url, db.name))


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, db: Database[Document], mongodb_url: str) -> None:
    """`status` reads master keys (none seals anything here); `mask-recorded-headers` needs none."""
    key = base64.b64encode(b"k" * 32).decode()
    command_environment(
        monkeypatch, master_keys=f"k1:{key}", active_key_id="k1", mongodb_url=mongodb_url, database=db.name
    )


def unmasked(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, Any]:
    code, out, err = run("status", "--json", *options, capsys=capsys)
    assert code == 0, err  # no sealed value under another key: unmasked records do not change the exit code
    return code, json.loads(out)["unmasked_recorded_headers"]


def records_by_id(db: Database[Document]) -> dict[str, Document]:
    return {doc["_id"]: doc for doc in db.webhook_events.find()}


def without_headers(doc: Document) -> Document:
    rest = copy.deepcopy(doc)
    if isinstance(rest.get("request"), dict):
        rest["request"].pop("headers", None)
    return rest


def sent_masked(sent: list[list[str]]) -> list[list[str]]:
    """The headers as sent with the custom values masked (written out here, not by the rule under test)."""
    return [[name, mask_secret(value) if name in CUSTOM else value] for name, value in sent]


def test_old_records_are_masked_by_the_dispatchers_rule_and_nothing_else_changes(
    db: Database[Document], records: dict[str, list[str]], environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = records_by_id(db)
    assert len(before) == 5
    for key in records["old"]:  # as the old code wrote them: the credential in the clear
        assert dict(before[key]["request"]["headers"])["Authorization"] == TOKEN
    for key in records["new"]:
        assert TOKEN not in str(before[key])
    assert before[records["unattempted"][0]]["request"] is None

    assert unmasked(capsys) == (0, {"records": 3, "values": 6, "read": 5, "other_shape": 0})
    code, out, _ = run("status", capsys=capsys)
    assert code == 0
    assert "webhook_events: 6 custom header value(s) recorded unmasked in 3 record(s) of 5: run " in out
    assert "`recovery secrets mask-recorded-headers`" in out

    # Batches of two: the scan goes on from the last `_id` read, across batch boundaries.
    code, out, err = run("mask-recorded-headers", "--batch-size", "2", capsys=capsys)
    assert code == 0, err
    assert out.splitlines()[-1] == "webhook_events           masked 6 value(s) in 3 record(s) of 5 read"

    after = records_by_id(db)
    assert TOKEN not in str(after) and "tenant-7" not in str(after)
    for key in records["old"]:
        sent, masked = before[key]["request"]["headers"], after[key]["request"]["headers"]
        assert masked == sent_masked(sent)
        # The signatures, webhook-id, content-type ... as sent, names and order kept.
        reserved = [pair for pair in sent if pair[0].lower() in RESERVED_HEADERS]
        assert [pair for pair in masked if pair[0].lower() in RESERVED_HEADERS] == reserved
        assert {name for name, _ in reserved} >= {"X-Webhook-Signature-512", "webhook-signature", "webhook-id"}
        assert without_headers(after[key]) == without_headers(before[key])
    for key in (*records["new"], *records["unattempted"]):
        assert after[key] == before[key]

    assert unmasked(capsys) == (0, {"records": 0, "values": 0, "read": 5, "other_shape": 0})
    assert (
        "webhook_events: no custom header value recorded unmasked (5 record(s) read)" in run("status", capsys=capsys)[1]
    )
    code, out, _ = run("mask-recorded-headers", capsys=capsys)
    assert code == 0
    assert out.splitlines()[-1] == "webhook_events           masked 0 value(s) in 0 record(s) of 5 read"
    assert records_by_id(db) == after


def test_a_dry_run_counts_and_writes_nothing(
    db: Database[Document], records: dict[str, list[str]], environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = records_by_id(db)
    code, out, _ = run("mask-recorded-headers", "--dry-run", capsys=capsys)
    assert code == 0
    assert out.startswith("dry run:")
    assert out.splitlines()[-1] == "webhook_events           would mask 6 value(s) in 3 record(s) of 5 read"
    assert records_by_id(db) == before


def test_status_can_leave_the_records_out(
    db: Database[Document], records: dict[str, list[str]], environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert unmasked(capsys, "--no-recorded-headers") == (0, None)
    assert "webhook_events" not in run("status", "--no-recorded-headers", capsys=capsys)[1]


def test_a_record_written_between_read_and_write_keeps_what_was_written(
    db: Database[Document], records: dict[str, list[str]]
) -> None:
    rewrites = list(unmasked_records(db, HeaderScan()))
    assert len(rewrites) == 3
    # Meanwhile another run masks the first record (so its headers differ from those read).
    first = rewrites[0]
    db.webhook_events.update_one({"_id": first.doc_id}, {"$set": {"request.headers": [["Authorization", "Be**34"]]}})
    written = [compare_and_set(db, rewrite) for rewrite in rewrites]
    assert written == [False, True, True]
    record = db.webhook_events.find_one({"_id": first.doc_id})
    assert record is not None and record["request"]["headers"] == [["Authorization", "Be**34"]]

    scan = HeaderScan(read=5)
    for rewrite, done in zip(rewrites, written, strict=True):
        scan.count(rewrite, written=done)
    assert "1 record(s) changed meanwhile, left as written: run again" in render_mask(scan, dry_run=False)
    assert mask_recorded_headers(db).documents == 0


def test_request_headers_of_another_shape_are_counted_and_left_alone(
    db: Database[Document], records: dict[str, list[str]]
) -> None:
    odd = {"_id": "merchant_test/evt_odd", "request": {"headers": {"Authorization": TOKEN}}}
    db.webhook_events.insert_one(odd)
    scan = mask_recorded_headers(db)
    assert (scan.documents, scan.other_shape, scan.read) == (3, 1, 6)
    assert db.webhook_events.find_one({"_id": odd["_id"]}) == odd
    assert "1 record(s) with request headers not [name, value] pairs, left as they are" in render_mask(
        scan, dry_run=False
    )
