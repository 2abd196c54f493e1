"""Recurly's charge invoices and declined transactions as the sandbox keeps them (minor units), and as API
v2021-02-25 shows them (decimal major units: the sandbox takes 2-decimal currencies only)."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

_ID_ALPHABET = string.ascii_lowercase + string.digits


def recurly_id() -> str:
    """An object id as Recurly mints them: 12 lowercase alphanumerics."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


class InvoiceState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PAST_DUE = "past_due"
    PAID = "paid"
    FAILED = "failed"


# Only an open invoice takes a new decline or closes as failed; the sandbox also marks a failed one paid (the
# system cancels a recovery when its invoice fails, so it does not ask that of it).
OPEN = frozenset({InvoiceState.PENDING, InvoiceState.PROCESSING, InvoiceState.PAST_DUE})
PAYABLE = OPEN | {InvoiceState.FAILED}


class PaymentFailure(BaseModel):
    """A declined collection attempt on an invoice, as Recurly's dunning records it."""

    gateway_token: str = Field(min_length=1, description="the processor's customer/payment method, cus_.../pm_...")
    gateway_id: str = "stripegw0001"
    gateway_reference: str = "ch_declined"
    status_code: str = "insufficient_funds"
    status_message: str = "The transaction was declined due to insufficient funds in your account."
    card_type: str = "Visa"
    first_six: str = "424242"
    last_four: str = "4242"
    exp_month: int = Field(default=12, ge=1, le=12)
    exp_year: int = 2030
    funding_source: str = "credit"


@dataclass
class Invoice:
    id: str
    uuid: str
    number: str
    account_id: str
    account_code: str
    currency: str
    total: int
    created_at: float
    state: InvoiceState = InvoiceState.PENDING
    closed_at: float | None = None
    transactions: list[Transaction] = field(default_factory=list)
    refunded: int = 0  # by its credit invoices (refunds.py)


@dataclass(frozen=True)
class Transaction:
    id: str
    uuid: str
    invoice: Invoice = field(compare=False, repr=False)
    amount: int
    created_at: float
    failure: PaymentFailure


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _major(minor: int) -> float:
    return round(minor / 100, 2)


def _account_mini(invoice: Invoice) -> dict[str, Any]:
    return {"object": "account_mini", "id": invoice.account_id, "code": invoice.account_code}


def invoice_view(invoice: Invoice) -> dict[str, Any]:
    paid = invoice.total if invoice.state is InvoiceState.PAID else 0
    return {
        "object": "invoice",
        "id": invoice.id,
        "uuid": invoice.uuid,
        "type": "charge",
        "origin": "renewal",
        "state": invoice.state.value,
        "number": invoice.number,
        "collection_method": "automatic",
        "account": _account_mini(invoice),
        "currency": invoice.currency,
        "subtotal": _major(invoice.total),
        "total": _major(invoice.total),
        "paid": _major(paid),
        "balance": _major(invoice.total - paid),
        "refundable_amount": _major(paid - invoice.refunded),
        "transactions": [transaction_view(transaction) for transaction in invoice.transactions],
        "created_at": iso_time(invoice.created_at),
        "closed_at": None if invoice.closed_at is None else iso_time(invoice.closed_at),
    }


def transaction_view(transaction: Transaction) -> dict[str, Any]:
    failure, invoice = transaction.failure, transaction.invoice
    return {
        "object": "transaction",
        "id": transaction.id,
        "uuid": transaction.uuid,
        "type": "purchase",
        "origin": "recurring",
        "status": "declined",
        "success": False,
        "status_code": failure.status_code,
        "status_message": failure.status_message,
        "amount": _major(transaction.amount),
        "currency": invoice.currency,
        "gateway_reference": failure.gateway_reference,
        "created_at": iso_time(transaction.created_at),
        "invoice": {"object": "invoice_mini", "id": invoice.id, "number": invoice.number, "state": invoice.state.value},
        "account": _account_mini(invoice),
        "payment_gateway": {"object": "payment_gateway", "id": failure.gateway_id, "type": "stripe", "name": "Stripe"},
        "payment_method": {
            "object": "credit_card",
            "card_type": failure.card_type,
            "first_six": failure.first_six,
            "last_four": failure.last_four,
            "exp_month": failure.exp_month,
            "exp_year": failure.exp_year,
            "funding_source": failure.funding_source,
            "gateway_token": failure.gateway_token,
            "gateway_code": failure.gateway_id,
        },
    }
