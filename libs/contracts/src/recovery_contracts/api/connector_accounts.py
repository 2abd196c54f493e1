"""`/v2/connector-accounts`: payment processor and billing processor accounts, in Hyperswitch v2 names.

Both seed bodies (payment-connector-account.json, billing-connector-account.json) parse as they are.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from recovery_contracts.api.currency import Currency
from recovery_contracts.api.fields import (
    Count,
    ExternalReference,
    Flag,
    HttpUrl,
    Identifier,
    Metadata,
    RequestBody,
    ResponseBody,
    Secret,
)
from recovery_contracts.api.masking import mask_secret
from recovery_contracts.api.payment_methods import (
    CardNetwork,
    PaymentExperience,
    PaymentMethod,
    PaymentMethodSubtype,
)


class ConnectorType(StrEnum):
    """Hyperswitch's `ConnectorType`."""

    PAYMENT_PROCESSOR = "payment_processor"
    PAYMENT_VAS = "payment_vas"
    FIN_OPERATIONS = "fin_operations"
    FIZ_OPERATIONS = "fiz_operations"
    NETWORKS = "networks"
    BANKING_ENTITIES = "banking_entities"
    NON_BANKING_FINANCE = "non_banking_finance"
    PAYOUT_PROCESSOR = "payout_processor"
    PAYMENT_METHOD_AUTH = "payment_method_auth"
    AUTHENTICATION_PROCESSOR = "authentication_processor"
    TAX_PROCESSOR = "tax_processor"
    BILLING_PROCESSOR = "billing_processor"
    VAULT_PROCESSOR = "vault_processor"


class ConnectorName(StrEnum):
    """Connectors this system can hold accounts for: the payment processors it charges through and the billing
    systems that feed it failed invoices. Other Hyperswitch connector names are rejected until supported."""

    STRIPE = "stripe"
    CUSTOMBILLING = "custombilling"
    CHARGEBEE = "chargebee"
    STRIPEBILLING = "stripebilling"
    RECURLY = "recurly"


PAYMENT_CONNECTORS = frozenset({ConnectorName.STRIPE})
BILLING_CONNECTORS = frozenset(
    {ConnectorName.CUSTOMBILLING, ConnectorName.CHARGEBEE, ConnectorName.STRIPEBILLING, ConnectorName.RECURLY}
)


class ConnectorStatus(StrEnum):
    INACTIVE = "inactive"
    ACTIVE = "active"


# --- connector_account_details: Hyperswitch's ConnectorAuthType, tagged by `auth_type` ---------------------


class HeaderKey(RequestBody):
    auth_type: Literal["HeaderKey"]
    api_key: Secret


class BodyKey(RequestBody):
    auth_type: Literal["BodyKey"]
    api_key: Secret
    key1: Secret


class SignatureKey(RequestBody):
    auth_type: Literal["SignatureKey"]
    api_key: Secret
    key1: Secret
    api_secret: Secret


class MultiAuthKey(RequestBody):
    auth_type: Literal["MultiAuthKey"]
    api_key: Secret
    key1: Secret
    api_secret: Secret
    key2: Secret


class CertificateAuth(RequestBody):
    auth_type: Literal["CertificateAuth"]
    certificate: Annotated[str, Field(max_length=16_384)]
    private_key: Annotated[str, Field(max_length=16_384)]


class NoKey(RequestBody):
    auth_type: Literal["NoKey"]


class TemporaryAuth(RequestBody):
    auth_type: Literal["TemporaryAuth"]


ConnectorAuth = Annotated[
    HeaderKey | BodyKey | SignatureKey | MultiAuthKey | CertificateAuth | NoKey | TemporaryAuth,
    Field(discriminator="auth_type"),
]

_SECRET_FIELDS = ("api_key", "key1", "api_secret", "key2", "certificate", "private_key")


def mask_connector_auth(details: ConnectorAuth) -> ConnectorAuth:
    """The account details as a response shows them: every credential masked (`sk******tX`)."""
    masked = {
        name: mask_secret(value) for name in _SECRET_FIELDS if isinstance(value := getattr(details, name, None), str)
    }
    return details.model_copy(update=masked)


# --- payment_methods_enabled --------------------------------------------------------------------------------


_CurrencyList = Annotated[list[Currency], Field(max_length=200)]
_CountryList = Annotated[list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]], Field(max_length=300)]


class AcceptedCurrencies(RequestBody):
    type: Literal["enable_only", "disable_only", "all_accepted"]
    list: _CurrencyList | None = None


