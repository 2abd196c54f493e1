"""Stripe Billing's invoices in the sandbox: invoice items, invoices (create, finalize, retrieve, pay, void, mark
uncollectible), and the events they send (`invoice.*`, through webhooks.py).

Shapes follow Stripe's API reference (API version 2024-06-20): https://docs.stripe.com/api/invoices and
https://docs.stripe.com/api/invoiceitems. An invoice is answered as the request's API version shows it: a request
without `Stripe-Version` is served as the account's default, 2025-03-31.basil, where an invoice has no `charge` nor
`payment_intent` and expanding either is a 400; one pinned to 2024-06-20 gets the invoice as stored (versions.py).
Webhook events stay on 2024-06-20. Kept in memory only (a sandbox restarted with a state directory keeps its
customers and charges, not its invoices).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recovery_sandbox.injected_failures import DelaySwitch, FailureSwitch, add_injection_routes
from recovery_sandbox.stripe.errors import StripeError, invalid_request, missing_param, no_such
from recovery_sandbox.stripe.params import new_id, parse_bool, parse_int, parse_metadata
from recovery_sandbox.stripe.state import IdempotencySlot
from recovery_sandbox.stripe.store import StripeState
from recovery_sandbox.stripe.test_cards import Decline
from recovery_sandbox.stripe.versions import STORED_API_VERSION, api_version, check_expandable, invoice_as
from recovery_sandbox.stripe.webhooks import Authenticate, Form, Response, Run, WebhookBook

EVENT_TYPES = ("invoice.payment_failed", "invoice.paid", "invoice.voided", "invoice.marked_uncollectible")


class InvoiceBook:
    def __init__(self, stripe: StripeState, webhooks: WebhookBook, clock: Callable[[], float] = time.time) -> None:
        self._stripe = stripe
        self._webhooks = webhooks
        self._clock = clock
        self._lock = threading.RLock()
        # The controls' state, kept across a reset (their routes hold these objects), cleared by it.
        # The next calls of `POST /v1/invoices/{id}/pay` that fail (an API error, nothing changes).
        self.pay_failures = FailureSwitch()
        # The next reads of `GET /v1/invoices/{id}` answered late (a slow Stripe API, seen by a webhook's read).
        self.slow_reads = DelaySwitch()
        self.reset()

    def reset(self) -> None:
        """The invoices gone, and their credit notes, the webhook endpoints and events with them
        (`/_sandbox/invoices/reset`)."""
        self.items: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.credit_notes: dict[str, dict[str, Any]] = {}  # of the invoices, by id (credit_notes.py)
        self.pay_failures.clear()
        self.slow_reads.clear()
        self._webhooks.reset()

    # ----- invoice items and invoices ------------------------------------------------------------------

    def create_item(self, params: Mapping[str, Any]) -> Response:
        customer = params.get("customer")
        if not customer:
            raise missing_param("customer")
        if customer not in self._stripe.customers:
            raise no_such("customer", str(customer), param="customer")
        amount = parse_int(params, "amount")
        if amount is None:
            raise missing_param("amount")
        currency = str(params.get("currency") or "usd").lower()
        with self._lock:
            invoice_id = params.get("invoice") or None
            if invoice_id is not None:
                invoice = self._invoice(str(invoice_id), param="invoice")
                if invoice["status"] != "draft":
                    raise invalid_request("Invoice items can only be added to draft invoices.", param="invoice")
            item = {
                "id": new_id("ii_"),
                "object": "invoiceitem",
                "amount": amount,
                "currency": currency,
                "customer": customer,
                "date": int(self._clock()),
                "description": params.get("description"),
                "invoice": invoice_id,
                "livemode": False,
                "metadata": parse_metadata(params),
            }
            self.items[item["id"]] = item
            if invoice_id is not None:
                self._add_line(self.invoices[str(invoice_id)], item)
            return 200, item

    def create_invoice(self, params: Mapping[str, Any]) -> Response:
        customer = params.get("customer")
        if not customer:
            raise missing_param("customer")
        if customer not in self._stripe.customers:
            raise no_such("customer", str(customer), param="customer")
        behaviour = params.get("pending_invoice_items_behavior") or "exclude"
        if behaviour not in ("include", "exclude"):
            raise invalid_request("Invalid pending_invoice_items_behavior.", param="pending_invoice_items_behavior")
        now = int(self._clock())
        with self._lock:
            invoice: dict[str, Any] = {
                "id": new_id("in_"),
                "object": "invoice",
                "amount_due": 0,
                "amount_paid": 0,
                "amount_remaining": 0,
                "attempt_count": 0,
                "attempted": False,
                "auto_advance": parse_bool(params, "auto_advance"),
                "billing_reason": "manual",
                "charge": None,
                "collection_method": params.get("collection_method") or "charge_automatically",
                "created": now,
                "currency": str(params.get("currency") or "usd").lower(),
                "customer": customer,
                "default_payment_method": params.get("default_payment_method") or None,
                "description": params.get("description"),
                "last_finalization_error": None,
                "lines": {"object": "list", "data": [], "has_more": False, "url": ""},
                "livemode": False,
                "metadata": parse_metadata(params),
                "next_payment_attempt": None,
                "number": None,
                "paid": False,
                "paid_out_of_band": False,
                "payment_intent": None,
                "post_payment_credit_notes_amount": 0,
                "pre_payment_credit_notes_amount": 0,
                "status": "draft",
                "status_transitions": {
                    "finalized_at": None,
                    "marked_uncollectible_at": None,
                    "paid_at": None,
                    "voided_at": None,
                },
                "subscription": None,
                "subtotal": 0,
                "total": 0,
            }
            invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
            self.invoices[invoice["id"]] = invoice
            if behaviour == "include":
                for item in self.items.values():
                    if item["customer"] == customer and item["invoice"] is None:
                        item["invoice"] = invoice["id"]
                        self._add_line(invoice, item)
            return 200, invoice

    def _add_line(self, invoice: dict[str, Any], item: dict[str, Any]) -> None:
        line = {
            "id": new_id("il_"),
            "object": "line_item",
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "invoice_item": item["id"],
            "type": "invoiceitem",
        }
        invoice["lines"]["data"].append(line)
        total = sum(line["amount"] for line in invoice["lines"]["data"])
        invoice.update(amount_due=total, amount_remaining=total, subtotal=total, total=total)

    def _invoice(self, invoice_id: str, *, param: str = "invoice", status: int = 400) -> dict[str, Any]:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise no_such("invoice", invoice_id, param=param, status=status)
        return invoice

    def read_delay(self) -> float:
        """How long this read of an invoice waits before it is answered (`slow_reads`): 0 for at once."""
        with self._lock:
            return self.slow_reads.take()

    def get(self, invoice_id: str, expand: list[str], version: str = STORED_API_VERSION) -> dict[str, Any]:
        """The invoice as `version` shows it, with the `expand` fields expanded (400 for one it does not have)."""
        for field in expand:
            check_expandable(field, version)
        with self._lock:
            invoice = json.loads(json.dumps(self._invoice(invoice_id, param="id", status=404)))
        # `expand[]`: the named fields as the objects they point at (Stripe's expanding responses).
        readers = {
            "charge": self._stripe.get_charge,
            "payment_intent": self._stripe.get_payment_intent,
            "customer": self._stripe.get_customer,
            "default_payment_method": self._stripe.get_payment_method,
        }
        for field in expand:
            if field not in readers:
                raise invalid_request(f"This property cannot be expanded ({field}).", param="expand")
            if invoice.get(field):
                invoice[field] = readers[field](invoice[field])
        return invoice_as(invoice, version)

    def finalize(self, invoice_id: str) -> Response:
        with self._lock:
            invoice = self._invoice(invoice_id)
            if invoice["status"] != "draft":
                raise invalid_request("This invoice is already finalized.", code="invoice_not_editable")
            self._finalize(invoice)
            return 200, invoice

    def _finalize(self, invoice: dict[str, Any]) -> None:
        invoice["status"] = "open"
        invoice["number"] = f"SBX-{len(self.invoices):04d}"
        invoice["status_transitions"]["finalized_at"] = int(self._clock())

    def payment_method_of(self, invoice_id: str, params: Mapping[str, Any]) -> str | None:
        """The card a `pay` would charge (what the fault modes match), None when it charges nothing."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None or parse_bool(params, "paid_out_of_band"):
            return None
        customer = self._stripe.customers.get(invoice["customer"]) or {}
        found = (
            params.get("payment_method")
            or invoice["default_payment_method"]
            or (customer.get("invoice_settings") or {}).get("default_payment_method")
        )
        return str(found) if found else None

    def pay(
        self,
        invoice_id: str,
        params: Mapping[str, Any],
        slot: IdempotencySlot | None,
        decline: Decline | None = None,
        version: str = STORED_API_VERSION,
    ) -> Response:
        """`paid_out_of_band=true` marks it paid without charging; otherwise the customer's card is charged and
        a decline leaves the invoice open with `invoice.payment_failed` sent (Stripe's 402 card error). The paid
        invoice is answered as `version` shows it."""
        with self._lock:
            failing = self.pay_failures.take()
            if failing is not None:
                raise StripeError(failing, "api_error", "An unknown error occurred")
            invoice = self._invoice(invoice_id)
            if invoice["status"] == "paid":
                raise invalid_request("Invoice is already paid.", code="invoice_already_paid")
            if invoice["status"] == "void":
                raise invalid_request("This invoice is void.", code="invoice_not_open")
            if invoice["status"] == "draft":
                self._finalize(invoice)
            if parse_bool(params, "paid_out_of_band"):
                self._mark_paid(invoice, out_of_band=True)
                return self._stripe._commit(200, invoice_as(invoice, version), slot)
            return self._charge(invoice, params, slot, decline, version)

    def _charge(
        self,
        invoice: dict[str, Any],
        params: Mapping[str, Any],
        slot: IdempotencySlot | None,
        decline: Decline | None,
        version: str,
    ) -> Response:
        pm = self.payment_method_of(invoice["id"], params)
        if not pm:
            raise invalid_request(
                "The invoice's customer has no default payment method.", code="invoice_no_payment_method_types"
            )
        status, body = self._stripe.create_payment_intent(
            {
                "amount": str(invoice["amount_remaining"]),
                "currency": invoice["currency"],
                "customer": invoice["customer"],
                "payment_method": pm,
                "confirm": "true",
                "off_session": "true",
            },
            None,
            decline,
        )
        intent = body.get("error", {}).get("payment_intent") or body
        invoice["payment_intent"] = intent["id"]
        invoice["charge"] = intent.get("latest_charge")
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if status == 200 and intent.get("status") == "succeeded":
            self._mark_paid(invoice, out_of_band=False)
            return self._stripe._commit(200, invoice_as(invoice, version), slot)
        self._webhooks.emit("invoice.payment_failed", invoice)
        return self._stripe._commit(status, body, slot)

    def _mark_paid(self, invoice: dict[str, Any], *, out_of_band: bool) -> None:
        invoice.update(
            status="paid",
            paid=True,
            paid_out_of_band=out_of_band,
            amount_paid=invoice["amount_remaining"],
            amount_remaining=0,
        )
        invoice["status_transitions"]["paid_at"] = int(self._clock())
        self._webhooks.emit("invoice.paid", invoice)

    def close(self, invoice_id: str, status: str) -> Response:
        """`void` or `uncollectible` (`POST /v1/invoices/{id}/void`, `/mark_uncollectible`), open invoices only."""
        with self._lock:
            invoice = self._invoice(invoice_id)
            if invoice["status"] != "open" and not (status == "void" and invoice["status"] == "uncollectible"):
                raise invalid_request(f"This invoice is {invoice['status']}.", code="invoice_not_open")
            invoice["status"] = status
            moment = "voided_at" if status == "void" else "marked_uncollectible_at"
            invoice["status_transitions"][moment] = int(self._clock())
            self._webhooks.emit("invoice.voided" if status == "void" else "invoice.marked_uncollectible", invoice)
            return 200, invoice


