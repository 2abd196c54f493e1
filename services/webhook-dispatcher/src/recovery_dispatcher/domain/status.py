"""The closed sets of a webhook event's life: its status and how it finished (the kind of each attempt, its
`delivery_attempt`, is the contract's `WebhookDeliveryAttempt`, as the events API answers it)."""

from __future__ import annotations

from enum import StrEnum


class EventStatus(StrEnum):
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"  # RETRIES_EXCEEDED, or a destination that can never work (blocked, disabled)


FINAL_STATUSES = (EventStatus.DELIVERED, EventStatus.FAILED)


class EventOutcome(StrEnum):
    """How an event reached its final status (the `result` of recovery_webhook_events_finished_total)."""

    DELIVERED = "delivered"
    RETRIES_EXCEEDED = "retries_exceeded"
    BLOCKED = "blocked"
    ENDPOINT_GONE = "endpoint_gone"
    ENDPOINT_DISABLED = "endpoint_disabled"
    NO_ENDPOINT = "no_endpoint"
