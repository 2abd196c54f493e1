"""`POST /v2/payments/recovery`: a failed invoice payment from the billing system (Hyperswitch v2 body).

The same model validates the `recovery.requested` broker command (`recovery_contracts.messages`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AliasChoices, BeforeValidator, Field, WithJsonSchema

from recovery_contracts.api.currency import Currency
from recovery_contracts.api.fields import (
    ExternalReference,
    Identifier,
    Metadata,
    MinorUnit,
    RequestBody,
    ResponseBody,
)
from recovery_contracts.api.payment_methods import CardNetwork, PaymentMethod, PaymentMethodSubtype
from recovery_contracts.payments import Address, ErrorDetails, IntentStatus
from recovery_contracts.timestamps import UtcMillis


class AttemptStatus(StrEnum):
    """Hyperswitch's `AttemptStatus`, snake_case on the wire."""

    STARTED = "started"
    AUTHENTICATION_FAILED = "authentication_failed"
    ROUTER_DECLINED = "router_declined"
    AUTHENTICATION_PENDING = "authentication_pending"
    AUTHENTICATION_SUCCESSFUL = "authentication_successful"
    AUTHORIZED = "authorized"
    AUTHORIZATION_FAILED = "authorization_failed"
    CHARGED = "charged"
    AUTHORIZING = "authorizing"
    COD_INITIATED = "cod_initiated"
    VOIDED = "voided"
    VOID_INITIATED = "void_initiated"
    CAPTURE_INITIATED = "capture_initiated"
    CAPTURE_FAILED = "capture_failed"
    VOID_FAILED = "void_failed"
    AUTO_REFUNDED = "auto_refunded"
    PARTIAL_CHARGED = "partial_charged"
    PARTIAL_CHARGED_AND_CHARGEABLE = "partial_charged_and_chargeable"
    UNRESOLVED = "unresolved"
    PENDING = "pending"
    FAILURE = "failure"
    PAYMENT_METHOD_AWAITED = "payment_method_awaited"
    CONFIRMATION_AWAITED = "confirmation_awaited"
    DEVICE_DATA_COLLECTION_PENDING = "device_data_collection_pending"
    INTEGRITY_FAILURE = "integrity_failure"
    EXPIRED = "expired"


class RecoveryAttemptStatus(StrEnum):
    """What an attempt status means to the recovery flow."""

    SUCCEEDED = "succeeded"
    PROCESSING = "processing"
    FAILED = "failed"
    INVALID = "invalid"


_A = AttemptStatus
_RECOVERY_STATUS: dict[AttemptStatus, RecoveryAttemptStatus] = {
    **dict.fromkeys(
        (_A.AUTHORIZED, _A.CHARGED, _A.PARTIAL_CHARGED, _A.PARTIAL_CHARGED_AND_CHARGEABLE),
        RecoveryAttemptStatus.SUCCEEDED,
    ),
    **dict.fromkeys(
        (
            _A.STARTED,
            _A.PENDING,
            _A.AUTHORIZING,
            _A.AUTHENTICATION_PENDING,
            _A.AUTHENTICATION_SUCCESSFUL,
            _A.COD_INITIATED,
            _A.CAPTURE_INITIATED,
            _A.VOID_INITIATED,
        ),
        RecoveryAttemptStatus.PROCESSING,
    ),
    **dict.fromkeys(
        (
            _A.FAILURE,
            _A.AUTHORIZATION_FAILED,
            _A.ROUTER_DECLINED,
            _A.CAPTURE_FAILED,
            _A.AUTHENTICATION_FAILED,
            _A.VOID_FAILED,
        ),
        RecoveryAttemptStatus.FAILED,
    ),
}


def recovery_status_of(attempt_status: AttemptStatus) -> RecoveryAttemptStatus:
    """Hyperswitch's grouping of attempt statuses for revenue recovery; anything not listed is `invalid`."""
    return _RECOVERY_STATUS.get(attempt_status, RecoveryAttemptStatus.INVALID)


class RecoveryAction(StrEnum):
    SCHEDULE_FAILED_PAYMENT = "schedule_failed_payment"
    CANCEL_INVOICE = "cancel_invoice"
    SUCCESS_PAYMENT_EXTERNAL = "success_payment_external"
    PENDING_PAYMENT = "pending_payment"
    NO_ACTION = "no_action"
    INVALID_ACTION = "invalid_action"


class TaxCalculation(StrEnum):
    SKIP = "skip"
    CALCULATE = "calculate"


class AmountDetails(RequestBody):
    order_amount: MinorUnit
    currency: Currency
    shipping_cost: MinorUnit | None = None
    order_tax_amount: MinorUnit | None = None
    skip_external_tax_calculation: TaxCalculation | None = None
    skip_surcharge_calculation: TaxCalculation | None = None
    surcharge_amount: MinorUnit | None = None
    tax_on_surcharge: MinorUnit | None = None


def _last_four_as_text(value: object) -> object:
    # The seed (and some billing systems) send it as a JSON number: 1997 -> "1997", 42 -> "0042".
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9999:
        return f"{value:04d}"
    return value


LastFourDigits = Annotated[
    str,
    Field(pattern=r"^[0-9]{4}$"),
    BeforeValidator(_last_four_as_text),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": "^[0-9]{4}$"},
                {"type": "integer", "minimum": 0, "maximum": 9999},
            ],
            "description": "last four card digits; a JSON number is accepted and kept as 4-digit text",
        },
        mode="validation",
    ),
]


class AdditionalPaymentMethodInfo(RequestBody):
    card_exp_month: Annotated[str, Field(pattern=r"^(0?[1-9]|1[0-2])$")] | None = None
    card_exp_year: Annotated[str, Field(pattern=r"^([0-9]{2}|[0-9]{4})$")] | None = None
    last_four_digits: LastFourDigits | None = None
    card_network: CardNetwork | None = None
    card_issuer: Annotated[str, Field(max_length=255)] | None = None
    card_type: Annotated[str, Field(max_length=32)] | None = None


class RecoveryPaymentMethodData(RequestBody):
    primary_processor_payment_method_token: ExternalReference
    additional_payment_method_info: AdditionalPaymentMethodInfo | None = None


class RecoveryPaymentsCreate(RequestBody):
    """Body of `POST /v2/payments/recovery`; one payment intent per merchant and `merchant_reference_id`."""

    amount_details: AmountDetails
    merchant_reference_id: ExternalReference
    connector_transaction_id: ExternalReference | None = None
    connector_customer_id: ExternalReference
    error: ErrorDetails | None = None
    billing: Address | None = None
    payment_method_type: PaymentMethod
    payment_method_sub_type: PaymentMethodSubtype
    # Later Hyperswitch versions call it `payment_method_metadata`; both names are accepted.
    payment_method_data: RecoveryPaymentMethodData = Field(
        validation_alias=AliasChoices("payment_method_data", "payment_method_metadata")
    )
    billing_started_at: UtcMillis | None = None
    transaction_created_at: UtcMillis | None = None
    # Later Hyperswitch versions call it `transaction_status`; both names are accepted.
    attempt_status: AttemptStatus = Field(validation_alias=AliasChoices("attempt_status", "transaction_status"))
    action: RecoveryAction
    billing_merchant_connector_id: Identifier
    payment_merchant_connector_id: Identifier
    metadata: Metadata | None = None

    @property
    def recovery_status(self) -> RecoveryAttemptStatus:
        return recovery_status_of(self.attempt_status)


class RecoveryPaymentsResponse(ResponseBody):
    id: Identifier
    intent_status: IntentStatus
    merchant_reference_id: str
