"""Billing systems the executor records a recovered payment back to through their own API, and how their
answers read. Pure: the calls are the adapters' (adapters/billing_systems.py).

- Stripe Billing: `POST /v1/invoices/{id}/pay` with `paid_out_of_band=true` (https://docs.stripe.com/api/invoices/pay).
- Chargebee: `POST {site}/api/v2/invoices/{id}/record_payment`
  (https://apidocs.chargebee.com/docs/api/invoices#record_an_invoice_payment); the site's base URL is the
  account's `record_back_url`.
- Recurly: `PUT {base}/invoices/{id}/mark_successful`, no body
  (https://docs.recurly.com/recurly-subscriptions/v2021-02-25/reference/mark_invoice_successful); the API base is
  the account's `record_back_url`, else `RECURLY_API_BASE` (an EU site sets `https://v3.eu.recurly.com`).
"""

from __future__ import annotations

from typing import Any

from recovery_contracts.recovery import RecoveryPayment

from .ports import RecordBackAnswer

STRIPEBILLING = "stripebilling"
CHARGEBEE = "chargebee"
RECURLY = "recurly"
# Recorded back through the billing system's API (the others through `record_back_url`, if set).
BILLING_SYSTEMS = frozenset({STRIPEBILLING, CHARGEBEE, RECURLY})


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
    error = _error_object(body)
    if status_code == 400 and error.get("code") == "invoice_already_paid":
        return RecordBackAnswer(accepted=True, status_code=status_code)
    message = f"{error.get('type') or 'error'}: {error.get('message') or ''}".strip()
    return RecordBackAnswer(accepted=False, status_code=status_code, error=message[:500])


def chargebee_record_payment_form(amount: int, connector_transaction_id: str | None) -> dict[str, str]:
    """Chargebee's `record_payment` form: the recovered charge, by card, succeeded."""
    form = {"transaction[amount]": str(amount), "transaction[payment_method]": "card", "transaction[status]": "success"}
    if connector_transaction_id:
        form["transaction[id_at_gateway]"] = connector_transaction_id
    return form


def chargebee_answer(status_code: int, body: dict[str, Any]) -> RecordBackAnswer:
    """Chargebee's answer to `record_payment`: recorded, or the invoice no longer due (an earlier try whose
    answer was lost, or paid meanwhile): nothing left to record either way."""
    if 200 <= status_code < 300:
        return RecordBackAnswer(accepted=True, status_code=status_code)
    if status_code == 400 and body.get("api_error_code") == "invalid_state_for_request":
        return RecordBackAnswer(accepted=True, status_code=status_code)
    message = f"{body.get('api_error_code') or 'error'}: {body.get('message') or ''}"
    return RecordBackAnswer(accepted=False, status_code=status_code, error=message[:500])


def recurly_answer(status_code: int, body: dict[str, Any]) -> RecordBackAnswer:
    """Recurly's answer to `mark_successful`: marked paid, or refused as an `invalid_transition` because the
    invoice is paid already (an earlier try whose answer was lost, or paid meanwhile): nothing left either way."""
    if 200 <= status_code < 300:
        return RecordBackAnswer(accepted=True, status_code=status_code)
    error = _error_object(body)
    if status_code == 422 and error.get("type") == "invalid_transition":
        return RecordBackAnswer(accepted=True, status_code=status_code)
    message = f"{error.get('type') or 'error'}: {error.get('message') or ''}"
    return RecordBackAnswer(accepted=False, status_code=status_code, error=message[:500])


def _error_object(body: dict[str, Any]) -> dict[str, Any]:
    """Stripe's and Recurly's answers carry their error as `{"error": {"type": ..., "message": ..., ...}}`."""
    found = body.get("error")
    return found if isinstance(found, dict) else {}
