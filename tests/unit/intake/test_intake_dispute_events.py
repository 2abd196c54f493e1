"""A dispute on a recovered payment (pure): Stripe's events read by the dispute's status, whose charge it is, and
what the intent makes of them (kept once where it stands, each status emitted once, in any order of arrival:
`payment.dispute-lost` for a loss, `payment.dispute-updated` for the others)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.disputes import DisputeStage, DisputeStatus
from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import PaymentDisputeLost, PaymentDisputeUpdated
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import AttemptSummary, build_payment_object
from recovery_intake.domain.deliveries import EventRefused, RefusalKind
from recovery_intake.domain.intent import Intent
from recovery_intake.domain.payment_disputes import (
    ChargedAttempt,
    DisputeEvent,
    DisputeReport,
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


STRIPE_STATUS = {
    (DisputeStage.PRE_DISPUTE, DisputeStatus.DISPUTE_OPENED): "warning_needs_response",
    (DisputeStage.PRE_DISPUTE, DisputeStatus.DISPUTE_CHALLENGED): "warning_under_review",
    (DisputeStage.PRE_DISPUTE, DisputeStatus.DISPUTE_CANCELLED): "warning_closed",
    (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_OPENED): "needs_response",
    (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_CHALLENGED): "under_review",
    (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_WON): "won",
    (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_LOST): "lost",
}


def told(
    status: DisputeStatus = DisputeStatus.DISPUTE_LOST,
    stage: DisputeStage = DisputeStage.DISPUTE,
    dispute_id: str = "dp_1",
    amount: int = 2250,
    at: timedelta = timedelta(0),
) -> DisputeReport:
    return DisputeReport(
        connector="stripe",
        connector_dispute_id=dispute_id,
        connector_transaction_id="pi_1",
        amount=amount,
        currency="USD",
        reason="fraudulent",
        connector_status=STRIPE_STATUS[stage, status],
        stage=stage,
        status=status,
        connector_created_at=T0 + timedelta(days=30),
        told_at=LOST_AT + at,
    )


def lost(dispute_id: str = "dp_1", amount: int = 2250) -> DisputeReport:
    return told(dispute_id=dispute_id, amount=amount)


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
    assert event.dispute == lost()


@pytest.mark.parametrize(("stage", "status"), list(STRIPE_STATUS))
@pytest.mark.parametrize("event_type", ["charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"])
def test_each_stripe_status_reads_as_hyperswitchs_stage_and_status_whatever_event_carries_it(
    event_type: str, stage: DisputeStage, status: DisputeStatus
) -> None:
    event = read_dispute(closed_event(status=STRIPE_STATUS[stage, status], event_type=event_type))

    assert event.dispute == told(status, stage)


@pytest.mark.parametrize(
    "payload",
    [
        closed_event(status="prevented"),
        closed_event(status=None),
        closed_event(event_type="charge.dispute.funds_withdrawn"),
        closed_event(payment_intent=None),  # a charge made without a PaymentIntent: not one of ours
        json.dumps({"id": "evt_2", "type": "charge.succeeded", "data": {"object": {"object": "charge"}}}).encode(),
    ],
    ids=["unknown_status", "no_status", "another_type", "no_payment_intent", "charge_event"],
)
def test_every_other_event_and_a_status_not_known_are_ignored(payload: bytes) -> None:
    assert read_dispute(payload).dispute is None


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
def test_a_dispute_without_what_it_needs_or_an_unreadable_body_is_refused(payload: bytes) -> None:
    with pytest.raises(EventRefused) as refused:
        read_dispute(payload)
    assert refused.value.kind is RefusalKind.INVALID


def test_an_event_time_past_what_a_datetime_holds_is_refused_not_a_crash() -> None:
    event = json.loads(closed_event())
    with pytest.raises(EventRefused, match="created is not a Unix time"):
        read_dispute(json.dumps({**event, "created": 10**20}).encode())
    dispute = {**event["data"]["object"], "created": 10**20}  # the dispute's own time: none, the rest stands
    read = read_dispute(json.dumps({**event, "data": {"object": dispute}}).encode()).dispute
    assert read is not None and read.connector_created_at is None


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

    change = intent.dispute_told(lost(), attempt_id="12345_att_1", merchant_connector_id="mca_payment_1", now=LATER)
    again = change.intent.dispute_told(lost(), attempt_id="12345_att_1", merchant_connector_id="x", now=LATER)

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
    kept = [(d.dispute_id, d.amount, d.status, d.told_at) for d in change.intent.disputes]
    assert kept == [(dispute_id, 2250, DisputeStatus.DISPUTE_LOST, LOST_AT)]
    assert change.intent.status is IntentStatus.SUCCEEDED and change.intent.modified_at == LATER
    assert again.messages == () and again.intent == change.intent


def test_a_second_dispute_on_the_same_payment_is_its_own() -> None:
    first = collected().dispute_told(lost(), attempt_id="a", merchant_connector_id="m", now=LATER).intent

    second = first.dispute_told(lost("dp_2", 500), attempt_id="a", merchant_connector_id="m", now=LATER)

    assert len(second.messages) == 1 and [d.connector_dispute_id for d in second.intent.disputes] == ["dp_1", "dp_2"]


def test_an_intent_stored_with_its_disputes_reads_back_the_same() -> None:
    from recovery_intake.adapters.intents import _fields, intent_of

    intent = collected().dispute_told(lost(), attempt_id="a", merchant_connector_id="m", now=LATER).intent

    assert intent_of({"_id": intent.payment_id, **_fields(intent)}) == intent
    assert intent_of({"_id": intent.payment_id, **_fields(collected())}).disputes == ()


def test_an_intent_stored_before_disputes_had_a_status_reads_them_as_lost() -> None:
    from recovery_intake.adapters.intents import _fields, intent_of

    intent = collected().dispute_told(lost(), attempt_id="a", merchant_connector_id="m", now=LATER).intent
    fields = _fields(intent)
    fields["disputes"] = [
        {k: v for k, v in d.items() if k not in ("stage", "status", "told_at", "emitted")} | {"lost_at": LOST_AT}
        for d in fields["disputes"]
    ]

    assert intent_of({"_id": intent.payment_id, **fields}) == intent


def _told_in_order(*reports: DisputeReport) -> tuple[Intent, list[tuple[MessageType, str, str]]]:
    """The intent after each report in turn, and what each emitted: (type, message id, dispute status)."""
    intent, emitted = collected(), []
    for report in reports:
        change = intent.dispute_told(report, attempt_id="a", merchant_connector_id="m", now=LATER)
        intent = change.intent
        emitted += [(m.type, m.message_id, m.payload.dispute.dispute_status.value) for m in change.messages]
    return intent, emitted


def test_a_dispute_opened_challenged_and_won_emits_each_status_once_and_keeps_the_last() -> None:
    opened, challenged = told(DisputeStatus.DISPUTE_OPENED), told(DisputeStatus.DISPUTE_CHALLENGED, at=timedelta(1))
    won = told(DisputeStatus.DISPUTE_WON, at=timedelta(2))

    intent, emitted = _told_in_order(opened, opened, challenged, won, challenged, won)

    ours = dispute_id_for("merchant_1", "stripe", "dp_1")
    updated = MessageType.PAYMENT_DISPUTE_UPDATED
    assert emitted == [
        (updated, f"{ours}:dispute_opened", "dispute_opened"),
        (updated, f"{ours}:dispute_challenged", "dispute_challenged"),
        (updated, f"{ours}:dispute_won", "dispute_won"),
    ]
    (kept,) = intent.disputes
    assert (kept.stage, kept.status, kept.told_at) == (
        DisputeStage.DISPUTE,
        DisputeStatus.DISPUTE_WON,
        LOST_AT + timedelta(2),
    )


def test_a_won_dispute_is_not_lost_afterwards_and_a_late_opening_changes_nothing() -> None:
    won, lost_later = told(DisputeStatus.DISPUTE_WON), told(at=timedelta(1))

    _, emitted = _told_in_order(won, told(DisputeStatus.DISPUTE_OPENED), lost_later)

    assert [status for _, _, status in emitted] == ["dispute_won"]


def test_a_loss_after_the_opening_is_emitted_as_payment_dispute_lost_with_the_disputes_id() -> None:
    _, emitted = _told_in_order(told(DisputeStatus.DISPUTE_OPENED), lost(), told(DisputeStatus.DISPUTE_CHALLENGED))

    ours = dispute_id_for("merchant_1", "stripe", "dp_1")
    assert emitted[1] == (MessageType.PAYMENT_DISPUTE_LOST, ours, "dispute_lost") and len(emitted) == 2


def test_an_inquiry_escalated_to_a_dispute_is_kept_and_emits_only_what_is_new() -> None:
    inquiry = told(DisputeStatus.DISPUTE_OPENED, DisputeStage.PRE_DISPUTE)
    reviewed = told(DisputeStatus.DISPUTE_CHALLENGED, DisputeStage.PRE_DISPUTE)
    escalated = told(DisputeStatus.DISPUTE_OPENED)

    intent, emitted = _told_in_order(inquiry, reviewed, escalated, told(DisputeStatus.DISPUTE_CHALLENGED), inquiry)

    # Hyperswitch's webhooks are one per dispute and status: the escalation's opening and review were told already.
    assert [status for _, _, status in emitted] == ["dispute_opened", "dispute_challenged"]
    (kept,) = intent.disputes
    assert (kept.stage, kept.status) == (DisputeStage.DISPUTE, DisputeStatus.DISPUTE_CHALLENGED)
    assert kept.emitted == (DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_CHALLENGED)
    _, then_lost = _told_in_order(inquiry, escalated, lost())
    assert [status for _, _, status in then_lost] == ["dispute_opened", "dispute_lost"]


def test_an_updated_dispute_message_carries_the_dispute_and_when_the_connector_told_of_it() -> None:
    change = collected().dispute_told(
        told(DisputeStatus.DISPUTE_OPENED), attempt_id="12345_att_1", merchant_connector_id="mca_1", now=LATER
    )

    (message,) = change.messages
    payload = message.payload
    assert isinstance(payload, PaymentDisputeUpdated)
    assert (payload.payment_id, payload.connector_transaction_id, payload.updated_at) == (
        "12345_pay_1",
        "pi_1",
        LOST_AT,
    )
    dispute = payload.dispute
    assert (dispute.dispute_stage, dispute.dispute_status, dispute.connector_status) == (
        DisputeStage.DISPUTE,
        DisputeStatus.DISPUTE_OPENED,
        "needs_response",
    )
    assert (dispute.amount, dispute.attempt_id, dispute.merchant_connector_id) == ("2250", "12345_att_1", "mca_1")
    assert (message.merchant_id, message.profile_id, message.correlation_id) == ("merchant_1", "pro_1", "12345_pay_1")


def test_stripes_evidence_deadline_is_hyperswitchs_challenge_required_by_and_kept() -> None:
    due = LOST_AT + timedelta(days=7)
    event = read_dispute(
        closed_event(
            status="needs_response",
            event_type="charge.dispute.created",
            evidence_details={"due_by": int(due.timestamp()), "has_evidence": False},
        )
    )
    assert event.dispute is not None and event.dispute.challenge_required_by == due

    change = collected().dispute_told(event.dispute, attempt_id="a", merchant_connector_id="m", now=LATER)

    (message,) = change.messages
    assert message.payload.dispute.challenge_required_by == due
    assert change.intent.disputes[0].challenge_required_by == due
    from recovery_intake.adapters.intents import _fields, intent_of

    assert intent_of({"_id": change.intent.payment_id, **_fields(change.intent)}) == change.intent
    unreadable = closed_event(evidence_details={"due_by": "soon"})
    assert (
        read_dispute(unreadable).dispute is not None and read_dispute(unreadable).dispute.challenge_required_by is None
    )


def test_two_disputes_keep_the_order_they_were_first_told_of_as_each_moves_on() -> None:
    first, second = told(DisputeStatus.DISPUTE_OPENED), told(DisputeStatus.DISPUTE_OPENED, dispute_id="dp_2")

    intent, _ = _told_in_order(first, second, told(DisputeStatus.DISPUTE_WON, at=timedelta(1)))

    assert [(d.connector_dispute_id, d.status) for d in intent.disputes] == [
        ("dp_1", DisputeStatus.DISPUTE_WON),
        ("dp_2", DisputeStatus.DISPUTE_OPENED),
    ]
