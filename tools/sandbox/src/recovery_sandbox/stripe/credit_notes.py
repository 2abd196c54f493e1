"""Stripe Billing's credit notes in the sandbox: a credit note of a paid invoice credited outside Stripe
(`POST /v1/credit_notes` with `amount` and an equal `out_of_band_amount`: what a lost dispute's refund record
issues), listed by invoice or customer (`GET /v1/credit_notes`) and read (`GET /v1/credit_notes/{id}`); each sends
`credit_note.created` through webhooks.py.

Shapes follow Stripe's API reference (API version 2024-06-20): https://docs.stripe.com/api/credit_notes/create and
https://docs.stripe.com/api/credit_notes/object. The sandbox models post-payment credit notes credited out of band
only: the invoice must be paid, `out_of_band_amount` must equal `amount` (Stripe: refunds, customer balance credits
and outside-of-Stripe credits add up to the post-payment amount; the sandbox takes no refund nor balance credit), and
`amount` is at most the invoice's `amount_paid` less the credit notes already issued of it, which the invoice counts
in `post_payment_credit_notes_amount`. Stripe documents no error code of its own for an amount above that, so the
refusal is a plain `invalid_request_error` on `amount`. Idempotent on `Idempotency-Key` as every POST of the sandbox
(app.py `run`). Kept in memory with the invoices (invoices.py), and gone with them on `/_sandbox/invoices/reset`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recovery_sandbox.stripe.errors import invalid_request, missing_param, no_such, unknown_param
from recovery_sandbox.stripe.invoices import InvoiceBook
from recovery_sandbox.stripe.params import new_id, parse_int, parse_metadata
from recovery_sandbox.stripe.store import StripeState
from recovery_sandbox.stripe.webhooks import Authenticate, Form, Response, Run, WebhookBook

# Stripe's credit note reasons (the Credit Note object's `reason`).
REASONS = frozenset({"duplicate", "fraudulent", "order_change", "product_unsatisfactory"})
MEMO_CHARS = 5000
# What the sandbox takes; Stripe's other parameters (refunds, balance credits, lines...) are not modelled.
PARAMS = frozenset({"invoice", "amount", "out_of_band_amount", "reason", "memo", "metadata", "expand"})
NOT_MODELLED = frozenset(
    {"credit_amount", "refund_amount", "refunds", "refund", "lines", "shipping_cost", "effective_at", "email_type"}
)

Query = Callable[[Request], dict[str, Any]]
ListBody = Callable[[str, list[dict[str, Any]], Mapping[str, Any]], dict[str, Any]]


class CreditNoteDesk:
    def __init__(self, invoices: InvoiceBook, webhooks: WebhookBook, clock: Callable[[], float] = time.time) -> None:
        self._invoices = invoices
        self._webhooks = webhooks
        self._clock = clock
        self._lock = threading.RLock()

    @property
    def notes(self) -> dict[str, dict[str, Any]]:
        """The credit notes by id, oldest first (the invoice book's: reset with the invoices)."""
        return self._invoices.credit_notes

    def create(self, params: Mapping[str, Any]) -> Response:
        for name in params:
            if name in NOT_MODELLED:
                raise invalid_request(f"The sandbox does not model {name}: credit out of band only.", param=name)
            if name not in PARAMS:
                raise unknown_param(name)
        invoice_id = params.get("invoice")
        if not invoice_id:
            raise missing_param("invoice")
        amount, out_of_band = parse_int(params, "amount"), parse_int(params, "out_of_band_amount")
        if amount is None:
            raise missing_param("amount")
        if amount < 1:
            raise invalid_request("This value must be greater than or equal to 1.", param="amount")
        if out_of_band != amount:
            raise invalid_request(
                "The sum of refunds, customer balance credits, and outside of Stripe credits must equal the credit "
                "note's post payment amount (the sandbox credits out of band only: out_of_band_amount = amount).",
                param="out_of_band_amount",
            )
        reason = params.get("reason") or None
        if reason is not None and reason not in REASONS:
            raise invalid_request(f"Invalid reason: must be one of {', '.join(sorted(REASONS))}", param="reason")
        memo = params.get("memo") or None
        if memo is not None and len(str(memo)) > MEMO_CHARS:
            raise invalid_request(f"memo can be at most {MEMO_CHARS} characters.", param="memo")
        metadata = parse_metadata(params)
        with self._lock:
            invoice = self._invoices.invoices.get(str(invoice_id))
            if invoice is None:
                raise no_such("invoice", str(invoice_id), param="invoice")
            if invoice["status"] != "paid":
                raise invalid_request(
                    f"The sandbox credits paid invoices only; this invoice is {invoice['status']}.", param="invoice"
                )
            credited = invoice.get("post_payment_credit_notes_amount") or 0
            left = invoice["amount_paid"] - credited
            if amount > left:
                raise invalid_request(
                    f"The credit note's amount ({amount}) cannot exceed the amount of the invoice that can still be "
                    f"credited ({left}).",
                    param="amount",
                )
            note = self._note(invoice, amount, reason, memo and str(memo), metadata)
            self.notes[note["id"]] = note
            invoice["post_payment_credit_notes_amount"] = credited + amount
        self._webhooks.emit("credit_note.created", note)
        return 200, note

    def _note(
        self, invoice: dict[str, Any], amount: int, reason: str | None, memo: str | None, metadata: dict[str, str]
    ) -> dict[str, Any]:
        note_id = new_id("cn_")
        issued = sum(1 for note in self.notes.values() if note["invoice"] == invoice["id"])
        return {
            "id": note_id,
            "object": "credit_note",
            "amount": amount,
            "amount_shipping": 0,
            "created": int(self._clock()),
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "customer_balance_transaction": None,
            "discount_amount": 0,
            "discount_amounts": [],
            "effective_at": None,
            "invoice": invoice["id"],
            "lines": {"object": "list", "data": [], "has_more": False, "url": f"/v1/credit_notes/{note_id}/lines"},
            "livemode": False,
            "memo": memo,
            "metadata": metadata,
            "number": f"{invoice['number']}-CN-{issued + 1:02d}",
            "out_of_band_amount": amount,
            "reason": reason,
            "refund": None,
            "shipping_cost": None,
            "status": "issued",
            "subtotal": amount,
            "subtotal_excluding_tax": amount,
            "tax_amounts": [],
            "total": amount,
            "total_excluding_tax": amount,
            "type": "post_payment",
            "voided_at": None,
        }

    def get(self, note_id: str) -> dict[str, Any]:
        with self._lock:
            note = self.notes.get(note_id)
            if note is None:
                raise no_such("credit_note", note_id, param="id", status=404)
            return note

    def listed(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The credit notes of `invoice` and of `customer` if given, newest first (Stripe's list order)."""
        invoice, customer = params.get("invoice"), params.get("customer")
        with self._lock:
            return [
                note
                for note in reversed(self.notes.values())
                if (not invoice or note["invoice"] == invoice) and (not customer or note["customer"] == customer)
            ]


def add_credit_note_routes(
    app: FastAPI,
    state: StripeState,
    webhooks: WebhookBook,
    run: Run,
    authenticate: Authenticate,
    form: Form,
    query: Query,
    list_body: ListBody,
) -> None:
    """Beside the invoice routes (invoices.py), whose book holds the invoices credited."""
    desk = CreditNoteDesk(app.state.invoices, webhooks)

    @app.post("/v1/credit_notes")
    async def create_credit_note(request: Request) -> JSONResponse:
        params = await form(request)
        return await run(request, params, lambda slot, _: state._commit(*desk.create(params), slot))

    @app.get("/v1/credit_notes")
    async def list_credit_notes(request: Request) -> dict[str, Any]:
        authenticate(request)
        params = query(request)
        return list_body("/v1/credit_notes", desk.listed(params), params)

    @app.get("/v1/credit_notes/{note_id}")
    async def get_credit_note(request: Request, note_id: str) -> dict[str, Any]:
        authenticate(request)
        return desk.get(note_id)
