"""`payment.succeeded`, `payment.failed`, `payment.cancelled`, `payment.dispute-lost` and `payment.dispute-updated`:
one initial webhook event per (primary object and event type: the payment attempt, the payment for a cancel, the
dispute for a dispute's status),
claimed, then delivered; a duplicate message delivers nothing twice; a type the profile switched off raises
nothing."""

from __future__ import annotations

from typing import Any

import structlog

from recovery_contracts.disputes import DisputeObject
from recovery_contracts.envelope import Envelope
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.messages import (
    PaymentCancelled,
    PaymentDisputeLost,
    PaymentDisputeUpdated,
    PaymentFailed,
    PaymentSucceeded,
)
from recovery_dispatcher import metrics
from recovery_dispatcher.domain.event import Claim, DuplicateEvent, WebhookEvent
from recovery_dispatcher.domain.event_types import FURTHER_DISPUTE_EVENTS, RAISED_TYPES, ContentObject
from recovery_dispatcher.domain.ids import checked_merchant_id
from recovery_dispatcher.domain.status import EventStatus
from recovery_dispatcher.handlers.delivery import Delivery, DeliveryInProgress
from recovery_runtime.bus import AlreadyApplied, MessageRejected
from recovery_runtime.topology import ConsumerQueue

log = structlog.get_logger(__name__)


async def payment_succeeded(delivery: Delivery, envelope: Envelope[PaymentSucceeded], queue: ConsumerQueue) -> None:
    message = envelope.payload
    await raise_event(delivery, envelope, "payment_succeeded", message.attempt_id, message.payment)


async def payment_failed(delivery: Delivery, envelope: Envelope[PaymentFailed], queue: ConsumerQueue) -> None:
    message = envelope.payload
    await raise_event(delivery, envelope, "payment_failed", message.attempt_id, message.payment)


async def payment_cancelled(delivery: Delivery, envelope: Envelope[PaymentCancelled], queue: ConsumerQueue) -> None:
    # A cancelled recovery never runs again, and may have made no attempt: the payment is the event's object.
    message = envelope.payload
    await raise_event(delivery, envelope, "payment_cancelled", message.payment_id, message.payment)


async def dispute_lost(delivery: Delivery, envelope: Envelope[PaymentDisputeLost], queue: ConsumerQueue) -> None:
    await _dispute_event(delivery, envelope, envelope.payload.payment_id, envelope.payload.dispute)


async def dispute_updated(delivery: Delivery, envelope: Envelope[PaymentDisputeUpdated], queue: ConsumerQueue) -> None:
    await _dispute_event(delivery, envelope, envelope.payload.payment_id, envelope.payload.dispute)


async def _dispute_event(delivery: Delivery, envelope: Envelope[Any], payment_id: str, dispute: DisputeObject) -> None:
    # The dispute is the event's object (Hyperswitch's dispute webhooks), its status the event's type
    # (`dispute_opened`, ..., `dispute_lost`): one event per dispute and status.
    if dispute.payment_id != payment_id:
        # The event is numbered and ordered within the dispute's payment: never within another one.
        raise MessageRejected(f"dispute {dispute.dispute_id} is on {dispute.payment_id}, not on {payment_id}")
    event_type = dispute.dispute_status.value
    if event_type not in RAISED_TYPES:
        raise MessageRejected(f"dispute {dispute.dispute_id}: no webhook is raised for {dispute.dispute_status}")
    further = await _raised_further(delivery, payment_id, dispute.dispute_id, event_type)
    if further is not None:
        # Intake emits a dispute's statuses in order, but a message can be overtaken on its way (an outbox publishing
        # it again after a lost confirm): the merchant told the dispute ended is never told it opened afterwards.
        metrics.DISPUTE_EVENTS_OVERTAKEN.labels(event_type).inc()
        log.info("webhook.dispute_event_overtaken", event_type=event_type, dispute=dispute.dispute_id, by=further)
        return
    await raise_event(delivery, envelope, event_type, dispute.dispute_id, dispute)


