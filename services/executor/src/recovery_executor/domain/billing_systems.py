"""Billing systems the executor records a recovered payment back to through their own API, and how their
answers read. Pure: the calls are the adapters' (adapters/billing_systems.py, adapters/billing_refunds.py).

- Stripe Billing: `POST /v1/invoices/{id}/pay` with `paid_out_of_band=true` (https://docs.stripe.com/api/invoices/pay).
  A dispute lost on the payment: `POST /v1/credit_notes` (https://docs.stripe.com/api/credit_notes/create), a credit
  note of the invoice for the amount taken back, all of it `out_of_band_amount` (credited outside Stripe Billing: by
  the dispute), named by `metadata[dispute_id]`; looked for in `GET /v1/credit_notes?invoice=` before a later try.
- Chargebee: `POST {site}/api/v2/invoices/{id}/record_payment`
  (https://apidocs.chargebee.com/docs/api/invoices#record_an_invoice_payment); the site's base URL is the
  account's `record_back_url`. A dispute lost on the payment: `POST {site}/api/v2/transactions/{id}/record_refund`
  (https://apidocs.chargebee.com/docs/api/transactions/record-an-offline-refund) of the payment's transaction,
  found, when its record back kept no id, in `GET {site}/api/v2/invoices/{id}/payments`; named by
  `reference_number` (the dispute id), and looked for by it (`GET {site}/api/v2/transactions?reference_number[is]=`)
  before a later try.
- Recurly: `PUT {base}/invoices/{id}/mark_successful`, no body
  (https://docs.recurly.com/recurly-subscriptions/v2021-02-25/reference/mark_invoice_successful); the API base is
  the account's `record_back_url`, else `RECURLY_API_BASE` (an EU site sets `https://v3.eu.recurly.com`). A dispute
  lost on the payment: `POST {base}/invoices/{id}/refund`
  (https://docs.recurly.com/recurly-subscriptions/v2021-02-25/reference/refund_invoice), an amount refunded outside
  Recurly (`external_refund`), which makes a credit invoice naming the dispute in its customer notes; looked for among
  `GET {base}/invoices/{id}/related_invoices` (https://docs.recurly.com/recurly-subscriptions/v2021-02-25/reference/
  list_related_invoices) before a later try."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from recovery_contracts.api.currency import major_units
from recovery_contracts.messages import DisputeRefund
from recovery_contracts.recovery import RecoveryPayment

from .ports import RecordBackAnswer

STRIPEBILLING = "stripebilling"
CHARGEBEE = "chargebee"
RECURLY = "recurly"
# Recorded back through the billing system's API (the others through `record_back_url`, if set).
BILLING_SYSTEMS = frozenset({STRIPEBILLING, CHARGEBEE, RECURLY})
# Where a dispute lost on a recorded payment is recorded too: Chargebee (an offline refund of the payment's
# transaction), Stripe Billing (a credit note of the invoice, credited out of band) and Recurly (a refund of the invoice
# settled outside Recurly, `external_refund`). custombilling's InvoiceRecordBack has no refund: there the merchant
# records it, told by `dispute_lost`.
REFUNDS_RECORDED_AT = frozenset({CHARGEBEE, STRIPEBILLING, RECURLY})
# Chargebee's payment method for a refund that is a chargeback, the longest `comment` and `reference_number` it takes.
CHARGEBEE_CHARGEBACK = "chargeback"
CHARGEBEE_COMMENT_CHARS = 300
CHARGEBEE_REFERENCE_CHARS = 100
# The credit note reason a dispute's reason is recorded as: Stripe's credit note reasons are duplicate, fraudulent,
# order_change and product_unsatisfactory; only a fraudulent dispute is one of them by meaning (none is sent else).
STRIPE_CREDIT_NOTE_REASONS = {"fraudulent": "fraudulent"}
STRIPE_MEMO_CHARS = 5000
# Recurly's `external_refund.payment_method` for a chargeback: its values are credit_card, paypal, amazon, roku, ach,
# apple_pay, sepadirectdebit, eft, wire_transfer, money_order, check and other. None is a chargeback (Chargebee has
# one), and the money went back through the card network's dispute, not as a refund the merchant sent to the card or
# by any of the others: `other`, with the dispute named in the description. The description takes 50 characters.
RECURLY_CHARGEBACK = "other"
RECURLY_DESCRIPTION_CHARS = 50


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
    if status_code == 400 and _error_object(body).get("code") == "invoice_already_paid":
        return RecordBackAnswer(accepted=True, status_code=status_code)
    return stripe_refusal(status_code, body)


def stripe_refusal(status_code: int, body: dict[str, Any]) -> RecordBackAnswer:
    """A Stripe error answer (`{"error": {type, message, ...}}`) as a refusal, tried again."""
    error = _error_object(body)
    message = f"{error.get('type') or 'error'}: {error.get('message') or ''}".strip()
    return RecordBackAnswer(accepted=False, status_code=status_code, error=message[:500])


def stripe_credit_note_form(refund: DisputeRefund, invoice_id: str, payment_id: str) -> dict[str, str]:
    """Stripe's credit note for a lost dispute: the amount taken back, all of it credited outside Stripe Billing
    (the dispute took it back), the dispute named in the memo and the metadata. The same on every try (its
    idempotency key's window compares the parameters)."""
    form = {
        "invoice": invoice_id,
        "amount": str(refund.amount),
        "out_of_band_amount": str(refund.amount),
        "memo": _dispute_note(refund)[:STRIPE_MEMO_CHARS],
        "metadata[dispute_id]": refund.dispute_id,
        "metadata[payment_id]": payment_id,
    }
    reason = STRIPE_CREDIT_NOTE_REASONS.get(refund.reason or "")
    if reason is not None:
        form["reason"] = reason
    return form


def stripe_credit_note_answer(status_code: int, body: dict[str, Any]) -> RecordBackAnswer:
    """Stripe's answer to creating the credit note: issued (with its id), or refused and tried again, as Stripe's
    refusal of an amount above what the invoice can still be credited is (no code of its own is documented)."""
    if 200 <= status_code < 300:
        made = body.get("id")
        return RecordBackAnswer(accepted=True, status_code=status_code, transaction_id=made or None)
    return stripe_refusal(status_code, body)


def stripe_credit_note_in(page: dict[str, Any], dispute_id: str) -> str | None:
    """The id of the credit note made for the dispute `dispute_id` (its `metadata[dispute_id]`) in a page of
    `GET /v1/credit_notes?invoice=` (`{"object": "list", "data": [...], "has_more": ...}`)."""
    listed = page.get("data")
    for note in listed if isinstance(listed, list) else []:
        metadata = note.get("metadata") if isinstance(note, dict) else None
        if isinstance(metadata, dict) and metadata.get("dispute_id") == dispute_id and isinstance(note.get("id"), str):
            return str(note["id"])
    return None


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
    dispute was lost, the dispute named in the comment and as the refund's `reference_number` (what a later try looks
    for). The same on every try (its idempotency key's window compares the body)."""
    return {
        "amount": str(refund.amount),
        "payment_method": CHARGEBEE_CHARGEBACK,
        "date": str(int(refund.lost_at.timestamp())),
        "reference_number": chargebee_reference(refund.dispute_id),
        "comment": _dispute_note(refund)[:CHARGEBEE_COMMENT_CHARS],
    }


def chargebee_reference(dispute_id: str) -> str:
    """The `reference_number` a dispute's refund is recorded with at Chargebee (what a later try looks for)."""
    return dispute_id[:CHARGEBEE_REFERENCE_CHARS]


def chargebee_refund_in(page: dict[str, Any], dispute_id: str) -> str | None:
    """The id of the refund recorded for the dispute `dispute_id` (its `reference_number`) in a page of
    `GET /transactions` (`{"list": [{"transaction": {...}}, ...]}`); None when the page has none."""
    listed = page.get("list")
    for entry in listed if isinstance(listed, list) else []:
        transaction = entry.get("transaction") if isinstance(entry, dict) else None
        if (
            isinstance(transaction, dict)
            and transaction.get("type") == "refund"
            and transaction.get("reference_number") == chargebee_reference(dispute_id)
            and isinstance(transaction.get("id"), str)
        ):
            return str(transaction["id"])
    return None


def _dispute_note(refund: DisputeRefund) -> str:
    """The refund record's words for the merchant's books: the dispute, and why the customer disputed."""
    return f"Dispute {refund.dispute_id} lost" + (f": {refund.reason}" if refund.reason else "")


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
    if status_code == 422 and _error_object(body).get("type") == "invalid_transition":
        return RecordBackAnswer(accepted=True, status_code=status_code)
    return recurly_refusal(status_code, body)


def recurly_refusal(status_code: int, body: dict[str, Any]) -> RecordBackAnswer:
    """A Recurly error answer (`{"error": {type, message, params}}`) as a refusal, tried again."""
    error = _error_object(body)
    message = f"{error.get('type') or 'error'}: {error.get('message') or ''}"
    return RecordBackAnswer(accepted=False, status_code=status_code, error=message[:500])


def recurly_amount(amount: int, currency: str) -> float:
    """An amount in minor units as Recurly writes amounts, decimal major units of the currency: the inverse of
    intake's reading of a Recurly transaction (`minor_units`), so a refund names what came in (2250 USD: 22.5;
    1000 JPY: 1000)."""
    return float(major_units(amount, currency))


def recurly_refund_body(refund: DisputeRefund) -> dict[str, Any]:
    """Recurly's refund of the invoice for a lost dispute: the amount taken back, settled outside Recurly (the dispute
    took it back) on the day it was lost, the dispute named in the credit invoice's customer notes (what a later try
    looks for) and in the refund transaction's description. The same on every try."""
    note = _dispute_note(refund)
    short = note if len(note) <= RECURLY_DESCRIPTION_CHARS else f"Dispute {refund.dispute_id} lost"
    return {
        "type": "amount",
        "amount": recurly_amount(refund.amount, refund.currency),
        "credit_customer_notes": note,
        "external_refund": {
            "payment_method": RECURLY_CHARGEBACK,
            "description": short[:RECURLY_DESCRIPTION_CHARS],
            "refunded_at": refund.lost_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


def recurly_refund_answer(status_code: int, body: dict[str, Any]) -> RecordBackAnswer:
    """Recurly's answer to the refund: the credit invoice it made (its id kept), or refused and tried again, as
    Recurly's refusal of an amount above what the invoice can still refund is."""
    if 200 <= status_code < 300:
        made = body.get("id")
        return RecordBackAnswer(accepted=True, status_code=status_code, transaction_id=made or None)
    return recurly_refusal(status_code, body)


def recurly_credit_invoice_in(page: dict[str, Any], dispute_id: str) -> str | None:
    """The id of the credit invoice made for the dispute `dispute_id` (named in its customer notes, or in its refund
    transaction's description) in a page of `GET /invoices/{id}/related_invoices` (`{"object": "list", "data": [...],
    "has_more": ..., "next": ...}`)."""
    listed = page.get("data")
    for invoice in listed if isinstance(listed, list) else []:
        if not isinstance(invoice, dict) or invoice.get("type") != "credit" or not isinstance(invoice.get("id"), str):
            continue
        transactions = invoice.get("transactions")
        texts = [invoice.get("customer_notes")] + [
            transaction.get("description")
            for transaction in (transactions if isinstance(transactions, list) else [])
            if isinstance(transaction, dict)
        ]
        if any(isinstance(text, str) and dispute_id in text.split() for text in texts):
            return str(invoice["id"])
    return None


def _error_object(body: dict[str, Any]) -> dict[str, Any]:
    """Stripe's and Recurly's answers carry their error as `{"error": {"type": ..., "message": ..., ...}}`."""
    found = body.get("error")
    return found if isinstance(found, dict) else {}
