"""`payment.dispute-updated` through the real consumer pipeline on in-memory adapters: a dispute's opening, review
and ending reach the merchant as Hyperswitch's `dispute_opened`, `dispute_challenged`, `dispute_won` (or
`dispute_cancelled`) webhooks, each once per dispute, numbered after the payment's earlier events and before its
loss, signed over the bytes stored; one overtaken by the dispute's end is not sent; a status no webhook is raised for is
dead-lettered with the reason."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from recovery_contracts.disputes import DisputeObject, DisputeStage, DisputeStatus
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.verification import verify_standard_webhook
from recovery_contracts.webhooks import OutgoingWebhook
from recovery_dispatcher.domain.status import EventStatus
from recovery_runtime.testing import consumed
from support.disputes import dispute_updated

from .fakes import Dispatcher
from .messages import HASH_KEY, WHSEC, dispute_lost, payment, succeeded

UPDATED, LOST, SUCCEEDED = "dispatcher.dispute-updated", "dispatcher.dispute-lost", "dispatcher.payment-succeeded"
OPENED, CHALLENGED, WON = DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_CHALLENGED, DisputeStatus.DISPUTE_WON


def _sent(dispatcher: Dispatcher) -> list[tuple[str, str, str]]:
    """(event type, the status its dispute is in (none for a payment's event), webhook-sequence) of each request."""
    sent = []
    for request in dispatcher.sender.requests:
        body = json.loads(request.body)
        status = body["content"]["object"].get("dispute_status", "")
        sent.append((body["event_type"], status, request.headers["webhook-sequence"]))
    return sent


async def test_an_opened_challenged_and_won_dispute_is_told_in_three_signed_webhooks(dispatcher: Dispatcher) -> None:
    paid = payment()
    lost = dispute_lost(paid)  # the dispute's object; only its updates are sent in this test
    dispute = lost.payload.dispute
    start = datetime.now(UTC)
    await dispatcher.send(SUCCEEDED, succeeded(paid))
    for step, (status, connector_status) in enumerate(
        ((OPENED, "needs_response"), (CHALLENGED, "under_review"), (WON, "won"))
    ):
        await dispatcher.send(
            UPDATED, dispute_updated(paid, dispute, status, start + timedelta(days=step), connector_status)
        )

    assert _sent(dispatcher) == [
        ("payment_succeeded", "", "1"),
        ("dispute_opened", "dispute_opened", "2"),
        ("dispute_challenged", "dispute_challenged", "3"),
        ("dispute_won", "dispute_won", "4"),
    ]
    won_request = dispatcher.sender.requests[-1]
    webhook = OutgoingWebhook.model_validate_json(won_request.body)
    assert webhook.content.type == "dispute_details" and isinstance(webhook.content.object, DisputeObject)
    assert (webhook.content.object.dispute_id, webhook.content.object.connector_status) == (dispute.dispute_id, "won")
    assert (
        won_request.headers["x-webhook-signature-512"]
        == hmac.new(HASH_KEY.encode(), won_request.body, hashlib.sha512).hexdigest()
    )
    verify_standard_webhook(won_request.body, won_request.headers, WHSEC, now=dispatcher.clock.now())
    disputes = sorted(
        (e for e in dispatcher.events.initial_events() if e.event_class == "disputes"), key=lambda e: e.sequence
    )
    assert [e.idempotent_event_id for e in disputes] == [
        idempotent_event_id(dispute.dispute_id, t) for t in ("dispute_opened", "dispute_challenged", "dispute_won")
    ]
    assert all(e.primary_object_id == dispute.dispute_id and e.status is EventStatus.DELIVERED for e in disputes)
    assert dispatcher.published.dead_letters == []


async def test_each_status_of_a_dispute_is_one_event_however_often_its_message_comes(dispatcher: Dispatcher) -> None:
    paid = payment()
    dispute = dispute_lost(paid).payload.dispute
    opened = dispute_updated(paid, dispute, OPENED, datetime.now(UTC), "needs_response")
    applied, duplicates = consumed(UPDATED, "applied"), consumed(UPDATED, "duplicate")

    await dispatcher.send(UPDATED, opened)
    await dispatcher.send(UPDATED, opened)
    # An outbox's republish after a lost confirm carries another message id: the event's key still decides.
    await dispatcher.send(UPDATED, opened.model_copy(update={"message_id": "published-again"}))
    # An inquiry escalated: the same status at another stage is the same webhook (one per dispute and status).
    escalated = opened.payload.dispute.model_copy(update={"dispute_stage": DisputeStage.PRE_DISPUTE})
    await dispatcher.send(
        UPDATED,
        opened.model_copy(
            update={"message_id": "escalated", "payload": opened.payload.model_copy(update={"dispute": escalated})}
        ),
    )

    assert [t for t, _, _ in _sent(dispatcher)] == ["dispute_opened"]
    assert (consumed(UPDATED, "applied") - applied, consumed(UPDATED, "duplicate") - duplicates) == (1, 3)


async def test_the_loss_after_the_opening_is_its_own_event_numbered_after_it(dispatcher: Dispatcher) -> None:
    paid = payment()
    lost = dispute_lost(paid)
    await dispatcher.send(
        UPDATED, dispute_updated(paid, lost.payload.dispute, OPENED, datetime.now(UTC), "needs_response")
    )
    await dispatcher.send(LOST, lost)

    assert [(t, seq) for t, _, seq in _sent(dispatcher)] == [("dispute_opened", "1"), ("dispute_lost", "2")]


async def test_a_status_no_webhook_is_raised_for_is_dead_lettered_with_the_reason(dispatcher: Dispatcher) -> None:
    paid = payment()
    dispute = dispute_lost(paid).payload.dispute
    expired = dispute_updated(paid, dispute, DisputeStatus.DISPUTE_EXPIRED, datetime.now(UTC), "expired")
    await dispatcher.send(UPDATED, expired)

    [letter] = dispatcher.published.dead_letters
    assert letter.queue == UPDATED and "no webhook is raised for dispute_expired" in letter.reason
    assert dispatcher.sender.requests == [] and dispatcher.events.claims == {}


async def test_an_opening_overtaken_by_the_disputes_end_is_not_sent_and_is_counted(dispatcher: Dispatcher) -> None:
    paid = payment()
    lost = dispute_lost(paid)
    dispute, now = lost.payload.dispute, datetime.now(UTC)
    opened = dispute_updated(paid, dispute, OPENED, now, "needs_response")
    before = _overtaken("dispute_opened")
    await dispatcher.send(LOST, lost)
    # Intake published the opening first; an outbox's republish after a lost confirm brings it here after the loss.
    await dispatcher.send(UPDATED, opened)

    assert [t for t, _, _ in _sent(dispatcher)] == ["dispute_lost"]
    assert _overtaken("dispute_opened") - before == 1
    assert dispatcher.published.dead_letters == []


async def test_a_review_after_a_win_is_not_sent_but_a_copy_of_an_opening_sent_before_is_a_duplicate(
    dispatcher: Dispatcher,
) -> None:
    paid = payment()
    dispute, now = dispute_lost(paid).payload.dispute, datetime.now(UTC)
    opened = dispute_updated(paid, dispute, OPENED, now, "needs_response")
    duplicates = consumed(UPDATED, "duplicate")
    await dispatcher.send(UPDATED, opened)
    await dispatcher.send(UPDATED, dispute_updated(paid, dispute, WON, now, "won"))
    await dispatcher.send(UPDATED, dispute_updated(paid, dispute, CHALLENGED, now, "under_review"))
    await dispatcher.send(UPDATED, opened)  # its event claimed before the win: the duplicate path, as any copy

    assert [t for t, _, _ in _sent(dispatcher)] == ["dispute_opened", "dispute_won"]
    assert consumed(UPDATED, "duplicate") - duplicates == 1


def _overtaken(event_type: str) -> float:
    return (
        REGISTRY.get_sample_value("recovery_webhook_dispute_events_overtaken_total", {"event_type": event_type}) or 0.0
    )
