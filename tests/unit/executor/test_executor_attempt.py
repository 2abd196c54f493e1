"""The attempt's rules without I/O: what a copy of a command does with it, its transitions, the charge guard,
which accounts may charge, and its MongoDB shape."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from recovery_executor.adapters.attempts import attempt_of, claim_document
from recovery_executor.domain.attempt import Attempt, AttemptStatus, Resumption
from recovery_executor.domain.charge_guard import ChargeFacts, refusal_to_charge
from recovery_executor.domain.connector import ChargeOutcome, ChargeOutcomeKind
from recovery_executor.domain.connector_account import ConnectorAccount
from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.clock import TimeScale

from .builders import planned
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
