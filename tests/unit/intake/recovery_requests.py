"""Recovery requests for intake's unit tests: the seed's body, and `recovery.requested` around it."""

from __future__ import annotations

from typing import Any

from recovery_cli.scenario import RECOVERY_REQUEST, seed_body
from recovery_contracts.api.recovery import RecoveryPaymentsCreate
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import RecoveryRequested

from .fakes import BILLING_ACCOUNT, MERCHANT, PAYMENT_ACCOUNT, PROFILE

REFERENCE = "test_ffhgfewf3476f5"


def recovery_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = seed_body(
        RECOVERY_REQUEST,
        customer_id_from_stripe="cus_test",
        payment_method_id_from_stripe="pm_first",
        billing_mca=BILLING_ACCOUNT,
        payment_mca=PAYMENT_ACCOUNT,
    )
    body.update(overrides)
    return body


def with_token(token: str, connector_transaction_id: str) -> dict[str, Any]:
    """The same invoice failed again in the billing system, with another saved card."""
    body = recovery_body(connector_transaction_id=connector_transaction_id)
    body["payment_method_data"]["primary_processor_payment_method_token"] = token
    return body


def requested(
    body: dict[str, Any] | None = None, *, merchant_id: str | None = MERCHANT, profile_id: str | None = PROFILE
) -> Envelope[RecoveryRequested]:
    return envelope_for(
        MessageType.RECOVERY_REQUESTED,
        RecoveryRequested(request=RecoveryPaymentsCreate.model_validate(body or recovery_body())),
        correlation_id=REFERENCE,
        merchant_id=merchant_id,
        profile_id=profile_id,
    )
