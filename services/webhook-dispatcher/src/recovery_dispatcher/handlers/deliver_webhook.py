"""`webhook.deliver`: a durable retry or a hold came due; deliver the event again unless it moved on (then the
message is acknowledged as a duplicate: a copy, or a retry overtaken by another). An event a dispatcher holds for
this very retry is not moved on: the message comes back after a pause, at the latest once that dispatcher's lease
may have run out; by then the delivery settled, or the holder died mid-send and this retry takes the event over."""

from __future__ import annotations

import structlog

from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import DeliverWebhook
from recovery_dispatcher.domain.status import EventStatus
from recovery_dispatcher.handlers.delivery import Delivery, DeliveryInProgress
from recovery_runtime.bus import AlreadyApplied, MessageRejected
from recovery_runtime.topology import ConsumerQueue

log = structlog.get_logger(__name__)


async def deliver_webhook(delivery: Delivery, envelope: Envelope[DeliverWebhook], queue: ConsumerQueue) -> None:
    command = envelope.payload
    if not envelope.merchant_id:
        raise MessageRejected("deliver_webhook without merchant_id in its envelope")
    event = await delivery.events.load(envelope.merchant_id, command.initial_attempt_id)
    if event is None:
        raise MessageRejected(f"no webhook event {command.initial_attempt_id}")
    if event.retry_index != command.retry_index:
        log.info("webhook.retry_stale", event_id=event.event_id, retry_index=command.retry_index)
        raise AlreadyApplied(envelope.message_id)
    if not await delivery.deliver(event, (EventStatus.RETRY_SCHEDULED,)):
        current = await delivery.events.load(envelope.merchant_id, command.initial_attempt_id)
        if current is not None and current.retry_index == command.retry_index:
            now = delivery.clock.now()
            if current.being_delivered(now):
                # A dispatcher is making this retry, or died making it: left to it, but not forgotten.
                raise DeliveryInProgress(current.event_id, current.lease_until, now)
            if current.status is EventStatus.DELIVERING and await delivery.deliver(current, ()):
                # Its holder's lease ran out between the take above and this look (the holder died mid-send): taken
                # over now. Acknowledging it as a copy would leave the event `delivering` with nobody to retry it.
                return
        # The retry was made already (this is a copy of its message), or another dispatcher took it over just now.
        raise AlreadyApplied(envelope.message_id)
