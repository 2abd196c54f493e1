"""The executor against real RabbitMQ, the MongoDB-wire server and the Stripe sandbox over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.ids import new_attempt_id
from recovery_contracts.messages import ExecuteRetry, RecoveryUpdated
from recovery_contracts.payments import IntentStatus
from recovery_executor.app import build_service
from recovery_executor.settings import ExecutorSettings
from recovery_sandbox.stripe import create_app as stripe_app
from recovery_scheduler.app import build_service as build_scheduler
from recovery_scheduler.settings import SchedulerSettings
from support.broker import broker_probe, eventually
from support.payments import recovery_payment, scheduled, stripe_account
from support.services import settings_for
from support.stack import Isolation

SECRET = "sk_test_integration"


@pytest.fixture
def stripe(serve: Any) -> Any:
    return serve(stripe_app())


def customer_with(stripe: Any, card: str) -> tuple[str, str]:
    auth = {"Authorization": f"Bearer {SECRET}"}
    customer = httpx.post(f"{stripe.url}/v1/customers", data={"description": "test"}, headers=auth).json()["id"]
    pm = httpx.post(f"{stripe.url}/v1/payment_methods/{card}/attach", data={"customer": customer}, headers=auth).json()[
        "id"
    ]
    return customer, pm


def execute(card_token: str, customer: str) -> Envelope[ExecuteRetry]:
    payment = recovery_payment(tokens=(card_token,), customer=customer)
    return Envelope[ExecuteRetry](
        type=MessageType.EXECUTE_RETRY,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        payload=ExecuteRetry(
            payment=payment,
            attempt_id=new_attempt_id("12345"),
            attempt_number=1,
            token=payment.tokens[0],
            planned_at=datetime.now(UTC),
            total_retry_count=2,
        ),
    )


def ledger(stripe: Any, customer: str) -> list[dict[str, Any]]:
    charges = httpx.get(f"{stripe.url}/_sandbox/ledger").json()
    charges = charges.get("data", charges) if isinstance(charges, dict) else charges
    return [c for c in charges if c.get("customer") == customer]


async def start_executors(serve: Any, isolation: Isolation, stripe: Any, count: int) -> None:
    for n in range(count):
        serve(
            build_service(
                settings_for(
                    ExecutorSettings, isolation, stripe_api_base=stripe.url, service_instance_id=f"executor-{n}"
                )
            )
        )


async def test_a_planned_attempt_charges_once_and_reports_the_payment_object(
    serve: Any, isolation: Isolation, stripe: Any, db: Any
) -> None:
    await start_executors(serve, isolation, stripe, 1)
    customer, pm = customer_with(stripe, "pm_card_visa")
    command = execute(pm, customer)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(stripe_account(api_key=SECRET))
        await broker.publish(command)
        await broker.publish(command)  # redelivered
        await broker.publish(command.model_copy(update={"message_id": "another-copy-of-the-command"}))
        succeeded = await broker.take_json("dispatcher.payment-succeeded")
        payment = succeeded["payload"]["payment"]
        assert payment["status"] == "succeeded"
        assert payment["connector_transaction_id"].startswith("pi_")
        assert payment["connector_token_details"]["token"] == pm
        assert payment["feature_metadata"]["revenue_recovery"]["total_retry_count"] == 2
        assert payment["amount"]["amount_captured"] == 2250
        await broker.take_json("scheduler.payment-succeeded")
        # Every copy is handled; none charges again, and each republishes the one outcome (same message id).
        extra = [await broker.take_json("dispatcher.payment-succeeded", timeout=3) for _ in range(2)]
        assert {m["message_id"] for m in extra} == {succeeded["message_id"]}
    charges = ledger(stripe, customer)
    assert len(charges) == 1 and charges[0]["status"] == "succeeded"
    assert db.attempts.count_documents({}) == 1


async def test_a_decline_is_reported_with_its_codes(serve: Any, isolation: Isolation, stripe: Any) -> None:
    await start_executors(serve, isolation, stripe, 1)
    customer, pm = customer_with(stripe, "pm_card_chargeDeclinedInsufficientFunds")
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(stripe_account(api_key=SECRET))
        await broker.publish(execute(pm, customer))
        failed = await broker.take_json("scheduler.attempt-failed")
    assert failed["payload"]["outcome"] == "declined"
    assert failed["payload"]["decline_code"] == "insufficient_funds"
    assert failed["payload"]["error_code"] == "card_declined"
    assert len(ledger(stripe, customer)) == 1


async def test_two_executors_racing_on_copies_of_one_command_charge_once(
    serve: Any, isolation: Isolation, stripe: Any
) -> None:
    await start_executors(serve, isolation, stripe, 2)
    customer, pm = customer_with(stripe, "pm_card_visa")
    command = execute(pm, customer)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(stripe_account(api_key=SECRET))
        for n in range(6):
            await broker.publish(command.model_copy(update={"message_id": f"copy-{n}"}))
        await broker.take_json("dispatcher.payment-succeeded")
    assert len(ledger(stripe, customer)) == 1


async def test_a_charge_that_times_out_is_synced_not_charged_again(
    serve: Any, isolation: Isolation, stripe: Any, db: Any
) -> None:
    serve(
        build_service(
            settings_for(ExecutorSettings, isolation, stripe_api_base=stripe.url, connector_timeout_seconds=1.0)
        )
    )
    # The PSYNC that settles the unknown outcome comes back on a durable timer: the scheduler keeps timers.
    serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))
    customer, pm = customer_with(stripe, "pm_card_visa")
    fault = {"payment_method": pm, "mode": "timeout_after_charge", "seconds": 3, "times": 1}
    assert httpx.post(f"{stripe.url}/_sandbox/faults", json=fault).status_code < 300
    command = execute(pm, customer)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(stripe_account(api_key=SECRET))
        await broker.publish(command)
        succeeded = await broker.take_json("dispatcher.payment-succeeded", timeout=30)
    assert succeeded["payload"]["payment"]["status"] == "succeeded"
    charges = ledger(stripe, customer)
    assert len(charges) == 1
    attempt = db.attempts.find_one({})
    assert attempt["status"] == "succeeded" and attempt["resumptions"] == 1
    assert succeeded["payload"]["connector_transaction_id"] == charges[0]["payment_intent"]


async def test_an_outcome_left_in_its_attempt_record_is_relayed(
    serve: Any, isolation: Isolation, stripe: Any, db: Any
) -> None:
    """A settled attempt carries its outcome message (embedded outbox: one write, no transaction); a crash before
    the publish leaves it there, and the relay publishes it and removes it from the record."""
    await start_executors(serve, isolation, stripe, 1)
    customer, pm = customer_with(stripe, "pm_card_visa")
    command = execute(pm, customer)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(stripe_account(api_key=SECRET))
        await broker.publish(command)
        succeeded = await broker.take_json("dispatcher.payment-succeeded")
        await broker.take_json("scheduler.payment-succeeded")
        key = f"{command.payload.payment.payment_id}:1"
        await eventually(lambda: db.attempts.find_one({"_id": key}).get("outbox") == [])
        a_minute_ago = datetime.now(UTC) - timedelta(minutes=1)
        stranded = {**db.attempts.find_one({"_id": key})["emitted"], "created_at": a_minute_ago}
        db.attempts.update_one({"_id": key}, {"$push": {"outbox": stranded}})
        relayed = await broker.take_json("dispatcher.payment-succeeded", timeout=15)
        assert relayed["message_id"] == succeeded["message_id"]
        await eventually(lambda: db.attempts.find_one({"_id": key}).get("outbox") == [])
    assert len(ledger(stripe, customer)) == 1


async def test_a_charge_refused_on_an_executor_behind_the_scheduler_is_planned_again_and_charged_once_it_caught_up(
    serve: Any, isolation: Isolation, stripe: Any, db: Any
) -> None:
    """The executor's view of the intent says a payment is in progress (here sent to its queue alone: as when it is
    behind on `recovery.updated` after the billing system reported a failure again), so it refuses the scheduler's
    attempt. The refusal is told: the scheduler plans again after a wait (twice as long each time), and once the
    executor has caught up the same attempt number is charged, once."""
    await start_executors(serve, isolation, stripe, 1)
    serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))
    customer, pm = customer_with(stripe, "pm_card_visa")
    payment = recovery_payment(tokens=(pm,), customer=customer)

    def status(intent_status: IntentStatus, version: int) -> Envelope[RecoveryUpdated]:
        update = RecoveryUpdated(payment=payment, action="x", intent_status=intent_status, version=version)
        return envelope_for(MessageType.RECOVERY_UPDATED, update, correlation_id=payment.payment_id)

    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(stripe_account(api_key=SECRET))
        await broker.publish_to_queue("executor.recovery-updated", status(IntentStatus.PROCESSING, 2))
        await eventually(lambda: db.payment_states.find_one({"_id": payment.payment_id}))
        await broker.publish(scheduled(payment))

        def refusals() -> list[dict[str, Any]]:
            recovery = db.recoveries.find_one({"_id": payment.payment_id}) or {"history": []}
            return [n for n in recovery["history"] if n["what"] == "attempt_refused"]

        await eventually(lambda: len(refusals()) >= 2, timeout=30)
        await broker.publish_to_queue("executor.recovery-updated", status(IntentStatus.FAILED, 3))
        await broker.take_json("dispatcher.payment-succeeded", timeout=30)

    recovery = await eventually(lambda: db.recoveries.find_one({"_id": payment.payment_id, "status": "succeeded"}))
    assert [a["number"] for a in recovery["attempts"]] == [1]
    assert all("a payment in progress" in n["reason"] for n in refusals())
    waits = [n["reason"] for n in recovery["history"] if n["what"] == "replan_planned"]
    assert waits[:2] == [
        "attempt 1 was refused by the executor: asking again in 10 minutes",
        "attempt 1 was refused by the executor: asking again in 20 minutes",
    ]
    attempt = db.attempts.find_one({"payment_id": payment.payment_id})
    assert attempt["status"] == "succeeded" and attempt["attempt_id"] == recovery["attempts"][0]["attempt_id"]
    assert len(ledger(stripe, customer)) == 1
