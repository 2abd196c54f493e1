"""Stripe's webhooks at `POST /v2/webhooks/{merchant_id}/{profile_id}/{connector_account_id}` (the payment
connector's): a dispute lost on a payment a recovery collected is applied once on its intent and emitted as
`payment.dispute-lost` (the PaymentIntent read from the Stripe sandbox on loopback); redeliveries and other events
about the same dispute change nothing; other events, disputes not lost and charges not ours are ignored; bad
signatures and other tenants' accounts are refused with nothing stored."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import PaymentDisputeLost
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import AttemptSummary, RecoveryPayment, build_payment_object
from recovery_intake import metrics
from recovery_intake.domain.intent import Intent
from recovery_runtime.secrets import SecretBox
from recovery_sandbox.serving import BackgroundServer
from recovery_sandbox.stripe.webhooks import stripe_signature

from .fakes import BILLING_ACCOUNT, MERCHANT, PAYMENT_ACCOUNT, PROFILE, SETTINGS, Intake, http_client, intake
from .test_intake_intent import snapshot

SECRET = "whsec_payment_tests_0001"
STRIPE_KEY = "sk_test_payment_tests_0001"
URL = f"/v2/webhooks/{MERCHANT}/{PROFILE}/{PAYMENT_ACCOUNT}"


@pytest.fixture
def stripe_api(sandbox: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {STRIPE_KEY}"}) as client:
        yield client


@pytest.fixture
def svc(sandbox: BackgroundServer) -> Intake:
    return with_webhook_secret(
        intake(stripe_api_base=sandbox.url, stripe_files_base=sandbox.url, outbound_allowed_cidrs="127.0.0.0/8")
    )


def with_webhook_secret(built: Intake) -> Intake:
    """The payment account PAYMENT_ACCOUNT with its Stripe key and the webhook's signing secret, as stored."""
    box = SecretBox.from_settings(SETTINGS)
    built.connector_accounts.accounts[PAYMENT_ACCOUNT]["body"] = {
        "connector_account_details": {"auth_type": "HeaderKey", "api_key": box.seal(STRIPE_KEY)},
        "connector_webhook_details": {"merchant_secret": box.seal(SECRET)},
    }
    return built


@pytest.fixture
async def client(svc: Intake) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(svc) as http:
        yield http


