"""Billing systems' events over the broker (`billing.event`, queue `intake.billing-event`): the webhook route's
handler behind the one consumer pipeline. Signed Stripe Billing and basic-auth Chargebee events start, stop and
de-duplicate recoveries exactly as over HTTP (an event taken by either door is a duplicate at the other); a bad
signature, stale or future hand-off, wrong connector or another tenant's account is dead-lettered with the reason
and nothing is stored. Both doors count every delivery by billing system, door and outcome."""

from __future__ import annotations

import base64
import json
import socket
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from faststream.rabbit import TestRabbitBroker
from prometheus_client import REGISTRY

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import BillingEventReceived
from recovery_contracts.payments import IntentStatus
from recovery_runtime.testing import consumed, publish
from recovery_sandbox.stripe.webhooks import stripe_signature

from . import test_billing_chargebee as chargebee
from .fakes import MERCHANT, PROFILE, Intake, http_client, intake
from .test_billing_webhooks import (
    ACCOUNT,
    SECRET,
    deliver,
    event,
    failed_invoice,
    stripe_api,
    svc,
    with_stripebilling_account,
)
from .test_intake_cancel_fence import charging

__all__ = ["stripe_api", "svc"]  # the Stripe Billing account's fixtures, shared with the HTTP tests

QUEUE = "intake.billing-event"


def handed_on(
    svc: Intake,
    payload: bytes,
    *,
    secret: str = SECRET,
    signed_at: datetime | None = None,
    received_at: datetime | None = None,
    connector: str = "stripebilling",
    account: str = ACCOUNT,
    merchant_id: str | None = MERCHANT,
    headers: dict[str, str] | None = None,
) -> Envelope[BillingEventReceived]:
    """What an ingress publishes for a delivery it took: the body as received and the signature header."""
    now = svc.clock.now()
    stamp = int((signed_at or now).timestamp())
    signed = {"Stripe-Signature": stripe_signature(secret, payload, stamp)} if headers is None else headers
    return envelope_for(
        MessageType.BILLING_EVENT,
        BillingEventReceived.model_validate(
            {
                "connector": connector,
                "connector_account_id": account,
                "body": payload.decode(),
                "headers": signed,
                "received_at": received_at or now,
            }
        ),
        merchant_id=merchant_id,
        profile_id=PROFILE,
    )


async def test_a_signed_payment_failure_starts_the_recovery_and_a_copy_changes_nothing(
    svc: Intake, stripe_api: httpx.Client
) -> None:
    invoice = failed_invoice(stripe_api)
    message = handed_on(svc, event("invoice.payment_failed", invoice))

    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, QUEUE, message)
        await publish(broker, QUEUE, message)
        # The same Stripe event handed on again in a message of its own: the event id decides.
        await publish(broker, QUEUE, handed_on(svc, event("invoice.payment_failed", invoice)))

    intent = svc.intents.of_invoice(MERCHANT, invoice["id"])
    assert intent is not None and intent.status is IntentStatus.FAILED
    assert intent.requests == ()  # applied once: no later request folded in
    assert intent.snapshot.first_error is not None and intent.snapshot.first_error.code == "insufficient_funds"
    [scheduled] = svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)
    assert scheduled.correlation_id == intent.payment_id
    assert svc.publisher.dead_letters == []


async def test_an_event_taken_over_http_is_a_duplicate_over_the_broker_and_back(
    svc: Intake, stripe_api: httpx.Client
) -> None:
    first, second = failed_invoice(stripe_api), failed_invoice(stripe_api)
    over_http = event("invoice.payment_failed", first, "evt_http")
    over_broker = event("invoice.payment_failed", second, "evt_broker")

    async with http_client(svc) as client, TestRabbitBroker(svc.service.broker) as broker:
        assert (await deliver(svc, client, over_http)).json()["outcome"] == "applied"
        await publish(broker, QUEUE, handed_on(svc, over_http))
        await publish(broker, QUEUE, handed_on(svc, over_broker))
        again = await deliver(svc, client, over_broker)

    assert again.json()["outcome"] == "duplicate"
    for invoice in (first, second):
        intent = svc.intents.of_invoice(MERCHANT, invoice["id"])
        assert intent is not None and intent.requests == ()
    assert len(svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)) == 2
    assert svc.publisher.dead_letters == []


async def test_paid_elsewhere_stops_the_recovery_and_unknown_types_are_acknowledged(
    svc: Intake, stripe_api: httpx.Client
) -> None:
    invoice = failed_invoice(stripe_api)

    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, QUEUE, handed_on(svc, event("invoice.payment_failed", invoice, "evt_f")))
        await publish(broker, QUEUE, handed_on(svc, event("invoice.paid", invoice, "evt_paid")))
        customer = {"id": "cus_1", "object": "customer"}
        await publish(broker, QUEUE, handed_on(svc, event("customer.created", customer, "evt_other")))

    intent = svc.intents.of_invoice(MERCHANT, invoice["id"])
    assert intent is not None and intent.status is IntentStatus.SUCCEEDED
    [updated] = svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)
    assert updated.payload.action == "success_payment_external"
    assert svc.publisher.dead_letters == []


