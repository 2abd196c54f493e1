"""Delivering failed events again (the events API's recover) through the running dispatcher and scheduler: events
whose one delivery failed (the profile delivers once) are recovered once the endpoint answers again, each delivered
with its `webhook-id` by the retry its timer brings (the real scheduler's), and a second recover finds nothing.

Real RabbitMQ (the test's vhost), the MongoDB-wire server, the scheduler and a real HTTP receiver on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.messages import PaymentSucceeded, ProfileUpdated
from recovery_dispatcher.app import build_service
from recovery_dispatcher.settings import DispatcherSettings
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_scheduler.app import build_service as build_scheduler
from recovery_scheduler.settings import SchedulerSettings
from support.broker import broker_probe, eventually
from support.payments import payment_succeeded, recovery_payment
from support.services import settings_for
from support.stack import Isolation

pytestmark = pytest.mark.integration

MERCHANT = "merchant_recover"
PROFILE = "pro_recover"
TOKEN = "internal-token-for-the-recover-test"


def endpoint(url: str) -> Envelope[ProfileUpdated]:
    return Envelope[ProfileUpdated](
        type=MessageType.PROFILE_UPDATED,
        merchant_id=MERCHANT,
        profile_id=PROFILE,
        payload=ProfileUpdated(
            profile_id=PROFILE,
            merchant_id=MERCHANT,
            version=1,
            webhook_url=url,
            payment_response_hash_key="hash-key-for-the-recover-test",
            webhook_retry_schedule_seconds=(),  # delivered once: a failure is final at once
        ),
    )


def succeeded() -> Envelope[PaymentSucceeded]:
    return payment_succeeded(recovery_payment(merchant_id=MERCHANT, profile_id=PROFILE))


def record_of(db: Any, event: Envelope[Any]) -> dict[str, Any] | None:
    key = idempotent_event_id(event.payload.attempt_id, "payment_succeeded")
    return db.webhook_events.find_one({"idempotent_event_id": key, "delivery_attempt": "initial_attempt"})


def statuses(db: Any, events: list[Envelope[Any]]) -> list[str | None]:
    return [(record_of(db, e) or {}).get("status") for e in events]


async def test_failed_events_are_recovered_and_delivered_once_the_endpoint_answers(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))
    dispatcher = serve(
        build_service(
            settings_for(
                DispatcherSettings,
                isolation,
                outbound_allowed_cidrs="127.0.0.0/8",
                webhook_in_process_attempts=1,
                internal_api_token=TOKEN,
            )
        )
    )
    receiver = serve(receiver_app())
    httpx.post(f"{receiver.url}/_receiver/config", json={"behaviours": [{"status": 500, "times": 3}]})
    events = [succeeded() for _ in range(3)]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(endpoint(f"{receiver.url}/hook"))
        await eventually(lambda: db.webhook_endpoints.count_documents({}) == 1)
        for event in events:
            await broker.publish(event)
        await eventually(lambda: statuses(db, events) == ["failed"] * 3, timeout=30)

        recover = f"{dispatcher.url}/internal/events/{MERCHANT}/recover"
        asked = {"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
        headers = {TOKEN_HEADER: TOKEN, MERCHANT_HEADER: MERCHANT}
        answer = httpx.post(recover, json=asked, headers=headers, timeout=30)
        await eventually(lambda: statuses(db, events) == ["delivered"] * 3, timeout=30)
        again = httpx.post(recover, json=asked, headers=headers, timeout=30)

    ids = [(record_of(db, e) or {})["event_id"] for e in events]
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["event_ids"]) == sorted(ids) and answer.json()["next_cursor"] is None
    assert again.json() == {"recovered_count": 0, "event_ids": [], "next_cursor": None, "refused_profiles": {}}
    deliveries = httpx.get(f"{receiver.url}/received").json()
    # Each event twice: its failed delivery, then the recovered one, with the same webhook-id.
    by_event: dict[str, list[int]] = {}
    for delivery in deliveries:
        webhook_id = dict(delivery["headers"])["webhook-id"]
        by_event.setdefault(webhook_id, []).append(delivery["response"]["status"])
    assert by_event == {event_id: [500, 200] for event_id in ids}
