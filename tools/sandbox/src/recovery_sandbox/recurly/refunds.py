"""Refunds of the Recurly sandbox's charge invoices, as API v2021-02-25's *Refund an invoice* takes them on a site with
the Credit Invoices feature: by amount, settled outside Recurly (`external_refund`), each one a credit invoice with
its manual refund transaction; and the related invoices that link a charge invoice and its credit invoices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recovery_sandbox.recurly.objects import Invoice, iso_time

# Recurly's `external_refund.payment_method` values (API v2021-02-25).
ExternalPaymentMethod = Literal[
    "credit_card", "paypal", "amazon", "roku", "ach", "apple_pay", "sepadirectdebit", "eft", "wire_transfer",
    "money_order", "check", "other",
]  # fmt: skip


class ExternalRefund(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_method: ExternalPaymentMethod
    description: str | None = Field(default=None, max_length=50)
    refunded_at: datetime | None = None


class InvoiceRefund(BaseModel):
    """The body the sandbox takes: `type=amount` only (no line items, no percentage), and, its invoices being marked
    paid without a transaction it could refund, always `external_refund`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["amount"]
    amount: float | None = Field(default=None, gt=0)
    credit_customer_notes: str | None = None
    external_refund: ExternalRefund


class RefundRefused(Exception):
    """A refund Recurly would refuse (422 `validation`), with the parameter at fault."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def refund_request(body: Any) -> InvoiceRefund:
    try:
        return InvoiceRefund.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise RefundRefused(f"{param}: {first['msg']}" if param else first["msg"], param) from error


def minor_units(amount: float) -> int:
    """Recurly's decimal major units as the sandbox keeps amounts (two-decimal currencies)."""
    minor = round(amount * 100)
    if abs(minor - amount * 100) > 1e-6:
        raise RefundRefused(f"amount {amount} has more than two decimals", "amount")
    return minor


@dataclass(frozen=True)
class CreditInvoice:
    """A refund of `refunded`: `amount` minor units, refunded outside Recurly, with its refund transaction."""

    id: str
    uuid: str
    number: str
    refunded: Invoice
    amount: int
    created_at: float
    customer_notes: str | None
    transaction_id: str
    transaction_uuid: str
    external: ExternalRefund


def _major(minor: int) -> float:
    return round(minor / 100, 2)


def credit_invoice_view(credit: CreditInvoice) -> dict[str, Any]:
    invoice, refunded_at = credit.refunded, credit.external.refunded_at
    account = {"object": "account_mini", "id": invoice.account_id, "code": invoice.account_code}
    transaction = {
        "object": "transaction",
        "id": credit.transaction_id,
        "uuid": credit.transaction_uuid,
        "type": "refund",
        "status": "success",
        "success": True,
        "collection_method": "manual",
        "payment_method": {"object": credit.external.payment_method},
        "description": credit.external.description,
        "amount": _major(credit.amount),
        "currency": invoice.currency,
        "invoice": {"object": "invoice_mini", "id": credit.id, "number": credit.number, "type": "credit"},
        "account": account,
        "created_at": iso_time(credit.created_at),
        "collected_at": iso_time(refunded_at.timestamp() if refunded_at else credit.created_at),
    }
    return {
        "object": "invoice",
        "id": credit.id,
        "uuid": credit.uuid,
        "type": "credit",
        "origin": "refund",
        "state": "closed",
        "number": credit.number,
        "collection_method": "manual",
        "account": account,
        "previous_invoice_id": invoice.id,
        "currency": invoice.currency,
        "subtotal": -_major(credit.amount),
        "total": -_major(credit.amount),
        "refundable_amount": None,
        "customer_notes": credit.customer_notes,
        "transactions": [transaction],
        "created_at": iso_time(credit.created_at),
        "closed_at": iso_time(credit.created_at),
    }


def page_of(views: list[dict[str, Any]], path: str, cursor: int, limit: int) -> dict[str, Any]:
    """One page of a Recurly list: `next` is the path of the page after it (relative to the API base)."""
    data = views[cursor : cursor + limit]
    more = cursor + limit < len(views)
    return {
        "object": "list",
        "has_more": more,
        "next": f"{path}?cursor={cursor + limit}&limit={limit}" if more else None,
        "data": data,
    }