def _as_version(response: Response, version: str) -> Response:
    """An invoice answer as `version` shows it."""
    status, body = response
    return status, invoice_as(body, version) if body.get("object") == "invoice" else body


def add_invoice_routes(
    app: FastAPI, state: StripeState, webhooks: WebhookBook, run: Run, authenticate: Authenticate, form: Form
) -> None:
    """Each invoice answer is shaped after the request's API version (`Stripe-Version`, else the account's default:
    versions.py)."""
    book = InvoiceBook(state, webhooks)
    app.state.invoices = book

    @app.post("/v1/invoiceitems")
    async def create_invoice_item(request: Request) -> JSONResponse:
        params = await form(request)
        return await run(request, params, lambda slot, _: state._commit(*book.create_item(params), slot))

    @app.post("/v1/invoices")
    async def create_invoice(request: Request) -> JSONResponse:
        params, version = await form(request), api_version(request)
        return await run(
            request, params, lambda slot, _: state._commit(*_as_version(book.create_invoice(params), version), slot)
        )

    @app.get("/v1/invoices/{invoice_id}")
    async def get_invoice(request: Request, invoice_id: str) -> dict[str, Any]:
        authenticate(request)
        late = book.read_delay()
        if late:
            await asyncio.sleep(late)
        expand = [v for k, v in request.query_params.multi_items() if k in ("expand[]", "expand")]
        return book.get(invoice_id, expand, api_version(request))

    @app.post("/v1/invoices/{invoice_id}/finalize")
    async def finalize_invoice(request: Request, invoice_id: str) -> JSONResponse:
        params, version = await form(request), api_version(request)
        return await run(
            request, params, lambda slot, _: state._commit(*_as_version(book.finalize(invoice_id), version), slot)
        )

    @app.post("/v1/invoices/{invoice_id}/pay")
    async def pay_invoice(request: Request, invoice_id: str) -> JSONResponse:
        params, version = await form(request), api_version(request)
        card = book.payment_method_of(invoice_id, params)
        return await run(
            request,
            params,
            lambda slot, decline: book.pay(invoice_id, params, slot, decline, version),
            charge_refs=(card,) if card else None,
        )

    @app.post("/v1/invoices/{invoice_id}/void")
    async def void_invoice(request: Request, invoice_id: str) -> JSONResponse:
        params, version = await form(request), api_version(request)
        return await run(
            request, params, lambda slot, _: state._commit(*_as_version(book.close(invoice_id, "void"), version), slot)
        )

    @app.post("/v1/invoices/{invoice_id}/mark_uncollectible")
    async def mark_uncollectible(request: Request, invoice_id: str) -> JSONResponse:
        params, version = await form(request), api_version(request)
        return await run(
            request,
            params,
            lambda slot, _: state._commit(*_as_version(book.close(invoice_id, "uncollectible"), version), slot),
        )

    # ----- sandbox controls (not Stripe's) ---------------------------------------------------------------

    add_injection_routes(app, "/_sandbox/invoices/pay_failures", book.pay_failures)
    add_injection_routes(app, "/_sandbox/invoices/slow_reads", book.slow_reads)

    @app.post("/_sandbox/invoices/reset")
    async def reset_invoices() -> dict[str, bool]:
        book.reset()
        return {"reset": True}
