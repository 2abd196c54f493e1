"""The applied-message ids a state document carries instead of an inbox record (UnitOfWork.write)."""

from __future__ import annotations

from typing import Any

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import RecoveryScheduled
from recovery_runtime.unit_of_work import (
    APPLIED_FIELD,
    APPLIED_KEEP,
    OUTBOX_FIELD,
    Transaction,
    applied_key,
    mark_applied,
    not_applied,
    push_applied,
    was_applied,
)
from support.payments import recovery_payment


def envelope() -> Envelope[RecoveryScheduled]:
    payment = recovery_payment()
    return Envelope[RecoveryScheduled](
        type=MessageType.RECOVERY_SCHEDULED,
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
        payload=RecoveryScheduled(payment=payment),
    )


def test_the_key_names_the_consumer_and_the_message_as_the_inbox_does() -> None:
    message = envelope()
    assert applied_key(message, "scheduler.recovery-scheduled") == f"scheduler.recovery-scheduled:{message.message_id}"


def test_a_document_remembers_the_latest_ids_once_each() -> None:
    doc: dict[str, Any] = {}
    assert not was_applied(doc, "q:1") and not was_applied(None, "q:1")
    mark_applied(doc, "q:1")
    mark_applied(doc, "q:1")
    assert doc[APPLIED_FIELD] == ["q:1"] and was_applied(doc, "q:1")
    for n in range(2, APPLIED_KEEP + 2):
        mark_applied(doc, f"q:{n}")
    assert len(doc[APPLIED_FIELD]) == APPLIED_KEEP
    assert not was_applied(doc, "q:1") and was_applied(doc, f"q:{APPLIED_KEEP + 1}")


def test_the_update_form_is_a_compare_and_set_on_the_id() -> None:
    assert not_applied("q:1") == {APPLIED_FIELD: {"$ne": "q:1"}}
    assert push_applied("q:1") == {APPLIED_FIELD: {"$each": ["q:1"], "$slice": -APPLIED_KEEP}}


def test_embedded_messages_are_outbox_records_of_the_document() -> None:
    tx = Transaction.one_document()
    assert tx.session is None
    message = envelope()
    tx.emit(message)
    records = tx.embed("payment_intents", "pay_1", "now")
    assert tx.embedded_in == ("payment_intents", "pay_1")
    assert [r["_id"] for r in records] == [message.message_id]
    assert records[0]["created_at"] == "now" and records[0]["message_type"] == "recovery.scheduled"
    assert OUTBOX_FIELD == "outbox"
