"""A merchant's manual retry (the events API): one attempt now, recorded as `manual_retry` and returned."""

from __future__ import annotations

from typing import Any

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_dispatcher import metrics
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.handlers.delivery import Delivery


async def manual_retry(delivery: Delivery, event: WebhookEvent) -> dict[str, Any]:
    """The schedule and the circuit are bypassed (the merchant asked); a success marks the event delivered
    (pending automatic retries then stop). LookupError when the profile has no endpoint to send to."""
    endpoint = await delivery.endpoints.get(event.profile_id)
    if endpoint is None or not endpoint.url:
        raise LookupError("the profile has no webhook endpoint")
    headers = endpoint.headers(
        event.body,
        webhook_id=event.event_id,
        timestamp=int(delivery.clock.now().timestamp()),
        sequence=event.sequence or None,
        user_agent=delivery.user_agent,
    )
    result = await delivery.sender.send(endpoint.url, event.body, headers)
    metrics.delivery_attempts(result.verdict.outcome.value, WebhookDeliveryAttempt.MANUAL_RETRY.value).inc()
    after = event.delivered_manually() if result.is_success else event
    return await delivery.events.record_manual_attempt(event, after, result)
