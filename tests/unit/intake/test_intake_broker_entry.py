"""Intake's broker entry (`recovery.requested`) and its outcome projections (`payment.succeeded`,
`payment.failed`), through the real consumer pipeline on FastStream's in-memory broker and in-memory adapters."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from faststream.rabbit import TestRabbitBroker

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import PaymentFailed, PaymentSucceeded, RecoveryUpdated
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import build_payment_object
from recovery_intake.domain.intent import Intent
from recovery_runtime.testing import publish

from .fakes import MERCHANT, Intake, intake
from .recovery_requests import REFERENCE, recovery_body, requested, with_token

REQUESTED = "intake.recovery-requested"


@pytest.fixture
def svc() -> Intake:
    return intake()


async def test_a_new_invoice_is_stored_and_its_recovery_scheduled(svc: Intake) -> None:
    message = requested()
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, REQUESTED, message)

    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.status is IntentStatus.FAILED and intent.scheduled
    assert intent.payment_id.startswith("12345_pay_")
    [scheduled] = svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)
    assert scheduled.correlation_id == intent.payment_id and scheduled.causation_id == message.message_id
    assert scheduled.payload.payment.tokens[0].token == "pm_first"
    assert svc.intents.applied[intent.payment_id] == [f"{REQUESTED}:{message.message_id}"]
    assert svc.publisher.dead_letters == []


async def test_the_same_message_twice_has_one_effect(svc: Intake) -> None:
    message = requested()
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, REQUESTED, message)
        await publish(broker, REQUESTED, message)
        # A copy of a later request for the same invoice, too (recorded in the inbox, not in the intent).
        again = requested(with_token("pm_second", "1831985"))
        await publish(broker, REQUESTED, again)
        await publish(broker, REQUESTED, again)

    assert len(svc.intents.intents) == 1
    assert len(svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)) == 1
    assert len(svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)) == 1
    assert svc.publisher.dead_letters == []


async def test_the_same_invoice_requested_again_with_a_change_is_an_update(svc: Intake) -> None:
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, REQUESTED, requested())
        # Sent again unchanged: recorded, nothing to tell.
        await publish(broker, REQUESTED, requested())
        later = requested(with_token("pm_second", "1831985"))
        await publish(broker, REQUESTED, later)

    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None
    [updated] = svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)
    payload: RecoveryUpdated = updated.payload
    assert (payload.version, payload.tokens_added, payload.intent_status) == (1, ("pm_second",), IntentStatus.FAILED)
    assert [t.token for t in payload.payment.tokens] == ["pm_first", "pm_second"]
    # A failure the billing system had not reported before is one more of its retries.
    assert payload.payment.billing_retry_count == 2
    assert updated.correlation_id == intent.payment_id and updated.causation_id == later.message_id
    assert [r.action for r in intent.requests] == [RecoveryAction.SCHEDULE_FAILED_PAYMENT] * 2
    assert intent.billing_transactions == ("1831984", "1831985")


async def test_a_cancellation_tells_the_scheduler_and_later_requests_do_not_reopen_the_invoice(svc: Intake) -> None:
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, REQUESTED, requested())
        await publish(broker, REQUESTED, requested(recovery_body(action="cancel_invoice")))
        await publish(broker, REQUESTED, requested(with_token("pm_second", "1831985")))

    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.status is IntentStatus.CANCELLED
    [updated] = svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)
    assert (updated.payload.action, updated.payload.intent_status) == ("cancel_invoice", IntentStatus.CANCELLED)
    assert len(intent.requests) == 2 and [t.token for t in intent.snapshot.tokens] == ["pm_first"]


async def test_an_invoice_stored_by_a_concurrent_request_is_updated_not_duplicated(svc: Intake) -> None:
    """Another instance stores the invoice's intent between this one's check and insert: the insert loses to the
    unique invoice rule, and the request is folded into the winner's intent instead."""
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, REQUESTED, requested())
        first = svc.intents.of_invoice(MERCHANT, REFERENCE)
        assert first is not None
        other = replace_payment_id(first, f"{first.payment_id}x")
        svc.intents.intents.clear()
        svc.intents.before_next_add = lambda: svc.intents.intents.update({other.payment_id: other})
        svc.intents.applied[other.payment_id] = []
        message = requested(with_token("pm_second", "1831985"))
        await publish(broker, REQUESTED, message)

    assert list(svc.intents.intents) == [other.payment_id]
    [updated] = svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)
    assert updated.payload.payment.payment_id == other.payment_id
    assert f"{REQUESTED}:{message.message_id}" in svc.unit_of_work.inbox
    assert svc.publisher.dead_letters == []


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"{not json", "invalid message"),
        (requested(merchant_id=None), "needs merchant_id and profile_id"),
        (requested(profile_id="pro_unknown"), "profile pro_unknown of merchant merchant_1 not found"),
        (requested(recovery_body(billing_merchant_connector_id="mca_unknown")), "'mca_unknown'"),
        (requested(recovery_body(attempt_status="charged")), "needs a failed attempt_status"),
        (requested(recovery_body(action="invalid_action")), "invalid_action cannot be applied"),
        # A time with no UTC time in the calendar (MongoDB and the message's own format both hold UTC).
        (
            requested().model_dump_json().replace('"2024-05-29T08:10:58.000Z"', '"0001-01-01T00:00:00+01:00"').encode(),
            "0001-01-01T00:00:00+01:00 is outside the calendar once in UTC",
        ),
    ],
    ids=[
        "not-json",
        "no-merchant",
        "unknown-profile",
        "unknown-account",
        "not-failed",
        "invalid-action",
        "no-utc-time",
    ],
)
async def test_a_message_that_cannot_apply_is_dead_lettered_with_the_reason(
    svc: Intake, message: Envelope[object] | bytes, reason: str
) -> None:
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, REQUESTED, message)

    [letter] = svc.publisher.dead_letters
    assert letter.queue == REQUESTED and reason in letter.reason
    assert svc.intents.intents == {} and svc.publisher.published == []


