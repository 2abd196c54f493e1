"""A dispute lost on a recovered payment (pure): Stripe's event read as one, whose charge it is, and what the
intent makes of it (kept once, `payment.dispute-lost` emitted once)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import PaymentDisputeLost
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import AttemptSummary, build_payment_object
from recovery_intake.domain.deliveries import EventRefused, RefusalKind
from recovery_intake.domain.intent import Intent
from recovery_intake.domain.payment_disputes import (
    ChargedAttempt,
    DisputeEvent,
    LostDispute,
    charged_attempt,
    dispute_event,
    dispute_id_for,
)
from recovery_intake.domain.stripe_events import read_stripe_event

from .test_intake_intent import T0, snapshot

LOST_AT = T0 + timedelta(days=40)
LATER = LOST_AT + timedelta(seconds=3)


def closed_event(
    status: str = "lost", event_type: str = "charge.dispute.closed", event_id: str = "evt_1", **dispute: Any
) -> bytes:
    obj = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 2250,
        "currency": "usd",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "reason": "fraudulent",
        "status": status,
        "created": int((T0 + timedelta(days=30)).timestamp()),
        **dispute,
    }
    event = {"id": event_id, "object": "event", "type": event_type, "created": int(LOST_AT.timestamp())}
    return json.dumps({**event, "data": {"object": obj}}).encode()


def read_dispute(payload: bytes) -> DisputeEvent:
    return dispute_event(read_stripe_event(payload))


def lost(dispute_id: str = "dp_1", amount: int = 2250) -> LostDispute:
    return LostDispute(
        connector="stripe",
        connector_dispute_id=dispute_id,
        connector_transaction_id="pi_1",
        amount=amount,
        currency="USD",
        reason="fraudulent",
        connector_status="lost",
        connector_created_at=T0 + timedelta(days=30),
        lost_at=LOST_AT,
    )


def collected(intent_id: str = "pi_1", status: IntentStatus = IntentStatus.SUCCEEDED) -> Intent:
    """The invoice's intent after the recovery collected it with PaymentIntent `intent_id` (payment.succeeded)."""
    payment = snapshot()
    failed = Intent.requested(payment, RecoveryAction.SCHEDULE_FAILED_PAYMENT, T0, cause=None).intent
    attempt = AttemptSummary(total_retry_count=1, token="pm_first", connector_transaction_id=intent_id)
    outcome = build_payment_object(payment, status=status, modified_at=T0, attempt=attempt)
    changed = failed.with_outcome(status, outcome.model_dump(mode="json"), T0 + timedelta(hours=1))
    assert changed is not None
    return changed


def test_a_closed_lost_dispute_is_read_with_what_the_refund_and_the_webhook_need() -> None:
    event = read_dispute(closed_event())

    assert (event.event_id, event.event_type) == ("evt_1", "charge.dispute.closed")
    assert event.lost == lost()


@pytest.mark.parametrize(
    "payload",
    [
        closed_event(status="won"),
        closed_event(status="warning_closed"),
        closed_event(status="needs_response", event_type="charge.dispute.created"),
        closed_event(event_type="charge.dispute.funds_withdrawn"),
        closed_event(payment_intent=None),  # a charge made without a PaymentIntent: not one of ours
        json.dumps({"id": "evt_2", "type": "charge.succeeded", "data": {"object": {"object": "charge"}}}).encode(),
    ],
    ids=["won", "warning_closed", "opened", "another_type", "no_payment_intent", "charge_event"],
)
def test_every_other_event_and_a_dispute_not_lost_are_ignored(payload: bytes) -> None:
    assert read_dispute(payload).lost is None


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        json.dumps({"id": "evt_1", "type": "charge.dispute.closed"}).encode(),
        closed_event(amount=0),
        closed_event(amount="2250"),
        closed_event(currency=None),
        closed_event(id=None),
        closed_event(object="charge"),
    ],
    ids=["not_json", "no_object", "zero_amount", "text_amount", "no_currency", "no_id", "not_a_dispute"],
)
def test_a_lost_dispute_without_what_it_needs_or_an_unreadable_body_is_refused(payload: bytes) -> None:
    with pytest.raises(EventRefused) as refused:
        read_dispute(payload)
    assert refused.value.kind is RefusalKind.INVALID


def test_an_event_time_past_what_a_datetime_holds_is_refused_not_a_crash() -> None:
    event = json.loads(closed_event())
    with pytest.raises(EventRefused, match="created is not a Unix time"):
        read_dispute(json.dumps({**event, "created": 10**20}).encode())
    dispute = {**event["data"]["object"], "created": 10**20}  # the dispute's own time: none, the rest stands
    lost = read_dispute(json.dumps({**event, "data": {"object": dispute}}).encode()).lost
    assert lost is not None and lost.connector_created_at is None


