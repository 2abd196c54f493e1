"""`recovery timeline` reads a payment's webhook events by `_id` only: the dispatcher's collections have no secondary
index (its payment index was retired), so a filter on `payment_id` would scan every record of every merchant.

SecantusDB's `explain` answers COLLSCAN for any `_id` range (only equality and `$in` show IXSCAN), even for the
ranges the dispatcher itself reads by; so these tests check the shape of the queries instead (every filter on
`webhook_events` and `webhook_claims` is on `_id`: MongoDB's `_id` index serves it), and that the records are the
same ones, in the same order, as a scan by `payment_id` returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from recovery_cli.timeline import load_timeline
from recovery_dispatcher.adapters.record_writer import sequence_key
from recovery_dispatcher.domain.ids import initial_event_id, record_key, retry_event_id
from recovery_dispatcher.domain.outgoing_webhook import build_body
from support.stack import Isolation

WEBHOOK_COLLECTIONS = ("webhook_events", "webhook_claims")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Finds(CommandListener):
    """The filters of the `find`s sent to the dispatcher's collections."""

    def __init__(self) -> None:
        self.filters: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command["find"] in WEBHOOK_COLLECTIONS:
            self.filters.append((event.command["find"], dict(event.command.get("filter") or {})))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def by_id_only(query: dict[str, Any]) -> bool:
    """A filter the `_id` index answers: on `_id` alone, or an `$or` of such filters."""
    if set(query) == {"$or"}:
        return all(by_id_only(branch) for branch in query["$or"])
    return set(query) == {"_id"}


@pytest.fixture
def watched(isolation: Isolation) -> Iterator[tuple[Database[dict[str, Any]], Finds]]:
    finds = Finds()
    client: MongoClient[dict[str, Any]] = MongoClient(isolation.mongodb_url, tz_aware=True, event_listeners=[finds])
    yield client[isolation.mongodb_database], finds
    client.close()


def store_event(
    db: Database[dict[str, Any]], merchant_id: str, payment_id: str, sequence: int, event_type: str, retries: int
) -> list[str]:
    """A claimed event of `payment_id` as the dispatcher stores it: its claim, its initial record and one record
    per later attempt; returns the records' `_id`s."""
    created = START + timedelta(minutes=10 * sequence + len(payment_id))
    event_id = initial_event_id(f"{payment_id}:{event_type}", created)
    body = build_body(
        merchant_id=merchant_id,
        event_id=event_id,
        event_type=event_type,
        content_type="payment_details",
        content_object={"id": payment_id},
        timestamp=created,
    )
    db["webhook_claims"].insert_one(
        {
            "_id": sequence_key(payment_id, sequence),
            "idempotent_event_id": f"{payment_id}:{event_type}",
            "event_id": event_id,
            "payment_id": payment_id,
            "created_at": created,
            "body": body,
            "sequence": sequence,
        }
    )
    shared = {"event_type": event_type, "payment_id": payment_id, "merchant_id": merchant_id, "sequence": sequence}
    records = [
        {
            "_id": record_key(merchant_id, event_id),
            "event_id": event_id,
            "initial_attempt_id": event_id,
            "created_at": created,
            "delivery_attempt": "initial_attempt",
            "status": "delivered" if retries else "failed",
            "response": {"status_code": 500},
            **shared,
        }
    ]
    for retry in range(retries):
        retry_id = retry_event_id(event_id, f"{retry:016x}")
        records.append(
            {
                "_id": record_key(merchant_id, retry_id),
                "event_id": retry_id,
                "initial_attempt_id": event_id,
                "created_at": created + timedelta(minutes=1 + retry),
                "delivery_attempt": "automatic_retry",
                "status": "delivered",
                "response": {"status_code": 200},
                **shared,
            }
        )
    db["webhook_events"].insert_many(records)
    return [record["_id"] for record in records]


def test_a_payments_webhook_events_are_read_by_id_as_a_payment_id_scan_finds_them(
    watched: tuple[Database[dict[str, Any]], Finds],
) -> None:
    db, finds = watched
    payment = "12345_pay_timeline"
    expected = store_event(db, "mer_a", payment, 1, "payment_failed", retries=2)
    expected += store_event(db, "mer_a", payment, 2, "payment_succeeded", retries=0)
    # Neighbours: another payment of the merchant, one whose id starts with this one's, another merchant's.
    store_event(db, "mer_a", "12345_pay_other", 1, "payment_failed", retries=1)
    store_event(db, "mer_a", payment + "0", 1, "payment_failed", retries=1)
    store_event(db, "mer_ab", "12345_pay_elsewhere", 1, "payment_succeeded", retries=1)

    # No intent here: the merchant comes from the claimed event's body.
    timeline = load_timeline(db, payment)
    scanned = list(db["webhook_events"].find({"payment_id": payment}).sort([("created_at", 1), ("_id", 1)]))

    assert timeline.webhook_events == scanned
    assert sorted(record["_id"] for record in timeline.webhook_events) == sorted(expected)
    read = [query for collection, query in finds.filters[:-1]]  # the last find is this test's own scan
    assert {collection for collection, _ in finds.filters[:-1]} == set(WEBHOOK_COLLECTIONS)
    assert all(by_id_only(query) for query in read), read


def test_a_payment_without_claims_reads_no_records(watched: tuple[Database[dict[str, Any]], Finds]) -> None:
    db, finds = watched
    store_event(db, "mer_a", "12345_pay_other", 1, "payment_failed", retries=1)
    assert load_timeline(db, "12345_pay_unknown").webhook_events == []
    assert [collection for collection, _ in finds.filters] == ["webhook_claims"]


def test_the_seed_flows_webhook_events_are_those_a_payment_id_scan_finds(seed_flow: Any) -> None:
    """The real dispatcher's records of the seed's payment (an intent here): the same records, in the same order,
    so the command's output is the same as when it scanned by `payment_id`."""
    seed_flow.require_completed()
    client: MongoClient[dict[str, Any]] = MongoClient(seed_flow.isolation.mongodb_url, tz_aware=True)
    try:
        db = client[seed_flow.isolation.mongodb_database]
        timeline = load_timeline(db, seed_flow.payment_id)
        by_payment = {"payment_id": seed_flow.payment_id}
        scanned = list(db["webhook_events"].find(by_payment).sort([("created_at", 1), ("_id", 1)]))
    finally:
        client.close()
    assert scanned
    assert timeline.webhook_events == scanned
