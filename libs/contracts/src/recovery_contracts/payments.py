"""The v2 payment object (Hyperswitch PaymentsResponse) that webhooks and the payments API return.

Field order is the wire order of Hyperswitch's webhook body (see the seed's webhook-sample.json): pydantic
serialises fields in declaration order, so do not reorder them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recovery_contracts.timestamps import UtcMillis


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PROCESSING = "processing"
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CUSTOMER_ACTION = "requires_customer_action"
    REQUIRES_CAPTURE = "requires_capture"
    PARTIALLY_CAPTURED = "partially_captured"
    CONFLICTED = "conflicted"


class ConnectorTransmission(StrEnum):
    SUCCEEDED = "ConnectorCallSucceeded"
    UNSUCCESSFUL = "ConnectorCallUnsuccessful"


class AddressDetails(_Model):
    city: str | None = Field(default=None, max_length=128)
    country: str | None = Field(default=None, min_length=2, max_length=2)
    line1: str | None = Field(default=None, max_length=256)
    line2: str | None = Field(default=None, max_length=256)
    line3: str | None = Field(default=None, max_length=256)
    zip: str | None = Field(default=None, max_length=32)
    state: str | None = Field(default=None, max_length=128)
    first_name: str | None = Field(default=None, max_length=256)
    last_name: str | None = Field(default=None, max_length=256)
    origin_zip: str | None = Field(default=None, max_length=32)


class PhoneDetails(_Model):
    number: str | None = Field(default=None, max_length=32)
    country_code: str | None = Field(default=None, max_length=8)


class Address(_Model):
    address: AddressDetails | None = None
    phone: PhoneDetails | None = None
    email: str | None = Field(default=None, max_length=320)


class ErrorDetails(_Model):
    """A connector error as the billing system reported it, or as a retry received it."""

    code: str = Field(max_length=256)
    message: str = Field(max_length=1024)
    network_advice_code: str | None = Field(default=None, max_length=16)
    network_decline_code: str | None = Field(default=None, max_length=16)
    network_error_message: str | None = Field(default=None, max_length=1024)


# The amount as the intent holds it: Hyperswitch's `AmountDetailsResponse` (`amount_details` of the recovery
# intent), and the first fields of a payment's `amount`.
class AmountDetailsResponse(_Model):
    order_amount: int
    currency: str
    shipping_cost: int | None = None
    order_tax_amount: int | None = None
    external_tax_calculation: str = "skip"
    surcharge_calculation: str = "skip"
    surcharge_amount: int | None = None
    tax_on_surcharge: int | None = None


# A payment's `amount` (Hyperswitch's `PaymentAmountDetailsResponse`): the intent's amount details, then what the
# attempts made of them (pydantic serialises the inherited fields first, which is the wire order).
class PaymentAmount(AmountDetailsResponse):
    net_amount: int
    amount_to_capture: int | None = None
    amount_capturable: int = 0
    amount_captured: int | None = None


class PaymentMethodDataResponse(_Model):
    billing: Address | None = None


class ConnectorTokenDetails(_Model):
    token: str | None
    connector_token_request_reference_id: str | None = None


class BillingConnectorPaymentDetails(_Model):
    payment_processor_token: str
    connector_customer_id: str | None


class CardNetworkDetails(_Model):
    card_network: str | None
    card_issuer: str | None


class BillingConnectorPaymentMethodDetails(_Model):
    type: Literal["card"] = "card"
    value: CardNetworkDetails


class RevenueRecoveryMetadata(_Model):
    total_retry_count: int
    payment_connector_transmission: ConnectorTransmission
    billing_connector_id: str
    active_attempt_payment_connector_id: str | None
    billing_connector_payment_details: BillingConnectorPaymentDetails
    payment_method_type: str
    payment_method_subtype: str
    connector: str
    billing_connector_payment_method_details: BillingConnectorPaymentMethodDetails | None
    invoice_next_billing_time: UtcMillis | None = None
    invoice_billing_started_at_time: UtcMillis | None = None
    first_payment_attempt_pg_error_code: str | None = None
    first_payment_attempt_network_decline_code: str | None = None
    first_payment_attempt_network_advice_code: str | None = None


class FeatureMetadata(_Model):
    redirect_response: Any | None = None
    search_tags: Any | None = None
    apple_pay_recurring_details: Any | None = None
    revenue_recovery: RevenueRecoveryMetadata | None = None


class PaymentError(_Model):
    code: str
    message: str
    unified_code: str | None = None
    unified_message: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    network_error_message: str | None = None


class PaymentObject(_Model):
    """`content.object` of a payment webhook, and the body of `GET /v2/payments/{id}`."""

    id: str
    status: IntentStatus
    amount: PaymentAmount
    customer_id: str | None = None
    connector: str | None
    created: UtcMillis
    modified_at: UtcMillis
    payment_method_data: PaymentMethodDataResponse | None
    payment_method_type: str
    payment_method_subtype: str
    connector_transaction_id: str | None
    connector_reference_id: str | None
    merchant_connector_id: str | None
    browser_info: Any | None = None
    error: PaymentError | None = None
    shipping: Address | None = None
    billing: Address | None = None
    attempts: list[Any] | None = None
    connector_token_details: ConnectorTokenDetails | None
    payment_method_id: str | None = None
    next_action: Any | None = None
    return_url: str | None = None
    authentication_type: str | None = "no_three_ds"
    authentication_type_applied: str | None = "no_three_ds"
    is_iframe_redirection_enabled: bool | None = None
    merchant_reference_id: str | None
    raw_connector_response: str | None = None
    feature_metadata: FeatureMetadata | None