async def test_a_chargebee_event_with_its_basic_auth_starts_the_recovery(svc: Intake) -> None:
    chargebee.with_chargebee_account(svc)
    credentials = base64.b64encode(f"{chargebee.USER}:{chargebee.PASSWORD}".encode()).decode()

    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(
            broker,
            QUEUE,
            handed_on(
                svc,
                chargebee.event("payment_failed"),
                connector="chargebee",
                account=chargebee.ACCOUNT,
                headers={"Authorization": f"Basic {credentials}"},
            ),
        )

    intent = svc.intents.of_invoice(MERCHANT, "inv_1")
    assert intent is not None and intent.snapshot.billing_connector_id == chargebee.ACCOUNT
    assert svc.publisher.dead_letters == []


async def test_a_billing_system_api_that_cannot_be_read_is_tried_again_not_dead_lettered(
    stripe_api: httpx.Client, requeues: list[int]
) -> None:
    """Over HTTP this answers 503 and Stripe delivers again; over the broker the message goes back to the queue
    after a pause (counted towards its delivery limit), and nothing is stored meanwhile."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
    svc = with_stripebilling_account(intake(stripe_api_base=unreachable, outbound_allowed_cidrs="127.0.0.0/8"))
    message = handed_on(svc, event("invoice.payment_failed", failed_invoice(stripe_api)))

    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, QUEUE, message)

    assert requeues == [0]
    assert svc.publisher.dead_letters == [] and svc.intents.intents == {} and svc.publisher.published == []


async def test_a_cancel_while_an_attempt_is_charged_waits_for_it_and_nothing_is_stored(
    svc: Intake, stripe_api: httpx.Client, requeues: Any
) -> None:
    """Over HTTP a 409 that the billing system delivers again; over the broker a wait (`RetryLater`: counted
    `retry_later`, not `failed`) until the attempt has settled."""
    invoice = failed_invoice(stripe_api)

    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, QUEUE, handed_on(svc, event("invoice.payment_failed", invoice, "evt_f")))
        intent = svc.intents.of_invoice(MERCHANT, invoice["id"])
        assert intent is not None
        await charging(svc, intent.payment_id)
        failed, waited = consumed(QUEUE, "failed"), consumed(QUEUE, "retry_later")
        await publish(broker, QUEUE, handed_on(svc, event("invoice.voided", invoice, "evt_void")))

    assert requeues == [0] and svc.publisher.dead_letters == []
    assert consumed(QUEUE, "retry_later") == waited + 1 and consumed(QUEUE, "failed") == failed
    after = svc.intents.of_invoice(MERCHANT, invoice["id"])
    assert after is not None and after.status is IntentStatus.FAILED and after.requests == ()


def _refusals(svc: Intake, payload: bytes) -> dict[str, tuple[Envelope[BillingEventReceived] | bytes, str]]:
    now = svc.clock.now()
    unsigned = handed_on(svc, payload, headers={})
    return {
        "wrong-secret": (handed_on(svc, payload, secret="whsec_someone_else"), "unauthenticated: no Stripe-Signature"),
        "unsigned": (unsigned, "unauthenticated: no Stripe-Signature header"),
        # Signed long before the ingress says it received it: a replay.
        "stale-signature": (handed_on(svc, payload, signed_at=now - timedelta(seconds=301)), "outside the tolerance"),
        # Stale hand-off: signed and received 4 days ago, consistent, but older than Stripe would still deliver.
        "stale-hand-off": (
            handed_on(svc, payload, signed_at=now - timedelta(days=4), received_at=now - timedelta(days=4)),
            "more than 3 days ago",
        ),
        "future-hand-off": (
            handed_on(svc, payload, signed_at=now + timedelta(hours=1), received_at=now + timedelta(hours=1)),
            "is in the future",
        ),
        "wrong-connector": (handed_on(svc, payload, connector="chargebee"), "is not a chargebee account"),
        "other-merchant": (
            handed_on(svc, payload, merchant_id="merchant_2"),
            "no profile pro_1 of merchant merchant_2",
        ),
        "no-merchant": (handed_on(svc, payload, merchant_id=None), "needs merchant_id and profile_id"),
        "unknown-account": (handed_on(svc, payload, account="mca_unknown"), "no billing connector account"),
        "not-an-event": (handed_on(svc, b'{"hello": "world"}'), "invalid: not a Stripe event"),
        "invalid-message": (_without_received_at(unsigned), "payload.received_at: Field required"),
        # A time without its UTC offset cannot be compared with the clock: refused by the contract, at once.
        "naive-received-at": (
            _naive_received_at(handed_on(svc, payload)),
            "payload.received_at: Input should have timezone info",
        ),
    }


def _without_received_at(message: Envelope[BillingEventReceived]) -> bytes:
    document: dict[str, Any] = message.model_dump(mode="json")
    del document["payload"]["received_at"]
    return json.dumps(document).encode()


def _naive_received_at(message: Envelope[BillingEventReceived]) -> bytes:
    """As a publisher that forgot the offset sends it: `2025-09-07T20:02:09.947000`, read as no time zone."""
    document: dict[str, Any] = message.model_dump(mode="json")
    document["payload"]["received_at"] = message.payload.received_at.replace(tzinfo=None).isoformat()
    return json.dumps(document).encode()


REFUSALS = [
    "wrong-secret",
    "unsigned",
    "stale-signature",
    "stale-hand-off",
    "future-hand-off",
    "wrong-connector",
    "other-merchant",
    "no-merchant",
    "unknown-account",
    "not-an-event",
    "invalid-message",
    "naive-received-at",
]


@pytest.mark.parametrize("case", REFUSALS)
async def test_a_message_that_cannot_apply_is_dead_lettered_with_the_reason_and_nothing_stored(
    svc: Intake, stripe_api: httpx.Client, case: str
) -> None:
    message, reason = _refusals(svc, event("invoice.payment_failed", failed_invoice(stripe_api)))[case]

    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, QUEUE, message)

    [letter] = svc.publisher.dead_letters
    assert letter.queue == QUEUE and reason in letter.reason, letter.reason
    assert svc.intents.intents == {} and svc.publisher.published == []


def _counted(*labels: tuple[str, str, str]) -> list[float]:
    """`recovery_billing_events_total` for each (billing_system, door, outcome): the process-wide counter's values."""
    names = ("billing_system", "door", "outcome")
    samples = (dict(zip(names, k, strict=True)) for k in labels)
    return [REGISTRY.get_sample_value("recovery_billing_events_total", sample) or 0.0 for sample in samples]