class AcceptedCountries(RequestBody):
    type: Literal["enable_only", "disable_only", "all_accepted"]
    list: _CountryList | None = None


class PaymentMethodSubtypeConfig(RequestBody):
    """One entry of `payment_method_subtypes` (Hyperswitch's `RequestPaymentMethodTypes`)."""

    payment_method_subtype: PaymentMethodSubtype
    payment_experience: PaymentExperience | None = None
    card_networks: Annotated[list[CardNetwork], Field(max_length=20)] | None = None
    accepted_currencies: AcceptedCurrencies | None = None
    accepted_countries: AcceptedCountries | None = None
    # -1 means "no minimum" in Hyperswitch's dashboard output (the seed sends it).
    minimum_amount: Annotated[int, Field(strict=True, ge=-1, le=10**15)] | None = None
    maximum_amount: Annotated[int, Field(strict=True, ge=-1, le=10**15)] | None = None
    recurring_enabled: Flag | None = None
    installment_payment_enabled: Flag | None = None


class PaymentMethodsEnabled(RequestBody):
    payment_method_type: PaymentMethod
    payment_method_subtypes: Annotated[list[PaymentMethodSubtypeConfig], Field(max_length=50)] | None = None


# --- webhooks, feature metadata -----------------------------------------------------------------------------


class ConnectorWebhookDetails(RequestBody):
    merchant_secret: Secret
    additional_secret: Secret | None = None


class SwitchPaymentMethodConfig(RequestBody):
    retry_threshold: Count
    time_threshold_after_creation: Annotated[int, Field(strict=True, ge=0, le=31_536_000)]


class RevenueRecoveryConfig(RequestBody):
    """`feature_metadata.revenue_recovery` of a billing connector account.

    `record_back_url`, `retry_ladder_seconds` and the jitter bounds are this project's extensions (Hyperswitch
    has none of them; its jitter is a fixed 1..300 s).
    """

    max_retry_count: Annotated[int, Field(strict=True, ge=0, le=1000)]
    billing_connector_retry_threshold: Annotated[int, Field(strict=True, ge=0, le=1000)]
    # payment connector account id -> the account's reference at the billing system (values unique).
    billing_account_reference: Annotated[dict[Identifier, ExternalReference], Field(max_length=50)]
    switch_payment_method_config: SwitchPaymentMethodConfig | None = None
    # Extension: where the executor records a successful retry back: the `custombilling` callback, or the billing
    # system's API base (Chargebee's site, Recurly's API: docs/billing-connectors.md).
    record_back_url: HttpUrl | None = None
    # Extension: a custom retry ladder replacing the cascading default (seconds after the previous attempt).
    retry_ladder_seconds: (
        Annotated[list[Annotated[int, Field(strict=True, ge=1, le=2_592_000)]], Field(min_length=1, max_length=50)]
        | None
    ) = None
    # Extension: the random delay added to every planned retry (Hyperswitch: 1..300 s), in seconds.
    min_jitter_seconds: Annotated[int, Field(strict=True, ge=0, le=86_400)] | None = None
    max_jitter_seconds: Annotated[int, Field(strict=True, ge=0, le=86_400)] | None = None

    @model_validator(mode="after")
    def _jitter_bounds(self) -> RevenueRecoveryConfig:
        low, high = self.min_jitter_seconds, self.max_jitter_seconds
        if low is not None and high is not None and low > high:
            raise ValueError("min_jitter_seconds must not exceed max_jitter_seconds")
        return self

    @model_validator(mode="after")
    def _references_unique(self) -> RevenueRecoveryConfig:
        values = list(self.billing_account_reference.values())
        if len(values) != len(set(values)):
            raise ValueError("billing_account_reference values must be unique")
        return self


class RequestPace(RequestBody):
    """`feature_metadata.request_pace` of a payment connector account (this project's extension): at most
    `requests_per_second` charges and syncs a second through the account's key, every executor together, `burst`
    of them at once after a quiet spell (docs/retry-engine.md, "Pacing the connector"). Stripe allows 100 a second
    in live mode and 25 in its sandbox, over every client of the account."""

    requests_per_second: Annotated[float, Field(gt=0, le=10_000)]
    burst: Annotated[int, Field(strict=True, ge=1, le=1_000)] = 10


class ConnectorFeatureMetadata(RequestBody):
    revenue_recovery: RevenueRecoveryConfig | None = None
    # Extension: the pace of a payment connector account (unset: the executors' CONNECTOR_REQUESTS_PER_SECOND).
    request_pace: RequestPace | None = None


