"""Billing systems the executor records a recovered payment back to through their own API, and how their
answers read. Pure: the calls are the adapters' (adapters/billing_systems.py).

- Stripe Billing: `POST /v1/invoices/{id}/pay` with `paid_out_of_band=true` (https://docs.stripe.com/api/invoices/pay).
- Chargebee: `POST /api/v2/invoices/{id}/record_payment` (https://apidocs.chargebee.com/docs/api/invoices#record_an_invoice_payment).
"""

from __future__ import annotations

from typing import Any

from recovery_contracts.recovery import RecoveryPayment

from .ports import RecordBackAnswer

STRIPEBILLING = "stripebilling"
CHARGEBEE = "chargebee"
# Recorded back through the billing system's API (the others through `record_back_url`, if set).
BILLING_SYSTEMS = frozenset({STRIPEBILLING, CHARGEBEE})


def records_back(payment: RecoveryPayment) -> bool:
    """Whether a successful retry of `payment` is recorded back: to its billing system, or to its callback."""
    return payment.billing_connector_name in BILLING_SYSTEMS or bool(payment.record_back_url)


def billing_system_of(payment: RecoveryPayment) -> str | None:
    name = payment.billing_connector_name
    return name if name in BILLING_SYSTEMS else None


def stripe_pay_answer(status_code: int, body: dict[str, Any]) -> RecordBackAnswer:
    """Stripe's answer to `pay` (paid_out_of_band): paid, or already paid (an earlier try whose answer was lost,
    or paid elsewhere): nothing left to record either way. Other 4xx are kept and retried as any refusal."""
    if 200 <= status_code < 300:
        return RecordBackAnswer(accepted=True, status_code=status_code)
    found = body.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    if status_code == 400 and error.get("code") == "invoice_already_paid":
        return RecordBackAnswer(accepted=True, status_code=status_code)
    message = f"{error.get('type') or 'error'}: {error.get('message') or ''}".strip()
    return RecordBackAnswer(accepted=False, status_code=status_code, error=message[:500])
