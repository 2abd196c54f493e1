"""The events API (`/events/{merchant_id}/…`): outgoing webhook events and their delivery attempts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from recovery_contracts.api.fields import Flag, Identifier, RequestBody, ResponseBody
from recovery_contracts.timestamps import UtcMillis

MAX_EVENTS_PAGE = 100
# `offset` beyond this is refused: a deeper page is read with `cursor` (an offset costs every skipped record).
MAX_EVENTS_OFFSET = 10_000
# `total_count` counts at most this many events (`total_count_capped` says when it stopped there).
EVENTS_COUNT_CAP = 10_000


class EventClass(StrEnum):
    PAYMENTS = "payments"
    REFUNDS = "refunds"
    DISPUTES = "disputes"
    MANDATES = "mandates"
    PAYOUTS = "payouts"


class EventType(StrEnum):
    """Hyperswitch's `EventType`. This system emits `payment_succeeded`, `payment_failed`, `payment_cancelled`,
    `dispute_opened`, `dispute_challenged`, `dispute_won`, `dispute_lost` and `dispute_cancelled`."""

    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_PROCESSING = "payment_processing"
    PAYMENT_CANCELLED = "payment_cancelled"
    PAYMENT_AUTHORIZED = "payment_authorized"
    PAYMENT_CAPTURED = "payment_captured"
    ACTION_REQUIRED = "action_required"
    REFUND_SUCCEEDED = "refund_succeeded"
    REFUND_FAILED = "refund_failed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_EXPIRED = "dispute_expired"
    DISPUTE_ACCEPTED = "dispute_accepted"
    DISPUTE_CANCELLED = "dispute_cancelled"
    DISPUTE_CHALLENGED = "dispute_challenged"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    MANDATE_ACTIVE = "mandate_active"
    MANDATE_REVOKED = "mandate_revoked"
    PAYOUT_SUCCESS = "payout_success"
    PAYOUT_FAILED = "payout_failed"
    PAYOUT_INITIATED = "payout_initiated"
    PAYOUT_PROCESSING = "payout_processing"
    PAYOUT_CANCELLED = "payout_cancelled"
    PAYOUT_EXPIRED = "payout_expired"
    PAYOUT_REVERSED = "payout_reversed"


class WebhookDeliveryAttempt(StrEnum):
    INITIAL_ATTEMPT = "initial_attempt"
    AUTOMATIC_RETRY = "automatic_retry"
    MANUAL_RETRY = "manual_retry"


class EventListConstraints(RequestBody):
    """Body of `POST /events/{merchant_id}` (filters; only initial attempts are listed)."""

    created_after: UtcMillis | None = None
    created_before: UtcMillis | None = None
    limit: Annotated[int, Field(strict=True, ge=1, le=MAX_EVENTS_PAGE)] | None = None
    offset: Annotated[int, Field(strict=True, ge=0, le=MAX_EVENTS_OFFSET)] | None = None
    # Extension: the previous page's `next_cursor`; the page then starts after that event (`offset` counts from
    # there). Reads any depth at the cost of one page.
    cursor: Identifier | None = None
    object_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    event_id: Identifier | None = None
    profile_id: Identifier | None = None
    event_classes: Annotated[list[EventClass], Field(max_length=len(EventClass))] | None = None
    event_types: Annotated[list[EventType], Field(max_length=len(EventType))] | None = None
    is_delivered: Flag | None = None


class EventRecoverRequest(RequestBody):
    """Extension (Svix's "recover"): deliver again the merchant's events whose delivery failed (retries exceeded, or
    refused: the endpoint disabled, gone, missing or blocked), created from `since` (at most 14 days ago) to `until`
    (default now), oldest first, at most 200 a call; `cursor`: the previous answer's `next_cursor`."""

    since: UtcMillis
    until: UtcMillis | None = None
    profile_id: Identifier | None = None
    cursor: Identifier | None = None


class EventRecoverResponse(ResponseBody):
    """The events delivered again (each on a new round of its retry schedule from now; its `webhook-id` unchanged,
    the receiver's idempotency key), and `next_cursor` when failed events of the window follow (null: none left)."""

    recovered_count: int = Field(ge=0)
    event_ids: list[str]
    next_cursor: str | None = None
    refused_profiles: dict[str, str] = Field(
        default_factory=dict,
        description="profile id -> why its endpoint refuses deliveries now (none, disabled, blocked): its failed "
        "events stay failed; fix the endpoint (a profile update re-enables a disabled one) and recover again",
    )


class EventListItemResponse(ResponseBody):
    event_id: str
    merchant_id: str
    profile_id: str
    object_id: str
    event_type: EventType
    event_class: EventClass
    is_delivery_successful: bool | None
    initial_attempt_id: str
    created: UtcMillis


class TotalEventsResponse(ResponseBody):
    events: list[EventListItemResponse]
    # The matching events, counted up to EVENTS_COUNT_CAP.
    total_count: int = Field(ge=0)
    # Extensions: `total_count` stopped at EVENTS_COUNT_CAP (there may be more); the `cursor` of the next page
    # (null on the last page).
    total_count_capped: bool = False
    next_cursor: str | None = None


# Headers travel as [name, value] pairs, in the order sent (Hyperswitch's `Vec<(String, Secret<String>)>`).
HeaderPairs = list[tuple[str, str]]


class OutgoingWebhookRequestContent(ResponseBody):
    body: str = Field(description="the exact body bytes sent, as text")
    headers: HeaderPairs = Field(
        description="the headers sent, in order; the values of the profile's custom headers "
        "(`outgoing_webhook_custom_http_headers`) masked as the profile shows them (`Be**********en`)"
    )


class OutgoingWebhookResponseContent(ResponseBody):
    body: str | None = None
    headers: HeaderPairs | None = None
    status_code: int | None = None
    error_message: str | None = None


class EventRetrieveResponse(EventListItemResponse):
    """One delivery attempt (`GET …/attempts`, `POST …/retry`): the list item plus what went over the wire.

    The merchant's signing key is never in `request.headers` (only the signature it produced), nor are the values
    of the profile's custom headers (masked)."""

    request: OutgoingWebhookRequestContent
    response: OutgoingWebhookResponseContent
    delivery_attempt: WebhookDeliveryAttempt | None


# --- extension: `GET /events/{merchant_id}/endpoints`, the webhook endpoints' health -------------------------


class EndpointBreaker(ResponseBody):
    state: Annotated[str, Field(description="closed, open or half_open")]
    consecutive_failures: int
    opened_at: UtcMillis | None = None
    retry_at: Annotated[UtcMillis | None, Field(description="when an open circuit lets a probe through")] = None


class EndpointLatency(ResponseBody):
    """Answer times of the recent attempts, in milliseconds (null without attempts)."""

    mean: float | None = None
    p90: int | None = None


class WebhookEndpointHealth(ResponseBody):
    """One endpoint (a profile's URL): its breaker, whether deliveries to it are stopped, and how its recent
    attempts went."""

    profile_id: str
    url: str
    current: Annotated[bool, Field(description="the profile's URL now (false: a URL it used before)")]
    enabled: bool
    disabled: bool
    disabled_reason: str | None = None
    failing_since: UtcMillis | None = None
    breaker: EndpointBreaker
    slow_responses: int
    last_slow_at: UtcMillis | None = None
    recent_attempts: int
    recent_delivered: int
    success_rate: float | None = None
    latency_ms: EndpointLatency


class WebhookEndpointsResponse(ResponseBody):
    merchant_id: str
    endpoints: list[WebhookEndpointHealth]