# --- the account --------------------------------------------------------------------------------------------


def _check_pace_on_a_payment_processor(settings: _ConnectorAccountSettings) -> None:
    pace = settings.feature_metadata.request_pace if settings.feature_metadata else None
    if pace is not None and settings.connector_type is not ConnectorType.PAYMENT_PROCESSOR:
        raise ValueError("feature_metadata.request_pace applies to payment processors only (it paces charges)")


def _check_type_and_name(connector_type: ConnectorType | None, name: ConnectorName | None) -> None:
    if connector_type is ConnectorType.BILLING_PROCESSOR and name not in BILLING_CONNECTORS:
        raise ValueError(f"connector_name {name} is not a billing processor")
    if connector_type is ConnectorType.PAYMENT_PROCESSOR and name not in PAYMENT_CONNECTORS:
        raise ValueError(f"connector_name {name} is not a payment processor")


class _ConnectorAccountSettings(RequestBody):
    """What a connector account's creation sets and an update may change."""

    connector_type: ConnectorType
    connector_label: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    connector_account_details: ConnectorAuth | None = None
    payment_methods_enabled: Annotated[list[PaymentMethodsEnabled], Field(max_length=20)] | None = None
    connector_webhook_details: ConnectorWebhookDetails | None = None
    metadata: Metadata | None = None
    frm_configs: Annotated[list[Metadata], Field(max_length=20)] | None = None
    disabled: Flag | None = None
    status: ConnectorStatus | None = None
    feature_metadata: ConnectorFeatureMetadata | None = None

    @model_validator(mode="after")
    def _pace_on_a_payment_processor(self) -> _ConnectorAccountSettings:
        _check_pace_on_a_payment_processor(self)
        return self


class ConnectorAccountUpdate(_ConnectorAccountSettings):
    """`PUT /v2/connector-accounts/{id}`: type, name and profile are fixed at creation (`connector_type` must be
    the account's). A field sent replaces the account's whole; one left out (or null) keeps it."""

    # Hyperswitch's v2 update body carries the merchant's id (it requires it); optional here, and when sent it
    # must be the caller's merchant.
    merchant_id: Identifier | None = None


class ConnectorAccountCreate(_ConnectorAccountSettings):
    """`POST /v2/connector-accounts`: what an update may set, and the name and profile, fixed from then on."""

    connector_name: ConnectorName
    profile_id: Identifier

    @model_validator(mode="after")
    def _name_fits_type(self) -> ConnectorAccountCreate:
        _check_type_and_name(self.connector_type, self.connector_name)
        return self


class ConnectorAccountResponse(ResponseBody):
    """The account echoed back with credentials masked (`mask_connector_auth`, `mask_secret`)."""

    connector_type: ConnectorType
    connector_name: ConnectorName
    connector_label: str | None = None
    id: Identifier
    profile_id: Identifier
    connector_account_details: ConnectorAuth | None = None
    payment_methods_enabled: list[PaymentMethodsEnabled] | None = None
    connector_webhook_details: ConnectorWebhookDetails | None = None
    metadata: dict[str, Any] | None = None
    frm_configs: list[dict[str, Any]] | None = None
    disabled: bool = False
    status: ConnectorStatus = ConnectorStatus.ACTIVE
    feature_metadata: ConnectorFeatureMetadata | None = None

    @classmethod
    def from_create(
        cls,
        body: ConnectorAccountCreate,
        *,
        id: str,
        connector_label: str | None = None,
    ) -> ConnectorAccountResponse:
        """The response for an account created from `body`, with every secret masked."""
        details = mask_connector_auth(body.connector_account_details) if body.connector_account_details else None
        webhook = body.connector_webhook_details
        if webhook is not None:
            webhook = ConnectorWebhookDetails(
                merchant_secret=mask_secret(webhook.merchant_secret),
                additional_secret=mask_secret(webhook.additional_secret) if webhook.additional_secret else None,
            )
        return cls(
            connector_type=body.connector_type,
            connector_name=body.connector_name,
            connector_label=connector_label or body.connector_label,
            id=id,
            profile_id=body.profile_id,
            connector_account_details=details,
            payment_methods_enabled=body.payment_methods_enabled,
            connector_webhook_details=webhook,
            metadata=body.metadata,
            frm_configs=body.frm_configs,
            disabled=bool(body.disabled),
            status=body.status or ConnectorStatus.ACTIVE,
            feature_metadata=body.feature_metadata,
        )
