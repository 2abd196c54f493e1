"""Billing systems the executor records a recovered payment back to through their own API, and how their
answers read. Pure: the calls are the adapters' (adapters/billing_systems.py).

- Stripe Billing: `POST /v1/invoices/{id}/pay` with `paid_out_of_band=true` (https://docs.stripe.com/api/invoices/pay).
- Chargebee: `POST {site}/api/v2/invoices/{id}/record_payment`
  (https://apidocs.chargebee.com/docs/api/invoices#record_an_invoice_payment); the site's base URL is the
  account's `record_back_url`. A dispute lost on the payment: `POST {site}/api/v2/transactions/{id}/record_refund`
  (https://apidocs.chargebee.com/docs/api/transactions/record-an-offline-refund) of the payment's transaction,
  found, when its record back kept no id, in `GET {site}/api/v2/invoices/{id}/payments`.
- Recurly: `PUT {base}/invoices/{id}/mark_successful`, no body
  (https://docs.recurly.com/recurly-subscriptions/v2021-02-25/reference/mark_invoice_successful); the API base is
  the account's `record_back_url`, else `RECURLY_API_BASE` (an EU site sets `https://v3.eu.recurly.com`).
"""

from __future__ import annotations

from typing import Any

from recovery_contracts.messages import DisputeRefund
from recovery_contracts.recovery import RecoveryPayment

from .ports import RecordBackAnswer

STRIPEBILLING = "stripebilling"
CHARGEBEE = "chargebee"
RECURLY = "recurly"
# Recorded back through the billing system's API (the others through `record_back_url`, if set).
BILLING_SYSTEMS = frozenset({STRIPEBILLING, CHARGEBEE, RECURLY})
# Where a dispute lost on a recorded payment is recorded too, as a refund of the payment's transaction: Chargebee
# only. Stripe Billing's record marks the invoice paid out of band and Recurly's marks it successful: neither leaves a
# payment transaction a refund could name (a credit note would be a document of its own, the merchant's to decide),
# and custombilling's InvoiceRecordBack has no refund. There the merchant records it, told by `dispute_lost`.
REFUNDS_RECORDED_AT = frozenset({CHARGEBEE})
# Chargebee's payment method for a refund that is a chargeback, and the longest `comment` it takes.
CHARGEBEE_CHARGEBACK = "chargeback"
CHARGEBEE_COMMENT_CHARS = 300


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
    """Chargebee's answer to `record_payment` or `record_refund`: recorded (with the transaction it made), or
    refused as `invalid_state_for_request`: the invoice no longer due, the transaction refunded already (an earlier
    try whose answer was lost, or recorded meanwhile): nothing left to record either way. Chargebee documents no
    code of its own for "refunded already", so the refund reads this one, as the payment does."""
    if 200 <= status_code < 300:
        transaction = body.get("transaction")
        made = transaction.get("id") if isinstance(transaction, dict) else None
        return RecordBackAnswer(accepted=True, status_code=status_code, transaction_id=made or None)
    if status_code == 400 and body.get("api_error_code") == "invalid_state_for_request":
        return RecordBackAnswer(accepted=True, status_code=status_code)
    return chargebee_refusal(status_code, body)


def chargebee_refusal(status_code: int, body: dict[str, Any]) -> RecordBackAnswer:
    """A Chargebee error answer (`{message, type, api_error_code}`) as a refusal, tried again."""
    message = f"{body.get('api_error_code') or 'error'}: {body.get('message') or ''}"
    return RecordBackAnswer(accepted=False, status_code=status_code, error=message[:500])


def chargebee_refund_form(refund: DisputeRefund) -> dict[str, str]:
    """Chargebee's `record_refund` form for a lost dispute: the amount taken back, as a chargeback, on the day the
    dispute was lost, with the dispute named in the comment. The same on every try (its idempotency key's window
    compares the body)."""
    comment = f"Dispute {refund.dispute_id} lost" + (f": {refund.reason}" if refund.reason else "")
    return {
        "amount": str(refund.amount),
        "payment_method": CHARGEBEE_CHARGEBACK,
        "date": str(int(refund.lost_at.timestamp())),
        "comment": comment[:CHARGEBEE_COMMENT_CHARS],
    }


def chargebee_payment_in(page: dict[str, Any], connector_transaction_id: str) -> str | None:
    """The id of the successful payment transaction for the connector's charge `connector_transaction_id` (its
    `id_at_gateway`) in a page of `GET /invoices/{id}/payments` (`{"list": [{"transaction": {...}}, ...]}`)."""
    listed = page.get("list")
    for entry in listed if isinstance(listed, list) else []:
        transaction = entry.get("transaction") if isinstance(entry, dict) else None
        if not isinstance(transaction, dict):
            continue
        if (
            transaction.get("id_at_gateway") == connector_transaction_id
            and transaction.get("type", "payment") == "payment"
            and transaction.get("status", "success") == "success"
            and isinstance(transaction.get("id"), str)
        ):
            return str(transaction["id"])
    return None


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