async def _raised_further(delivery: Delivery, payment_id: str, dispute_id: str, event_type: str) -> str | None:
    """The event type further along than `event_type` already raised for the dispute (claimed), if any, while
    `event_type` itself is not (a copy of a message whose event was claimed goes on as any duplicate does: its
    delivery may need finishing)."""
    further_types = FURTHER_DISPUTE_EVENTS.get(event_type, ())
    if not further_types:
        return None
    types_of = {idempotent_event_id(dispute_id, t): t for t in (event_type, *further_types)}
    claimed = await delivery.events.claimed(payment_id, list(types_of))
    if idempotent_event_id(dispute_id, event_type) in claimed:
        return None
    return next((types_of[key] for key in types_of if key in claimed), None)


async def raise_event(
    delivery: Delivery, envelope: Envelope[Any], event_type: str, primary_object_id: str, content: ContentObject
) -> None:
    merchant_id, profile_id = envelope.merchant_id, envelope.profile_id
    if not profile_id or not merchant_id:
        raise MessageRejected("payment event without merchant_id and profile_id in its envelope")
    try:
        checked_merchant_id(merchant_id)
    except ValueError as invalid:
        raise MessageRejected(str(invalid)) from None
    endpoint = await delivery.endpoints.get(profile_id)
    if endpoint is None:
        # profile.updated travels on its own queue and may land a moment later.
        raise RuntimeError(f"profile {profile_id} not known to the dispatcher yet")
    if not endpoint.sends(event_type):
        # Switched off on the profile (`webhook_details.<type>_enabled: false`): no event at all, as Hyperswitch.
        metrics.events_not_raised(event_type).inc()
        log.info("webhook.event_type_disabled", event_type=event_type, profile_id=profile_id)
        return
    now = delivery.clock.now()
    event = WebhookEvent.raised(
        event_type=event_type,
        primary_object_id=primary_object_id,
        content=content,
        merchant_id=merchant_id,
        profile_id=profile_id,
        now=now,
        lease_until=delivery.leases.until(now),
        lease_owner=delivery.leases.owner,
    )
    try:
        # The claim decides, also between dispatchers racing on the same event; it numbers the event within its
        # payment too (`sequence`).
        event = await delivery.events.claim(event)
    except DuplicateEvent:
        await _duplicate(delivery, event)
        # A copy of a message consumed before (a lost acknowledgement, or an outbox's republish after a lost
        # confirm): acknowledged and counted as a duplicate, whatever was left to finish.
        raise AlreadyApplied(envelope.message_id) from None
    await delivery.deliver_claimed(event)


async def _duplicate(delivery: Delivery, raised: WebhookEvent) -> None:
    """The event is claimed already: finish its delivery only if nobody is doing it (the dispatcher that raised
    it died), else leave it (done) or come back later (in progress)."""
    claim = await delivery.events.claim_of(raised.payment_id, raised.idempotent_event_id)
    if claim is None:
        raise RuntimeError(f"duplicate event {raised.idempotent_event_id} not readable yet")
    existing = await delivery.events.load(raised.merchant_id, claim.event_id)
    if existing is None:
        # Claimed, not recorded: its first attempt is in flight, or the dispatcher that claimed it died (or this
        # process, whose delivery of it failed before recording: a database outage).
        await _take_over(delivery, raised, claim)
        return
    if existing.status is EventStatus.DELIVERING:
        now = delivery.clock.now()
        if existing.being_delivered(now):
            raise DeliveryInProgress(existing.event_id, existing.lease_until, now)
        await delivery.deliver(existing, ())
    log.info("webhook.duplicate_event", event_id=existing.event_id, status=existing.status)


async def _take_over(delivery: Delivery, raised: WebhookEvent, claim: Claim) -> None:
    now = delivery.clock.now()
    leases = delivery.leases
    if not leases.may_take_over(claim, now):
        raise DeliveryInProgress(claim.event_id, claim.lease_until, now)
    until = leases.until(now)
    if not await delivery.events.take_claim(claim, until, leases.owner):
        # Another dispatcher took it over first: its new lease is not known here, so look again soon.
        raise DeliveryInProgress(claim.event_id, None, now)
    log.info("webhook.claim_taken_over", event_id=claim.event_id)
    event = WebhookEvent.of_claim(
        claim,
        event_type=raised.event_type,
        primary_object_id=raised.primary_object_id,
        merchant_id=raised.merchant_id,
        profile_id=raised.profile_id,
    )
    await delivery.deliver_claimed(event.leased(until, leases.owner))
