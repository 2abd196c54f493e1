"""envelope_for: typed envelopes, and follow-ups that carry their cause's trail."""

from __future__ import annotations

from datetime import UTC, datetime

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import DeliverWebhook, envelope_model


def _sync(attempt: str = "evt_1") -> DeliverWebhook:
    return DeliverWebhook(initial_attempt_id=attempt, retry_index=1)


def test_a_message_round_trips_through_its_queue_model() -> None:
    sent = envelope_for(MessageType.DELIVER_WEBHOOK, _sync(), correlation_id="pay_1", merchant_id="m1", profile_id="p1")
    received = envelope_model(MessageType.DELIVER_WEBHOOK).model_validate_json(sent.model_dump_json())
    assert received == sent
    assert received.payload.initial_attempt_id == "evt_1"
    assert sent.causation_id is None


def test_a_follow_up_carries_its_cause() -> None:
    cause = envelope_for(
        MessageType.DELIVER_WEBHOOK, _sync(), correlation_id="pay_1", merchant_id="m1", profile_id="p1"
    )
    at = datetime(2026, 1, 1, tzinfo=UTC)
    follow_up = envelope_for(MessageType.DELIVER_WEBHOOK, _sync(), caused_by=cause, message_id="fixed", occurred_at=at)
    assert (follow_up.correlation_id, follow_up.merchant_id, follow_up.profile_id) == ("pay_1", "m1", "p1")
    assert follow_up.causation_id == cause.message_id
    assert (follow_up.message_id, follow_up.occurred_at) == ("fixed", at)


def test_explicit_metadata_wins_over_the_cause() -> None:
    cause = envelope_for(MessageType.DELIVER_WEBHOOK, _sync(), correlation_id="pay_1", merchant_id="m1")
    other = envelope_for(MessageType.DELIVER_WEBHOOK, _sync("evt_2"), caused_by=cause, correlation_id="pay_2")
    assert other.correlation_id == "pay_2" and other.merchant_id == "m1"
    assert isinstance(other, Envelope)


def test_a_cause_known_only_by_its_id_is_recorded_and_a_timer_carries_its_message() -> None:
    from recovery_contracts.messages import timer_for

    command = envelope_for(
        MessageType.DELIVER_WEBHOOK, _sync(), causation_id="msg_0", correlation_id="pay_1", merchant_id="m1"
    )
    assert command.causation_id == "msg_0"
    at = datetime(2026, 1, 2, tzinfo=UTC)
    timer = timer_for(command, timer_id="t1", due_at=at, kind="webhook", caused_by=command)
    assert timer.type is MessageType.SCHEDULE_TIMER
    assert (timer.correlation_id, timer.merchant_id, timer.causation_id) == ("pay_1", "m1", command.message_id)
    assert timer.payload.payment_id == "pay_1" and timer.payload.due_at == at
    assert envelope_model(MessageType.DELIVER_WEBHOOK).model_validate(timer.payload.message) == command


def test_a_message_about_a_payment_carries_its_ids_unless_told_otherwise() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Payment:
        payment_id: str = "pay_9"
        merchant_id: str = "m9"
        profile_id: str = "p9"

    cause = envelope_for(MessageType.DELIVER_WEBHOOK, _sync(), correlation_id="pay_1", merchant_id="m1")
    about = envelope_for(MessageType.DELIVER_WEBHOOK, _sync(), about=Payment(), caused_by=cause)
    assert (about.correlation_id, about.merchant_id, about.profile_id) == ("pay_9", "m9", "p9")
    assert about.causation_id == cause.message_id
    told = envelope_for(MessageType.DELIVER_WEBHOOK, _sync(), about=Payment(), profile_id="p2")
    assert (told.correlation_id, told.merchant_id, told.profile_id) == ("pay_9", "m9", "p2")