def charged(api: httpx.Client, payment_id: str | None, attempt: str = "12345_att_1") -> dict[str, Any]:
    """A PaymentIntent charged as the executor charges: the attempt's identity in its metadata (None: charged by
    something else, no metadata)."""
    form = {"amount": "2250", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
    metadata: dict[str, str] = {}
    if payment_id is not None:
        metadata = {"payment_id": payment_id, "attempt_number": "1", "attempt_id": attempt}
    form.update({f"metadata[{name}]": value for name, value in metadata.items()})
    answer: dict[str, Any] = api.post("/v1/payment_intents", data=form).json()
    assert answer["status"] == "succeeded"
    return answer


def invoice(
    svc: Intake, reference: str = "inv_1", action: RecoveryAction = RecoveryAction.SCHEDULE_FAILED_PAYMENT
) -> RecoveryPayment:
    """An invoice's intent as its request made it: recovering (failed), or paid elsewhere."""
    payment = snapshot().model_copy(update={"payment_id": f"12345_pay_{reference}", "merchant_reference_id": reference})
    svc.intents.intents[payment.payment_id] = Intent.requested(payment, action, svc.clock.now(), cause=None).intent
    svc.intents.applied[payment.payment_id] = []
    return payment


def collect(svc: Intake, payment: RecoveryPayment, payment_intent: str) -> None:
    """The recovery collected the invoice with `payment_intent` (payment.succeeded applied)."""
    now = svc.clock.now()
    attempt = AttemptSummary(total_retry_count=1, token="pm_first", connector_transaction_id=payment_intent)
    outcome = build_payment_object(payment, status=IntentStatus.SUCCEEDED, modified_at=now, attempt=attempt)
    changed = svc.intents.intents[payment.payment_id].with_outcome(
        IntentStatus.SUCCEEDED, outcome.model_dump(mode="json"), now
    )
    assert changed is not None
    svc.intents.intents[payment.payment_id] = changed


def recovered(svc: Intake, api: httpx.Client) -> tuple[RecoveryPayment, dict[str, Any]]:
    """An invoice a recovery collected, and the PaymentIntent it was collected with."""
    payment = invoice(svc)
    intent = charged(api, payment.payment_id)
    collect(svc, payment, intent["id"])
    return payment, intent


def dispute_closed(sandbox: BackgroundServer, api: httpx.Client, payment_intent: str) -> bytes:
    """The customer disputes the charge and the merchant accepts the loss at Stripe: the `charge.dispute.closed`
    event Stripe sends, as the sandbox made it."""
    dispute = httpx.post(f"{sandbox.url}/_sandbox/disputes", data={"payment_intent": payment_intent}).json()
    assert api.post(f"/v1/disputes/{dispute['id']}/close").json()["status"] == "lost"
    return sandbox_event(sandbox, "charge.dispute.closed", dispute["id"])


def sandbox_event(sandbox: BackgroundServer, event_type: str, dispute_id: str) -> bytes:
    events = httpx.get(f"{sandbox.url}/_sandbox/events").json()["events"]
    found = [e for e in events if e["type"] == event_type and e["data"]["object"]["id"] == dispute_id]
    return json.dumps(found[-1]).encode()


def hand_made(payload: bytes, **changes: Any) -> bytes:
    """The event with its fields (`id`, `type`) or its dispute's (`dispute__status`) changed."""
    event = json.loads(payload)
    for name, value in changes.items():
        if name.startswith("dispute__"):
            event["data"]["object"][name.removeprefix("dispute__")] = value
        else:
            event[name] = value
    return json.dumps(event).encode()


async def deliver(
    svc: Intake, client: httpx.AsyncClient, payload: bytes, *, secret: str = SECRET, url: str = URL, skew: int = 0
) -> httpx.Response:
    stamp = int(svc.clock.now().timestamp()) + skew
    headers = {"Stripe-Signature": stripe_signature(secret, payload, stamp), "Content-Type": "application/json"}
    return await client.post(url, content=payload, headers=headers)


def counted(outcome: str) -> float:
    value: float = metrics.PAYMENT_CONNECTOR_EVENTS.labels("stripe", outcome)._value.get()
    return value


def disputes_lost(svc: Intake) -> list[PaymentDisputeLost]:
    return [e.payload for e in svc.publisher.envelopes(MessageType.PAYMENT_DISPUTE_LOST)]


async def test_a_lost_dispute_on_a_recovered_payment_is_applied_and_emitted(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment, intent = recovered(svc, stripe_api)
    payload = dispute_closed(sandbox, stripe_api, intent["id"])
    event = json.loads(payload)
    applied_before = counted("applied")

    response = await deliver(svc, client, payload)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "outcome": "applied", "payment_id": payment.payment_id}
    (lost,) = disputes_lost(svc)
    dispute = lost.dispute
    assert (lost.payment_id, lost.connector_transaction_id, lost.amount) == (payment.payment_id, intent["id"], 2250)
    assert int(lost.lost_at.timestamp()) == event["created"]
    assert (dispute.connector_dispute_id, dispute.connector_status, dispute.connector_reason) == (
        event["data"]["object"]["id"],
        "lost",
        "fraudulent",
    )
    assert (dispute.attempt_id, dispute.amount, dispute.currency) == ("12345_att_1", "2250", "USD")
    assert (dispute.profile_id, dispute.merchant_connector_id) == (PROFILE, PAYMENT_ACCOUNT)
    assert dispute.connector_created_at is not None
    assert int(dispute.connector_created_at.timestamp()) == event["data"]["object"]["created"]
    kept = svc.intents.intents[payment.payment_id]
    assert [d.dispute_id for d in kept.disputes] == [dispute.dispute_id]
    assert kept.status is IntentStatus.SUCCEEDED
    assert counted("applied") == applied_before + 1


async def test_the_same_event_again_or_another_event_of_the_dispute_changes_nothing(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment, intent = recovered(svc, stripe_api)
    payload = dispute_closed(sandbox, stripe_api, intent["id"])

    first = await deliver(svc, client, payload)
    svc.clock.advance(timedelta(seconds=30))
    redelivered = await deliver(svc, client, payload)  # the same event id
    retold = await deliver(svc, client, hand_made(payload, id="evt_another_one"))  # the same dispute

    outcomes = [r.json()["outcome"] for r in (first, redelivered, retold)]
    assert outcomes == ["applied", "duplicate", "duplicate"]
    assert all(r.json()["payment_id"] == payment.payment_id for r in (first, redelivered, retold))
    assert len(disputes_lost(svc)) == 1
    assert len(svc.intents.intents[payment.payment_id].disputes) == 1


async def test_the_opening_and_the_loss_are_each_applied_once_and_what_comes_after_the_end_is_not(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment, intent = recovered(svc, stripe_api)
    closed = dispute_closed(sandbox, stripe_api, intent["id"])
    opened = sandbox_event(sandbox, "charge.dispute.created", json.loads(closed)["data"]["object"]["id"])

    answers = [
        await deliver(svc, client, opened),
        await deliver(svc, client, closed),
        await deliver(svc, client, hand_made(closed, id="evt_won", dispute__status="won")),
        await deliver(svc, client, hand_made(opened, id="evt_late_opening")),
    ]

    assert [a.json()["outcome"] for a in answers] == ["applied", "applied", "duplicate", "duplicate"]
    (updated,) = [e.payload for e in svc.publisher.envelopes(MessageType.PAYMENT_DISPUTE_UPDATED)]
    assert (updated.dispute.dispute_status, updated.dispute.connector_status) == ("dispute_opened", "needs_response")
    (lost,) = disputes_lost(svc)
    assert lost.dispute.dispute_id == updated.dispute.dispute_id
    (kept,) = svc.intents.intents[payment.payment_id].disputes
    assert [s.value for s in kept.emitted] == ["dispute_opened", "dispute_lost"]


async def test_other_events_and_statuses_not_known_are_ignored_with_nothing_stored(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment, intent = recovered(svc, stripe_api)
    closed = dispute_closed(sandbox, stripe_api, intent["id"])

    answers = [
        await deliver(svc, client, hand_made(closed, id="evt_prevented", dispute__status="prevented")),
        await deliver(svc, client, hand_made(closed, id="evt_withdrawn", type="charge.dispute.funds_withdrawn")),
        await deliver(svc, client, hand_made(closed, id="evt_charge", type="charge.refunded")),
    ]

    assert [(a.status_code, a.json()) for a in answers] == [
        (200, {"received": True, "outcome": "ignored", "payment_id": None})
    ] * 3
    assert disputes_lost(svc) == [] and svc.intents.intents[payment.payment_id].disputes == ()
    assert svc.publisher.envelopes(MessageType.PAYMENT_DISPUTE_UPDATED) == []


async def test_a_dispute_on_a_charge_this_merchant_did_not_recover_with_is_ignored(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    ours, collected = recovered(svc, stripe_api)
    paid_elsewhere = invoice(svc, "inv_elsewhere", RecoveryAction.SUCCESS_PAYMENT_EXTERNAL)
    still_recovering = invoice(svc, "inv_open")
    not_the_collecting_charge = charged(stripe_api, ours.payment_id, attempt="12345_att_0")
    another_merchants = charged(stripe_api, "12345_pay_of_another_merchant")
    not_the_executors = charged(stripe_api, None)
    elsewhere = charged(stripe_api, paid_elsewhere.payment_id)
    open_one = charged(stripe_api, still_recovering.payment_id)
    closed = dispute_closed(sandbox, stripe_api, collected["id"])

    payloads = [
        hand_made(closed, id="evt_unknown", dispute__payment_intent="pi_not_at_stripe"),
        *[
            dispute_closed(sandbox, stripe_api, intent["id"])
            for intent in (not_the_collecting_charge, another_merchants, not_the_executors, elsewhere, open_one)
        ],
    ]
    answers = [await deliver(svc, client, payload) for payload in payloads]

    assert [(a.status_code, a.json()["outcome"]) for a in answers] == [(200, "ignored")] * 6
    assert disputes_lost(svc) == []
    assert all(intent.disputes == () for intent in svc.intents.intents.values())


async def test_bad_signatures_are_refused_with_nothing_stored(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment, intent = recovered(svc, stripe_api)
    payload = dispute_closed(sandbox, stripe_api, intent["id"])
    refused_before = counted("refused_unauthenticated")

    wrong = await deliver(svc, client, payload, secret="whsec_someone_else")
    stale = await deliver(svc, client, payload, skew=-301)
    unsigned = await client.post(URL, content=payload)
    del svc.connector_accounts.accounts[PAYMENT_ACCOUNT]["body"]["connector_webhook_details"]
    no_secret = await deliver(svc, client, payload)

    assert [r.status_code for r in (wrong, stale, unsigned, no_secret)] == [401] * 4
    assert wrong.json()["error"]["code"] == "IR_18"
    assert disputes_lost(svc) == [] and svc.intents.intents[payment.payment_id].disputes == ()
    assert counted("refused_unauthenticated") == refused_before + 4


async def test_an_account_of_another_merchant_or_profile_or_not_a_stripe_payment_account_is_refused(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payload = json.dumps({"id": "evt_1", "type": "charge.dispute.closed", "data": {"object": {}}}).encode()
    svc.profiles.profiles["pro_2"] = {**svc.profiles.profiles[PROFILE], "_id": "pro_2"}
    svc.connector_accounts.accounts["mca_disabled"] = {
        **svc.connector_accounts.accounts[PAYMENT_ACCOUNT],
        "_id": "mca_disabled",
        "disabled": True,
    }

    answers = [
        await deliver(svc, client, payload, url=f"/v2/webhooks/merchant_2/{PROFILE}/{PAYMENT_ACCOUNT}"),
        await deliver(svc, client, payload, url=f"/v2/webhooks/{MERCHANT}/pro_2/{PAYMENT_ACCOUNT}"),
        await deliver(svc, client, payload, url=f"/v2/webhooks/{MERCHANT}/{PROFILE}/mca_unknown"),
        await deliver(svc, client, payload, url=f"/v2/webhooks/{MERCHANT}/{PROFILE}/{BILLING_ACCOUNT}"),
        await deliver(svc, client, payload, url=f"/v2/webhooks/{MERCHANT}/{PROFILE}/mca_disabled"),
        await deliver(svc, client, b"not json"),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404, 400, 400, 400]
    assert "is not a payment processor" in answers[3].json()["error"]["message"]
    assert svc.publisher.published == []


async def test_a_stripe_that_cannot_be_read_answers_503_so_that_stripe_delivers_again(
    sandbox: BackgroundServer, stripe_api: httpx.Client
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    svc = with_webhook_secret(
        intake(stripe_api_base=f"http://127.0.0.1:{closed_port}", outbound_allowed_cidrs="127.0.0.0/8")
    )
    payment, intent = recovered(svc, stripe_api)
    payload = dispute_closed(sandbox, stripe_api, intent["id"])

    async with http_client(svc) as client:
        response = await deliver(svc, client, payload)

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "CE_01" and error["message"].startswith("The payment connector could not be read: ")
    assert disputes_lost(svc) == [] and svc.intents.intents[payment.payment_id].disputes == ()
