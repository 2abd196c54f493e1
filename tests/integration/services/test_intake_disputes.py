"""Intake against real RabbitMQ and the MongoDB-wire server: a dispute opened, then lost, at the Stripe sandbox on a
payment a recovery collected reaches intake's payment connector webhook, is kept on the intent in MongoDB (with the
events' ids among its applied ids) and published once as `payment.dispute-updated` (opened), once as
`payment.dispute-lost`; Stripe's redelivery changes nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from recovery_cli.seed_scenario import SANDBOX_SECRET_KEY, Endpoints, MerchantSetup, SeedScenario
from recovery_contracts.recovery import RecoveryPayment
from recovery_intake.app import build_service
from recovery_intake.settings import IntakeSettings
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_sandbox.serving import BackgroundServer
from recovery_sandbox.stripe import create_app as stripe_app
from support.broker import broker_probe, eventually
from support.payments import payment_succeeded
from support.services import settings_for
from support.stack import Isolation, recovery_body

pytestmark = pytest.mark.integration

ADMIN = "test_admin_key"
STRIPE = {"Authorization": f"Bearer {SANDBOX_SECRET_KEY}"}


@pytest.fixture
def sandbox(serve: Any) -> BackgroundServer:
    server: BackgroundServer = serve(stripe_app())
    return server


@pytest.fixture
def intake(serve: Any, isolation: Isolation, sandbox: BackgroundServer) -> Any:
    settings = settings_for(
        IntakeSettings,
        isolation,
        admin_api_key=ADMIN,
        stripe_api_base=sandbox.url,
        outbound_allowed_cidrs="127.0.0.0/8",
    )
    return serve(build_service(settings))


@pytest.fixture
def setup(serve: Any, intake: Any, sandbox: BackgroundServer) -> MerchantSetup:
    receiver = serve(receiver_app())
    return SeedScenario(Endpoints(intake.url, sandbox.url, receiver.url, ADMIN), say=lambda _: None).bootstrap()


def delivered(sandbox: BackgroundServer, count: int) -> dict[str, Any] | None:
    """The sandbox's events and deliveries once `count` deliveries have been answered."""
    events: dict[str, Any] = httpx.get(f"{sandbox.url}/_sandbox/events").json()
    return events if len(events["deliveries"]) >= count else None


async def test_a_disputes_opening_and_loss_are_kept_on_the_intent_and_published_once_each(
    setup: MerchantSetup, intake: Any, sandbox: BackgroundServer, isolation: Isolation, db: Any
) -> None:
    body = recovery_body(setup)
    created = httpx.post(f"{intake.url}/v2/payments/recovery", json=body, headers=setup.headers())
    payment_id = created.json()["id"]
    # The executor's charge: its attempt in the PaymentIntent's metadata.
    form = {"amount": "2250", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
    metadata = {"metadata[payment_id]": payment_id, "metadata[attempt_id]": "12345_att_dispute"}
    charge = httpx.post(f"{sandbox.url}/v1/payment_intents", data={**form, **metadata}, headers=STRIPE).json()
    # The merchant points Stripe's dispute events at intake and gives the payment account their signing secret.
    hook = f"{intake.url}/v2/webhooks/{setup.merchant_id}/{setup.profile_id}/{setup.payment_mca}"
    endpoint = httpx.post(
        f"{sandbox.url}/v1/webhook_endpoints",
        data={"url": hook, "enabled_events[]": ["charge.dispute.created", "charge.dispute.closed"]},
        headers=STRIPE,
    ).json()
    secret = {
        "connector_type": "payment_processor",
        "connector_webhook_details": {"merchant_secret": endpoint["secret"]},
    }
    updated = httpx.put(f"{intake.url}/v2/connector-accounts/{setup.payment_mca}", json=secret, headers=setup.headers())
    assert updated.status_code == 200, updated.text

    async with broker_probe(isolation.rabbitmq_url) as broker:
        scheduled = await broker.take_json("scheduler.recovery-scheduled")
        payment = RecoveryPayment.model_validate(scheduled["payload"]["payment"])
        await broker.publish(payment_succeeded(payment, charge["id"], attempt_id="12345_att_dispute"))
        await eventually(lambda: db.payment_intents.find_one({"_id": payment_id})["status"] == "succeeded")

        dispute = httpx.post(f"{sandbox.url}/_sandbox/disputes", data={"payment_intent": charge["id"]}).json()
        # Its opening first (Stripe delivers events side by side: the loss could otherwise overtake it).
        opened = await broker.take_json("dispatcher.dispute-updated")
        closed = httpx.post(f"{sandbox.url}/v1/disputes/{dispute['id']}/close", headers=STRIPE).json()
        assert closed["status"] == "lost"
        lost = await broker.take_json("analytics.dispute-lost")
        intent = await eventually(lambda: db.payment_intents.find_one({"_id": payment_id, "disputes": {"$ne": None}}))

        events = await eventually(lambda: delivered(sandbox, 2))
        closed_event = next(e for e in events["events"] if e["type"] == "charge.dispute.closed")
        resent = httpx.post(f"{sandbox.url}/_sandbox/events/{closed_event['id']}/resend").json()
        await asyncio.sleep(0.5)  # a second message, if any, would be on its way
        extra = await broker.depth("analytics.dispute-lost")

    assert lost["type"] == "payment.dispute-lost" and lost["correlation_id"] == payment_id
    assert (lost["payload"]["dispute"]["connector_dispute_id"], lost["payload"]["amount"]) == (dispute["id"], 2250)
    assert lost["payload"]["dispute"]["attempt_id"] == "12345_att_dispute"
    assert [(d["connector_dispute_id"], d["amount"]) for d in intent["disputes"]] == [(dispute["id"], 2250)]
    assert f"intake.payment-webhook:{setup.payment_mca}:{closed_event['id']}" in intent["applied_messages"]
    assert intent["status"] == "succeeded"
    answers = [json.loads(d["answer"])["outcome"] for d in delivered(sandbox, 3)["deliveries"]]
    assert answers == ["applied", "applied", "duplicate"]  # the dispute's opening, its loss, the loss again
    assert opened["type"] == "payment.dispute-updated" and opened["correlation_id"] == payment_id
    dispute_id = lost["payload"]["dispute"]["dispute_id"]
    assert opened["message_id"] == f"{dispute_id}:dispute_opened"
    assert (opened["payload"]["dispute"]["dispute_status"], opened["payload"]["dispute"]["connector_status"]) == (
        "dispute_opened",
        "needs_response",
    )
    assert [d["emitted"] for d in intent["disputes"]] == [["dispute_opened", "dispute_lost"]]
    assert resent == {"statuses": [200]} and extra == 0