async def test_every_delivery_is_counted_by_billing_system_door_and_outcome(
    svc: Intake, stripe_api: httpx.Client, requeues: list[int]
) -> None:
    """What an operator reads on the dashboard: each door's applied, duplicate and refused deliveries apart, a
    refusal before the account is known under the system the ingress named (`unknown` over HTTP), and a billing
    system's API that did not answer (the 503 over HTTP, the requeue over the broker) as `unavailable`."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}"
    cut_off = with_stripebilling_account(intake(stripe_api_base=unreachable, outbound_allowed_cidrs="127.0.0.0/8"))
    counted = [
        ("stripebilling", "http", "applied"),
        ("stripebilling", "http", "duplicate"),
        ("stripebilling", "http", "refused_unauthenticated"),
        ("unknown", "http", "refused_not_found"),
        ("stripebilling", "http", "unavailable"),
        ("stripebilling", "broker", "applied"),
        ("stripebilling", "broker", "duplicate"),
        ("chargebee", "broker", "refused_invalid"),  # the system the ingress named, not the account's
        ("stripebilling", "broker", "unavailable"),
    ]
    before = _counted(*counted)
    over_http = event("invoice.payment_failed", failed_invoice(stripe_api), "evt_counted_http")
    over_broker = event("invoice.payment_failed", failed_invoice(stripe_api), "evt_counted_broker")

    async with http_client(svc) as client, TestRabbitBroker(svc.service.broker) as broker:
        answers = [
            await deliver(svc, client, over_http),
            await deliver(svc, client, over_http),
            await deliver(svc, client, over_http, secret="whsec_someone_else"),
            await deliver(svc, client, over_http, url=f"/v2/webhooks/recovery/merchant_2/{PROFILE}/{ACCOUNT}"),
        ]
        await publish(broker, QUEUE, handed_on(svc, over_broker))
        await publish(broker, QUEUE, handed_on(svc, over_http))
        await publish(broker, QUEUE, handed_on(svc, over_broker, connector="chargebee"))
    async with http_client(cut_off) as client, TestRabbitBroker(cut_off.service.broker) as broker:
        answers.append(await deliver(cut_off, client, over_broker))
        await publish(broker, QUEUE, handed_on(cut_off, over_broker))

    assert [a.status_code for a in answers] == [200, 200, 401, 404, 503]
    assert [after - was for after, was in zip(_counted(*counted), before, strict=True)] == [1.0] * len(counted)
    assert requeues == [0]  # the broker's unavailable delivery, back to the queue after a pause