async def test_a_payment_outcome_applies_once_and_a_success_stays(svc: Intake) -> None:
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, REQUESTED, requested())
        intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
        assert intent is not None
        succeeded = outcome(intent, IntentStatus.SUCCEEDED)
        await publish(broker, "intake.payment-succeeded", succeeded)
        await publish(broker, "intake.payment-succeeded", succeeded)
        # A late failure never overwrites the success.
        await publish(broker, "intake.payment-failed", outcome(intent, IntentStatus.FAILED))
        # An outcome for a payment intake does not know is acknowledged without effect.
        unknown = replace_payment_id(intent, "12345_pay_unknown")
        await publish(broker, "intake.payment-failed", outcome(unknown, IntentStatus.FAILED))

    stored = svc.intents.intents[intent.payment_id]
    assert stored.status is IntentStatus.SUCCEEDED
    assert stored.as_payment_object()["status"] == "succeeded"
    # Each outcome recorded once, the late failure without effect.
    assert [key.split(":")[0] for key in svc.intents.applied[intent.payment_id]] == [
        REQUESTED,
        "intake.payment-succeeded",
        "intake.payment-failed",
    ]
    assert svc.publisher.dead_letters == []


def replace_payment_id(intent: Intent, payment_id: str) -> Intent:
    return replace(intent, snapshot=intent.snapshot.model_copy(update={"payment_id": payment_id}))


def outcome(intent: Intent, status: IntentStatus) -> Envelope[PaymentSucceeded] | Envelope[PaymentFailed]:
    payment = build_payment_object(
        intent.snapshot, status=status, modified_at=intent.created_at + timedelta(minutes=5), attempt=None
    )
    if status is IntentStatus.SUCCEEDED:
        return envelope_for(
            MessageType.PAYMENT_SUCCEEDED,
            PaymentSucceeded(
                payment_id=intent.payment_id,
                attempt_id="12345_att_1",
                attempt_number=1,
                token="pm_first",
                connector_transaction_id="pi_1",
                succeeded_at=intent.created_at,
                payment=payment,
            ),
            correlation_id=intent.payment_id,
            merchant_id=intent.merchant_id,
        )
    return envelope_for(
        MessageType.PAYMENT_FAILED,
        PaymentFailed(
            payment_id=intent.payment_id,
            reason="retries exhausted",
            business_status="failed",
            attempt_id="12345_att_2",
            payment=payment,
        ),
        correlation_id=intent.payment_id,
        merchant_id=intent.merchant_id,
    )
