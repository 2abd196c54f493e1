"""The executor (MongoDB, RabbitMQ, the scheduler's PSYNC timers) charging at the Stripe sandbox: every call of an
attempt sends the parameters recorded at its claim, and an idempotency error is an unknown outcome that PSYNC
settles, never a final error that would let the next attempt charge again under a new key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.ids import new_attempt_id
from recovery_contracts.messages import ExecuteRetry
from recovery_executor.adapters.attempts import ATTEMPTS, claim_document
from recovery_executor.adapters.stripe import StripeConnector
from recovery_executor.domain.attempt import Attempt, charge_request
from support.broker import broker_probe
from support.payments import recovery_payment, stripe_account
from support.stack import Isolation

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("running_executor")]

CardOnFile = Callable[[str], tuple[str, str]]
Ledger = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def db(isolation: Isolation) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(isolation.mongodb_url, tz_aware=True)
    yield client[isolation.mongodb_database]
    client.close()


def planned(customer: str, payment_method: str) -> Envelope[ExecuteRetry]:
    """The scheduler's EXECUTE for attempt 1 of a new payment charged on that customer's card."""
    payment = recovery_payment(tokens=(payment_method,), customer=customer)
    command = ExecuteRetry(
        payment=payment,
        attempt_id=new_attempt_id("12345"),
        attempt_number=1,
        token=payment.tokens[0],
        planned_at=datetime.now(UTC),
        total_retry_count=2,
    )
    return envelope_for(
        MessageType.EXECUTE_RETRY,
        command,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
    )


async def test_an_idempotency_error_goes_to_psync_which_settles_it_on_the_one_charge(
    isolation: Isolation,
    stripe_server: Any,
    http_client: httpx.AsyncClient,
    api_key: str,
    card_on_file: CardOnFile,
    sandbox_ledger: Ledger,
    db: Database[dict[str, Any]],
) -> None:
    customer, pm = card_on_file("pm_card_visa")
    command = planned(customer, pm)
    claimed_parameters = charge_request(command.payload)
    # Stripe already holds a charge under the attempt's key, made with other parameters (the invoice's amount
    # before it was revised; the answer never came back): the executor's call gets 400 idempotency_error.
    earlier = replace(claimed_parameters, amount=2000)
    first = await StripeConnector(stripe_server.url, api_key, http_client).charge(earlier)

    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(stripe_account(api_key=api_key))
        await broker.publish(command)
        succeeded = await broker.take_json("dispatcher.payment-succeeded", timeout=30)

    assert succeeded["causation_id"] == command.message_id
    assert succeeded["payload"]["connector_transaction_id"] == first.connector_transaction_id
    [charge] = sandbox_ledger()  # no second charge: PSYNC found the first one
    assert (charge["payment_intent"], charge["amount"]) == (first.connector_transaction_id, 2000)
    attempt = db[ATTEMPTS].find_one({})
    assert attempt is not None
    assert (attempt["status"], attempt["resumptions"]) == ("succeeded", 1)  # settled by a PSYNC
    assert attempt["charge"] == claimed_parameters.parameters()


async def test_a_take_over_sends_the_parameters_recorded_at_the_claim_not_a_later_snapshots(
    isolation: Isolation, api_key: str, card_on_file: CardOnFile, sandbox_ledger: Ledger, db: Database[dict[str, Any]]
) -> None:
    customer, pm = card_on_file("pm_card_visa")
    command = planned(customer, pm)
    # An executor claimed the attempt five minutes ago and died before its call reached Stripe.
    crashed = Attempt.claim(command.payload, command.message_id, "executor-crashed", datetime.now(UTC))
    db[ATTEMPTS].insert_one(claim_document(replace(crashed, started_at=crashed.started_at - timedelta(minutes=5))))
    # A later copy of the command carries the payment snapshot as it is now.
    payment = command.payload.payment.model_copy(update={"amount": 3000, "merchant_reference_id": "invoice_1_v2"})
    later_copy = command.model_copy(
        update={"message_id": "a-later-copy", "payload": command.payload.model_copy(update={"payment": payment})}
    )

    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(stripe_account(api_key=api_key))
        await broker.publish(later_copy)
        await broker.take_json("dispatcher.payment-succeeded", timeout=30)

    [charge] = sandbox_ledger()
    assert (charge["amount"], charge["metadata"]["merchant_reference_id"]) == (2250, "invoice_1")
    assert charge["idempotency_key"] == crashed.idempotency_key
    attempt = db[ATTEMPTS].find_one({})
    assert attempt is not None and (attempt["status"], attempt["resumptions"]) == ("succeeded", 1)
