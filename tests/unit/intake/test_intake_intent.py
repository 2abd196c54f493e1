"""The recovery intent's transitions (pure): what each request and payment outcome makes of it, and what it emits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from recovery_contracts.api.recovery import RecoveryAction as A
from recovery_contracts.envelope import MessageType
from recovery_contracts.payments import IntentStatus as S
from recovery_contracts.recovery import PaymentToken, RecoveryPayment, RetryAlgorithm, RetrySettings
from recovery_intake.domain.intent import REQUESTS_KEPT, Intent

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=1)


def snapshot(token: str = "pm_first", transaction: str | None = "tx_1") -> RecoveryPayment:
    return RecoveryPayment(
        payment_id="12345_pay_1",
        merchant_id="merchant_1",
        profile_id="pro_1",
        merchant_reference_id="inv_1",
        amount=2250,
        currency="USD",
        created_at=T0,
        billing_connector_id="mca_billing_1",
        payment_connector_id="mca_payment_1",
        connector="stripe",
        connector_customer_id="cus_1",
        payment_method_type="card",
        payment_method_subtype="credit",
        tokens=(PaymentToken(token=token, connector_customer_id="cus_1", payment_method_type="card"),),
        failed_connector_transaction_id=transaction,
        billing_retry_count=1,
        retry=RetrySettings(algorithm=RetryAlgorithm.CASCADING),
    )


def types(messages: tuple[object, ...]) -> list[MessageType]:
    return [m.type for m in messages]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("action", "status", "scheduled"),
    [
        (A.SCHEDULE_FAILED_PAYMENT, S.FAILED, True),
        (A.CANCEL_INVOICE, S.CANCELLED, False),
        (A.SUCCESS_PAYMENT_EXTERNAL, S.SUCCEEDED, False),
        (A.PENDING_PAYMENT, S.PROCESSING, False),
        (A.NO_ACTION, S.FAILED, False),
    ],
)
def test_a_first_request_creates_the_intent_and_only_a_failure_schedules_a_recovery(
    action: A, status: S, scheduled: bool
) -> None:
    change = Intent.requested(snapshot(), action, T0, cause=None)
    assert (change.intent.status, change.intent.scheduled, change.intent.version) == (status, scheduled, 0)
    assert types(change.messages) == ([MessageType.RECOVERY_SCHEDULED] if scheduled else [])
    assert change.intent.billing_transactions == ("tx_1",)


def scheduled_intent() -> Intent:
    return Intent.requested(snapshot(), A.SCHEDULE_FAILED_PAYMENT, T0, cause=None).intent


@pytest.mark.parametrize(
    ("action", "status", "emitted"),
    [
        (A.CANCEL_INVOICE, S.CANCELLED, [MessageType.RECOVERY_UPDATED]),
        (A.SUCCESS_PAYMENT_EXTERNAL, S.SUCCEEDED, [MessageType.RECOVERY_UPDATED]),
        (A.PENDING_PAYMENT, S.PROCESSING, [MessageType.RECOVERY_UPDATED]),
        (A.NO_ACTION, S.FAILED, []),
    ],
)
def test_an_action_on_a_scheduled_recovery_tells_the_scheduler(action: A, status: S, emitted: list[object]) -> None:
    change = scheduled_intent().rerequested(action, None, snapshot(), LATER, cause=None)
    assert change.intent.status is status and types(change.messages) == emitted
    assert change.intent.version == len(emitted) and change.intent.modified_at == LATER
    assert [(r.at, r.action) for r in change.intent.requests] == [(LATER, action)]


@pytest.mark.parametrize("final", [A.CANCEL_INVOICE, A.SUCCESS_PAYMENT_EXTERNAL])
@pytest.mark.parametrize("later", [A.SCHEDULE_FAILED_PAYMENT, A.PENDING_PAYMENT, A.CANCEL_INVOICE])
def test_a_paid_or_cancelled_invoice_is_never_reopened(final: A, later: A) -> None:
    closed = scheduled_intent().rerequested(final, None, snapshot(), T0, cause=None).intent
    change = closed.rerequested(later, "tx_2", snapshot("pm_second", "tx_2"), LATER, cause=None)
    assert change.messages == ()
    assert change.intent.status is closed.status and change.intent.snapshot == closed.snapshot
    assert len(change.intent.requests) == 2


def test_a_new_failure_with_a_new_card_is_merged_and_the_same_one_again_changes_nothing() -> None:
    cause = Intent.requested(snapshot(), A.SCHEDULE_FAILED_PAYMENT, T0, cause=None).messages[0]
    change = scheduled_intent().rerequested(
        A.SCHEDULE_FAILED_PAYMENT, "tx_2", snapshot("pm_second", "tx_2"), LATER, cause=cause
    )
    [updated] = change.messages
    assert updated.payload.tokens_added == ("pm_second",) and updated.payload.version == 1
    assert updated.causation_id == cause.message_id and updated.correlation_id == "12345_pay_1"
    assert change.intent.snapshot.billing_retry_count == 2
    assert change.intent.billing_transactions == ("tx_1", "tx_2")

    again = change.intent.rerequested(
        A.SCHEDULE_FAILED_PAYMENT, "tx_2", snapshot("pm_second", "tx_2"), LATER, cause=None
    )
    assert again.messages == () and again.intent.snapshot == change.intent.snapshot


def test_a_failure_for_an_invoice_not_yet_recovering_schedules_its_recovery() -> None:
    pending = Intent.requested(snapshot(), A.PENDING_PAYMENT, T0, cause=None).intent
    change = pending.rerequested(A.SCHEDULE_FAILED_PAYMENT, "tx_2", snapshot("pm_second", "tx_2"), LATER, cause=None)
    assert types(change.messages) == [MessageType.RECOVERY_SCHEDULED]
    assert change.intent.scheduled and change.intent.status is S.FAILED and change.intent.version == 0


@pytest.mark.parametrize(
    ("current", "outcome", "applies"),
    [
        (S.FAILED, S.SUCCEEDED, True),
        (S.PROCESSING, S.FAILED, True),
        (S.CANCELLED, S.SUCCEEDED, True),  # money moved after all
        (S.CANCELLED, S.FAILED, False),
        (S.SUCCEEDED, S.FAILED, False),
        (S.SUCCEEDED, S.SUCCEEDED, False),
    ],
)
def test_a_payment_outcome_never_overwrites_a_success_and_a_failure_never_reopens(
    current: S, outcome: S, applies: bool
) -> None:
    intent = replace(scheduled_intent(), status=current)
    after = intent.with_outcome(outcome, {"status": outcome.value}, LATER)
    assert (after is not None) is applies
    if after is not None:
        assert after.status is outcome and after.as_payment_object() == {"status": outcome.value}


def test_the_history_keeps_only_the_latest_requests() -> None:
    intent = scheduled_intent()
    for minute in range(REQUESTS_KEPT + 5):
        intent = intent.rerequested(
            A.NO_ACTION, f"tx_{minute}", snapshot(), T0 + timedelta(minutes=minute), cause=None
        ).intent
    assert len(intent.requests) == REQUESTS_KEPT
    assert intent.requests[0].connector_transaction_id == "tx_5" and intent.requests[-1].at == T0 + timedelta(
        minutes=REQUESTS_KEPT + 4
    )
    kept = intent.rerequested(A.PENDING_PAYMENT, "tx_last", snapshot(), LATER, cause=None, keep=3).intent
    assert [r.connector_transaction_id for r in kept.requests] == [
        f"tx_{REQUESTS_KEPT + 3}",
        f"tx_{REQUESTS_KEPT + 4}",
        "tx_last",
    ]


@pytest.mark.parametrize("before", [None, A.CANCEL_INVOICE, A.SUCCESS_PAYMENT_EXTERNAL, A.PENDING_PAYMENT])
# `invalid_action` is refused before any intent is touched (`check_acceptable`).
@pytest.mark.parametrize("action", [a for a in A if a is not A.INVALID_ACTION])
def test_a_request_is_fenced_exactly_when_it_closes_the_invoice_cancelled_or_paid_elsewhere(
    before: A | None, action: A
) -> None:
    intent = scheduled_intent()
    if before is not None:
        intent = intent.rerequested(before, None, snapshot(), T0, cause=None).intent
    after = intent.rerequested(action, None, snapshot(), LATER, cause=None).intent
    closes = after.status in (S.CANCELLED, S.SUCCEEDED) and intent.status not in (S.CANCELLED, S.SUCCEEDED)
    assert intent.closed_by(action) is closes
