"""The recovery snapshot: what intake accepted, carried by events so no service reads another's store."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from recovery_contracts.payments import (
    Address,
    BillingConnectorPaymentDetails,
    BillingConnectorPaymentMethodDetails,
    CardNetworkDetails,
    ConnectorTokenDetails,
    ConnectorTransmission,
    ErrorDetails,
    FeatureMetadata,
    IntentStatus,
    PaymentAmount,
    PaymentError,
    PaymentMethodDataResponse,
    PaymentObject,
    RevenueRecoveryMetadata,
)


class RetryAlgorithm(StrEnum):
    """`revenue_recovery_retry_algorithm_type` on a profile."""

    MONITORING = "monitoring"
    CASCADING = "cascading"
    SMART = "smart"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Retries in one day or hour of a card's history: more is not a history a network budget could count (every network
# allows at most 35 attempts in 30 days), so a backfill row saying more is refused with the reason.
MAX_PRIOR_RETRIES_IN_A_PERIOD = 100
# How far back prior retries are kept: the longest network-budget window (rolling 30 days) and a day's margin.
PRIOR_RETRIES_LOOKBACK = timedelta(days=31)
# Every hour of that window and then some: a history longer than that does not count anyway.
MAX_PRIOR_RETRY_PERIODS = 800


class PriorRetries(_Frozen):
    """Retries made on a card before this system took it over, as the merchant's card-data backfill reports them
    (`daily_retry_history`): `count` retries in the day or hour that ended at `at` (the upload's time, for a
    period not over then). Network budgets count each as an attempt on the same amount, declined."""

    at: AwareDatetime
    count: int = Field(ge=1, le=MAX_PRIOR_RETRIES_IN_A_PERIOD)


class PaymentToken(_Frozen):
    """A saved payment method at the payment processor, with what the billing system told us about the card."""

    token: str = Field(min_length=1, max_length=255)
    connector_customer_id: str | None = Field(default=None, max_length=255)
    payment_method_type: str = "card"
    payment_method_subtype: str | None = None
    card_network: str | None = None
    card_issuer: str | None = None
    card_type: str | None = None
    card_exp_month: str | None = None
    card_exp_year: str | None = None
    last_four_digits: str | None = None
    # The card's retries before this system (the merchant's backfill; the latest upload replaces them), oldest
    # first, within the longest budget window of the upload. Left out of the JSON when there are none, so a token
    # without them is what the release before this field wrote and reads (docs/deployment.md, "Upgrading").
    prior_retries: tuple[PriorRetries, ...] = Field(
        default=(), max_length=MAX_PRIOR_RETRY_PERIODS, exclude_if=lambda retries: not retries
    )


class RetrySettings(_Frozen):
    """The retry configuration in force when the recovery was accepted (profile + billing connector account)."""

    algorithm: RetryAlgorithm
    active_algorithm: RetryAlgorithm = RetryAlgorithm.CASCADING
    ladder_seconds: tuple[int, ...] | None = None
    min_jitter_seconds: int = 1
    max_jitter_seconds: int = 300
    max_retry_count: int | None = None
    billing_connector_retry_threshold: int = 0
    switch_retry_threshold: int = 0
    switch_time_threshold_after_creation_seconds: int = 0
    monitoring_threshold_seconds: int = 0
    profile_created_at: datetime | None = None
    # When the profile last chose monitoring (Hyperswitch's `monitoring_configured_timestamp`): the threshold counts
    # from it. None (a snapshot from before it was carried, or a profile not in monitoring): `profile_created_at`.
    monitoring_configured_at: datetime | None = None


class RecoveryPayment(_Frozen):
    payment_id: str
    merchant_id: str
    profile_id: str
    merchant_reference_id: str
    amount: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    created_at: datetime
    billing_connector_id: str
    payment_connector_id: str
    connector: str
    connector_customer_id: str | None
    payment_method_type: str
    payment_method_subtype: str
    tokens: tuple[PaymentToken, ...] = Field(min_length=1)
    billing: Address | None = None
    billing_started_at: datetime | None = None
    transaction_created_at: datetime | None = None
    failed_connector_transaction_id: str | None = None
    first_error: ErrorDetails | None = None
    billing_retry_count: int = Field(default=1, ge=0)
    return_url: str | None = None
    retry: RetrySettings
    metadata: dict[str, Any] | None = None
    # The billing connector (e.g. `custombilling`) and where a successful retry is recorded back to it.
    billing_connector_name: str | None = None
    record_back_url: str | None = None


class AttemptSummary(_Frozen):
    """What the payment object shows of the latest attempt."""

    total_retry_count: int
    token: str
    connector_transaction_id: str | None = None
    transmission: ConnectorTransmission = ConnectorTransmission.SUCCEEDED
    error: PaymentError | None = None


def build_payment_object(
    payment: RecoveryPayment,
    *,
    status: IntentStatus,
    modified_at: datetime,
    attempt: AttemptSummary | None,
) -> PaymentObject:
    """The v2 payment object for this recovery, in Hyperswitch's shape (webhook `content.object`)."""
    token = attempt.token if attempt else payment.tokens[0].token
    card = next((t for t in payment.tokens if t.token == token), payment.tokens[0])
    captured = payment.amount if status is IntentStatus.SUCCEEDED else None
    first_error = payment.first_error
    return PaymentObject(
        id=payment.payment_id,
        status=status,
        amount=PaymentAmount(
            order_amount=payment.amount,
            currency=payment.currency,
            net_amount=payment.amount,
            amount_capturable=0,
            amount_captured=captured,
        ),
        customer_id=None,
        connector=payment.connector if attempt else None,
        created=payment.created_at,
        modified_at=modified_at,
        payment_method_data=PaymentMethodDataResponse(billing=None),
        payment_method_type=payment.payment_method_type,
        payment_method_subtype=payment.payment_method_subtype,
        connector_transaction_id=attempt.connector_transaction_id if attempt else None,
        connector_reference_id=attempt.connector_transaction_id if attempt else None,
        merchant_connector_id=payment.payment_connector_id if attempt else None,
        error=attempt.error if attempt else None,
        # Hyperswitch's recovery payments answer `billing: null` (the seed's sample) although the request
        # carried an address; kept so for compatibility. The address stays in the recovery snapshot.
        billing=None,
        connector_token_details=ConnectorTokenDetails(token=token),
        return_url=payment.return_url,
        merchant_reference_id=payment.merchant_reference_id,
        feature_metadata=FeatureMetadata(
            revenue_recovery=RevenueRecoveryMetadata(
                total_retry_count=attempt.total_retry_count if attempt else payment.billing_retry_count,
                payment_connector_transmission=(
                    attempt.transmission if attempt else ConnectorTransmission.UNSUCCESSFUL
                ),
                billing_connector_id=payment.billing_connector_id,
                active_attempt_payment_connector_id=payment.payment_connector_id,
                billing_connector_payment_details=BillingConnectorPaymentDetails(
                    payment_processor_token=token,
                    connector_customer_id=card.connector_customer_id or payment.connector_customer_id,
                ),
                payment_method_type=payment.payment_method_type,
                payment_method_subtype=payment.payment_method_subtype,
                connector=payment.connector,
                billing_connector_payment_method_details=BillingConnectorPaymentMethodDetails(
                    value=CardNetworkDetails(card_network=card.card_network, card_issuer=card.card_issuer)
                ),
                invoice_next_billing_time=None,
                invoice_billing_started_at_time=payment.billing_started_at,
                first_payment_attempt_pg_error_code=first_error.code if first_error else None,
                first_payment_attempt_network_decline_code=(first_error.network_decline_code if first_error else None),
                first_payment_attempt_network_advice_code=(first_error.network_advice_code if first_error else None),
            )
        ),
    )
