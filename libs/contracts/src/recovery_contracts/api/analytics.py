"""The read side's HTTP bodies: Hyperswitch's recovery list and recovery intent, and the analytics extension.

`GET /v2/payments/recovery-list` and `GET /v2/payments/{id}/get-revenue-recovery-intent` follow Hyperswitch's
v2 shapes (juspay/hyperswitch#9409: `RecoveryPaymentListResponse`, `RevenueRecoveryGetIntentResponse`, the
`RecoveryStatus` enum); `GET /v2/revenue-recovery/analytics` is this system's own.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from recovery_contracts.api.fields import ResponseBody
from recovery_contracts.payments import Address, FeatureMetadata, PaymentAmount, PaymentError

# The recovery intent's `amount_details`: declared in payments.py with the payment `amount` it is the first part of.
from recovery_contracts.payments import AmountDetailsResponse as AmountDetailsResponse
from recovery_contracts.timestamps import UtcMillis


class RecoveryStatus(StrEnum):
    """Hyperswitch's `RecoveryStatus` of a payment in revenue recovery."""

    MONITORING = "monitoring"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    RECOVERED = "recovered"
    PARTIALLY_RECOVERED = "partially_recovered"
    TERMINATED = "terminated"
    NO_PICKED = "no_picked"
    PENDING = "pending"


class RecoveryPaymentsListItem(ResponseBody):
    """One payment of `GET /v2/payments/recovery-list` (Hyperswitch's `RecoveryPaymentsListResponseItem`)."""

    id: str
    merchant_id: str
    profile_id: str
    customer_id: str | None = None
    status: RecoveryStatus
    amount: PaymentAmount
    created: UtcMillis
    payment_method_type: str | None = None
    payment_method_subtype: str | None = None
    connector: str | None = None
    merchant_connector_id: str | None = None
    customer: Any | None = None
    merchant_reference_id: str | None = None
    description: str | None = None
    attempt_count: int
    error: PaymentError | None = None
    cancellation_reason: str | None = None
    modified_at: UtcMillis | None = None
    last_attempt_at: UtcMillis | None = None


class RecoveryPaymentListResponse(ResponseBody):
    """`{count, total_count, data}` as Hyperswitch; `next_cursor` (extension) pages on without an offset."""

    count: int
    total_count: int
    data: list[RecoveryPaymentsListItem]
    next_cursor: str | None = None


class RevenueRecoveryGetIntentResponse(ResponseBody):
    """`GET /v2/payments/{id}/get-revenue-recovery-intent` (Hyperswitch's `RevenueRecoveryGetIntentResponse`).

    Fields this system has no notion of keep Hyperswitch's defaults for a recovery intent (off-session, automatic
    capture, no payment link); `client_secret` is never given out by the read side."""

    id: str
    status: RecoveryStatus
    amount_details: AmountDetailsResponse
    client_secret: str | None = None
    profile_id: str
    merchant_reference_id: str | None = None
    routing_algorithm_id: str | None = None
    capture_method: str = "automatic"
    authentication_type: str | None = "no_three_ds"
    billing: Address | None = None
    shipping: Address | None = None
    customer_id: str | None = None
    customer_present: str = "absent"
    description: str | None = None
    return_url: str | None = None
    setup_future_usage: str = "off_session"
    apply_mit_exemption: str = "Skip"
    statement_descriptor: str | None = None
    order_details: list[Any] | None = None
    allowed_payment_method_types: list[str] | None = None
    metadata: dict[str, Any] | None = None
    connector_metadata: Any | None = None
    feature_metadata: FeatureMetadata | None = None
    payment_link_enabled: str = "Skip"
    payment_link_config: Any | None = None
    request_incremental_authorization: str = "default"
    split_txns_enabled: str = "skip"
    expires_on: UtcMillis
    frm_metadata: Any | None = None
    request_external_three_ds_authentication: str = "Skip"
    enable_partial_authorization: bool | None = None
    card_attached: int = Field(ge=0)


# --- extension: `GET /v2/revenue-recovery/analytics` ------------------------------------------------------


class Percentiles(ResponseBody):
    """Seconds from a payment's acceptance to its recovery; null when nothing was recovered."""

    p50: float | None = None
    p90: float | None = None


class Breakdown(ResponseBody):
    """Payments of one group (a card network, an algorithm), how many were recovered, and its declined attempts:
    those on the network's cards, or those of the algorithm's payments."""

    payments: int = 0
    recovered: int = 0
    declines: int = 0


# A lost dispute takes money back after the recovery; the payment stays recovered (it is in `payments_recovered` and
# its amount in `recovered_amount`), and these say what disputes took back of it.
_DISPUTED_LOST = "recovered payments with at least one lost dispute (each counted once); they stay recovered"
_DISPUTED_LOST_AMOUNT = "per currency, in minor units, what the lost disputes on recovered payments took back"
# An open dispute (opened or challenged at the payment connector, not decided) puts its amount at risk.
_DISPUTED_OPEN = "recovered payments with at least one dispute open now (each counted once)"
_DISPUTED_OPEN_AMOUNT = "per currency, in minor units, what the open disputes on recovered payments put at risk"


class DailyFigures(ResponseBody):
    date: str = Field(description="UTC day the payments were accepted on, YYYY-MM-DD")
    payments_total: int
    payments_recovered: int
    payments_failed: int
    payments_in_progress: int
    recovered_amount: dict[str, int]
    payments_disputed_lost: int = Field(default=0, description=_DISPUTED_LOST)
    disputed_lost_amount: dict[str, int] = Field(default_factory=dict, description=_DISPUTED_LOST_AMOUNT)
    payments_disputed_open: int = Field(default=0, description=_DISPUTED_OPEN)
    disputed_open_amount: dict[str, int] = Field(default_factory=dict, description=_DISPUTED_OPEN_AMOUNT)


class RecoveryAnalyticsResponse(ResponseBody):
    """The recovery figures of the payments accepted between `from` and `to` (UTC days, both included)."""

    merchant_id: str
    profile_id: str | None = None
    from_date: str
    to_date: str
    payments_total: int
    payments_recovered: int
    payments_failed: int
    payments_in_progress: int
    payments_cancelled: int
    recovery_rate: float | None = Field(description="recovered / (recovered + failed): the finished payments")
    recovered_amount: dict[str, int] = Field(description="per currency, in minor units")
    payments_disputed_lost: int = Field(default=0, description=_DISPUTED_LOST)
    disputed_lost_amount: dict[str, int] = Field(default_factory=dict, description=_DISPUTED_LOST_AMOUNT)
    payments_disputed_open: int = Field(default=0, description=_DISPUTED_OPEN)
    disputed_open_amount: dict[str, int] = Field(default_factory=dict, description=_DISPUTED_OPEN_AMOUNT)
    attempts_per_recovered_payment: float | None
    time_to_recover: Percentiles
    by_decline_class: dict[str, int] = Field(description="declined attempts by decline class")
    by_card_network: dict[str, Breakdown]
    by_attempt_number: dict[str, int] = Field(description="recovered payments by the attempt that recovered them")
    by_algorithm: dict[str, Breakdown]
    daily: list[DailyFigures]