def test_the_dispute_id_is_the_same_for_every_delivery_and_differs_by_merchant() -> None:
    ours = dispute_id_for("merchant_1", "stripe", "dp_1")

    assert ours == lost().dispute_id("merchant_1") and ours.startswith("dsp_") and len(ours) == 36
    assert ours != dispute_id_for("merchant_2", "stripe", "dp_1") != dispute_id_for("merchant_1", "stripe", "dp_2")


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"payment_id": "p_1", "attempt_id": "att_1", "attempt_number": "2"}, ChargedAttempt("p_1", "att_1")),
        ({"payment_id": "p_1", "attempt_number": "2"}, ChargedAttempt("p_1", "p_1:2")),
        ({"payment_id": "p_1"}, None),
        ({"attempt_id": "12345_att_1"}, None),
        (None, None),
    ],
    ids=["attempt_id", "attempt_number", "payment_only", "no_payment", "no_metadata"],
)
def test_the_charged_attempt_is_read_from_the_metadata_the_executor_wrote(
    metadata: dict[str, str] | None, expected: ChargedAttempt | None
) -> None:
    assert charged_attempt({"id": "pi_1", "metadata": metadata}) == expected


def test_only_the_charge_that_collected_a_succeeded_payment_can_be_disputed_here() -> None:
    paid_elsewhere = Intent.requested(snapshot(), RecoveryAction.SUCCESS_PAYMENT_EXTERNAL, T0, cause=None).intent

    assert collected("pi_1").collected_by("pi_1")
    assert not collected("pi_1").collected_by("pi_other")
    assert not collected("pi_1", IntentStatus.FAILED).collected_by("pi_1")
    assert paid_elsewhere.status is IntentStatus.SUCCEEDED and not paid_elsewhere.collected_by("pi_1")


def test_a_lost_dispute_is_kept_and_emitted_once_with_the_dispute_object() -> None:
    intent = collected()

    change = intent.dispute_lost(lost(), attempt_id="12345_att_1", merchant_connector_id="mca_payment_1", now=LATER)
    again = change.intent.dispute_lost(lost(), attempt_id="12345_att_1", merchant_connector_id="x", now=LATER)

    (message,) = change.messages
    assert message.type is MessageType.PAYMENT_DISPUTE_LOST
    payload = message.payload
    assert isinstance(payload, PaymentDisputeLost)
    dispute_id = dispute_id_for("merchant_1", "stripe", "dp_1")
    assert (payload.payment_id, payload.connector_transaction_id, payload.amount) == ("12345_pay_1", "pi_1", 2250)
    assert payload.lost_at == LOST_AT
    assert payload.dispute.model_dump(mode="json") == {
        "dispute_id": dispute_id,
        "payment_id": "12345_pay_1",
        "attempt_id": "12345_att_1",
        "amount": "2250",
        "currency": "USD",
        "dispute_stage": "dispute",
        "dispute_status": "dispute_lost",
        "connector": "stripe",
        "connector_status": "lost",
        "connector_dispute_id": "dp_1",
        "connector_reason": "fraudulent",
        "connector_reason_code": None,
        "challenge_required_by": None,
        "connector_created_at": "2026-02-14T12:00:00.000Z",
        "connector_updated_at": "2026-02-24T12:00:00.000Z",
        "created_at": "2026-02-24T12:00:03.000Z",
        "profile_id": "pro_1",
        "merchant_connector_id": "mca_payment_1",
    }
    # One message per dispute whatever happens upstream: its id is the dispute's; it names the payment's owners.
    assert (message.message_id, message.correlation_id) == (dispute_id, "12345_pay_1")
    assert (message.merchant_id, message.profile_id) == ("merchant_1", "pro_1")
    assert [(d.dispute_id, d.amount, d.lost_at) for d in change.intent.disputes] == [(dispute_id, 2250, LOST_AT)]
    assert change.intent.status is IntentStatus.SUCCEEDED and change.intent.modified_at == LATER
    assert again.messages == () and again.intent == change.intent


def test_a_second_dispute_on_the_same_payment_is_its_own() -> None:
    first = collected().dispute_lost(lost(), attempt_id="a", merchant_connector_id="m", now=LATER).intent

    second = first.dispute_lost(lost("dp_2", 500), attempt_id="a", merchant_connector_id="m", now=LATER)

    assert len(second.messages) == 1 and [d.connector_dispute_id for d in second.intent.disputes] == ["dp_1", "dp_2"]


def test_an_intent_stored_with_its_disputes_reads_back_the_same() -> None:
    from recovery_intake.adapters.intents import _fields, intent_of

    intent = collected().dispute_lost(lost(), attempt_id="a", merchant_connector_id="m", now=LATER).intent

    assert intent_of({"_id": intent.payment_id, **_fields(intent)}) == intent
    assert intent_of({"_id": intent.payment_id, **_fields(collected())}).disputes == ()
