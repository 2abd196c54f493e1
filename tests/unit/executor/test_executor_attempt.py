"""The attempt's rules without I/O: what a copy of a command does with it, its transitions, the charge guard,
which accounts may charge, and its MongoDB shape."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from recovery_executor.adapters.attempts import attempt_of, claim_document
from recovery_executor.adapters.stripe import charge_form
from recovery_executor.domain.attempt import Attempt, AttemptStatus, Resumption, charge_request
from recovery_executor.domain.charge_guard import ChargeFacts, refusal_to_charge
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind, ChargeRequest
from recovery_executor.domain.connector_account import ConnectorAccount
from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.clock import TimeScale

from .builders import from_a_changed_snapshot, planned
from .fakes import approved, declined

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
ABANDONED_AFTER = timedelta(seconds=60)


def attempt(status: AttemptStatus, started_at: datetime = T0) -> Attempt:
    claimed = Attempt.claim(planned().payload, "msg-1", "executor-1", started_at)
    return replace(claimed, status=status)


@pytest.mark.parametrize(
    ("status", "same_attempt_id", "seconds_since_start", "step"),
    [
        (AttemptStatus.SUCCEEDED, True, 0, Resumption.REPUBLISH),
        (AttemptStatus.DECLINED, False, 0, Resumption.REPUBLISH),
        (AttemptStatus.ERROR, True, 0, Resumption.REPUBLISH),
        (AttemptStatus.SKIPPED, True, 0, Resumption.LEAVE),
        (AttemptStatus.SKIPPED, False, 0, Resumption.REOPEN),
        (AttemptStatus.UNKNOWN, True, 3600, Resumption.LEAVE),
        (AttemptStatus.CHARGING, True, 59, Resumption.HELD),
        (AttemptStatus.CHARGING, True, 60, Resumption.TAKE_OVER),
    ],
)
def test_what_a_copy_of_the_command_does(
    status: AttemptStatus, same_attempt_id: bool, seconds_since_start: int, step: Resumption
) -> None:
    existing = attempt(status)
    attempt_id = existing.attempt_id if same_attempt_id else "12345_att_planned_again"
    now = T0 + timedelta(seconds=seconds_since_start)
    assert existing.on_execute(attempt_id, now, ABANDONED_AFTER) is step


@pytest.mark.parametrize(
    ("status", "seconds_since_start", "step"),
    [
        (AttemptStatus.SUCCEEDED, 0, Resumption.REPUBLISH),
        (AttemptStatus.SKIPPED, 0, Resumption.REPUBLISH),
        (AttemptStatus.UNKNOWN, 0, Resumption.TAKE_OVER),
        (AttemptStatus.CHARGING, 59, Resumption.HELD),
        (AttemptStatus.CHARGING, 60, Resumption.TAKE_OVER),
    ],
)
def test_what_a_psync_does(status: AttemptStatus, seconds_since_start: int, step: Resumption) -> None:
    assert attempt(status).on_sync(T0 + timedelta(seconds=seconds_since_start), ABANDONED_AFTER) is step


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (approved(), AttemptStatus.SUCCEEDED),
        (declined(), AttemptStatus.DECLINED),
        (ChargeOutcome(ChargeOutcomeKind.CONFIG_ERROR, error_code="resource_missing"), AttemptStatus.ERROR),
    ],
)
def test_a_final_outcome_settles_the_attempt_and_is_its_message(outcome: ChargeOutcome, status: AttemptStatus) -> None:
    command = planned()
    settled, messages = attempt(AttemptStatus.CHARGING).settled(outcome, command.payload, command.message_id, T0)
    assert settled.status is status and settled.settled_at == T0
    assert messages == [settled.outcome_message]


def test_an_unknown_outcome_keeps_a_transaction_id_already_known_and_times_the_next_sync_on_the_scale() -> None:
    command = planned()
    known = replace(attempt(AttemptStatus.CHARGING), connector_transaction_id="pi_known")
    unknown, [timer] = known.outcome_unknown(
        ChargeOutcome(ChargeOutcomeKind.UNKNOWN), command.payload, command, command.message_id, 2, T0, TimeScale(60)
    )
    assert (unknown.status, unknown.connector_transaction_id) == (AttemptStatus.UNKNOWN, "pi_known")
    assert unknown.next_sync_at == timer.payload.due_at == T0 + timedelta(seconds=1)  # one minute at 60x


def test_the_claim_records_the_charge_parameters_and_no_later_step_changes_them() -> None:
    command = planned()
    payment = command.payload.payment
    claimed = Attempt.claim(command.payload, command.message_id, "executor-1", T0)
    assert claimed.charge == charge_request(command.payload)
    assert claimed.charge.parameters() == {
        "payment_id": payment.payment_id,
        "attempt_number": 1,
        "amount": 2250,
        "currency": "USD",
        "customer": "cus_1",
        "payment_method": "pm_card_visa",
        "idempotency_key": f"recovery:{payment.payment_id}:attempt:1",
        "metadata": {
            "attempt_id": command.payload.attempt_id,
            "merchant_reference_id": "invoice_1",
            "payment_id": payment.payment_id,
        },
        "description": None,
    }
    # Whatever the command a later step holds (here one from a changed snapshot), the attempt keeps its own.
    later = from_a_changed_snapshot(command, amount=9999, merchant_reference_id="invoice_1_revised").payload
    unknown, _ = claimed.outcome_unknown(
        ChargeOutcome(ChargeOutcomeKind.UNKNOWN), later, command, command.message_id, 1, T0, TimeScale(1)
    )
    taken = unknown.taken_over("executor-2", T0 + timedelta(minutes=1))
    settled, _ = taken.settled(approved(), later, command.message_id, T0 + timedelta(minutes=1))
    refused, _ = taken.refused("the invoice was cancelled", later, command.message_id, T0)
    assert [a.charge for a in (unknown, taken, settled, refused)] == [claimed.charge] * 4
    assert (settled.token, settled.idempotency_key) == ("pm_card_visa", f"recovery:{payment.payment_id}:attempt:1")


def test_a_refused_attempt_planned_again_is_claimed_with_the_new_plans_parameters() -> None:
    first = planned()
    claimed = Attempt.claim(first.payload, first.message_id, "executor-1", T0)
    refused, _ = claimed.refused("paused", first.payload, first.message_id, T0)
    again = planned(first.payload.payment.model_copy(update={"amount": 3000}))

    reopened = refused.reopened(again.payload, "executor-2", T0 + timedelta(days=2))

    assert reopened.charge == charge_request(again.payload)
    assert (reopened.charge.amount, reopened.charge.metadata["attempt_id"]) == (3000, again.payload.attempt_id)
    assert reopened.idempotency_key == refused.idempotency_key  # one key per attempt number


def test_the_stored_parameters_are_what_the_stripe_adapter_sends() -> None:
    request = charge_request(planned().payload)
    stored = json.loads(json.dumps(request.parameters()))  # through a document and back

    assert ChargeRequest.of_parameters(stored) == request
    assert charge_form(ChargeRequest.of_parameters(stored)) == charge_form(request)


def test_taking_over_counts_the_resumption() -> None:
    taken = attempt(AttemptStatus.UNKNOWN).taken_over("executor-2", T0 + timedelta(hours=1))
    assert (taken.status, taken.owner, taken.resumptions) == (AttemptStatus.CHARGING, "executor-2", 1)
    assert taken.first_started_at == T0  # the idempotency window runs from the first call


@pytest.mark.parametrize(
    ("facts", "refusal"),
    [
        (ChargeFacts(), None),
        (ChargeFacts(intent_status="failed"), None),
        (ChargeFacts(intent_status="cancelled"), "the invoice was cancelled"),
        (ChargeFacts(intent_status="succeeded"), "the invoice was paid elsewhere"),
        (ChargeFacts(intent_status="processing"), "the billing system reports a payment in progress"),
        (ChargeFacts(succeeded_attempt=2), "attempt 2 of this payment already succeeded"),
    ],
)
def test_the_charge_guard(facts: ChargeFacts, refusal: str | None) -> None:
    assert refusal_to_charge(facts) == refusal


@pytest.mark.parametrize(
    ("account", "refusal"),
    [
        (ConnectorAccount("mca_1", "stripe", "k"), None),
        (ConnectorAccount("mca_1", "stripe", "k", disabled=True), "connector account mca_1 is disabled"),
        (ConnectorAccount("mca_1", "adyen", "k"), "connector 'adyen' is not supported for charges"),
        (ConnectorAccount("mca_1", None, "k"), "connector None is not supported for charges"),
    ],
)
def test_which_connector_accounts_may_charge(account: ConnectorAccount, refusal: str | None) -> None:
    assert account.refusal_to_charge() == refusal


def test_the_stored_record_loads_back_and_republishes_its_outcome_byte_for_byte() -> None:
    command = planned()
    claimed = attempt(AttemptStatus.CHARGING)
    settled, _ = claimed.settled(approved(), command.payload, command.message_id, T0)
    assert settled.outcome_message is not None
    stored = OutgoingMessage.of(settled.outcome_message)
    doc = {
        **claim_document(claimed),
        "status": settled.status.value,
        "settled_at": T0,
        "connector_transaction_id": "pi_approved",
        "emitted": stored.to_document(T0),
    }

    loaded = attempt_of(doc)

    assert loaded.outcome_message is not None
    assert OutgoingMessage.of(loaded.outcome_message) == stored
    assert (loaded.status, loaded.resumptions, loaded.connector_transaction_id) == (settled.status, 0, "pi_approved")
    assert attempt_of(claim_document(claimed)) == claimed
