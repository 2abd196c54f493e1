"""A Chargebee-compatible sandbox (served by the Stripe sandbox's process under `/chargebee`): invoices, recording
a payment against one, and webhooks authenticated with basic auth as Chargebee's webhook settings configure.

Shapes follow Chargebee's API v2 reference (https://apidocs.chargebee.com/docs/api/invoices,
https://apidocs.chargebee.com/docs/api/events): form-encoded requests, basic auth with the API key as the user
name, resources wrapped by name (`{"invoice": {...}}`), errors `{message, type, api_error_code, http_status_code}`.
In memory only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from recovery_sandbox.injected_failures import FailureSwitch, add_injection_routes
from recovery_sandbox.stripe.form import FormError, decode_form


class ChargebeeError(Exception):
    def __init__(self, status: int, api_error_code: str, message: str, error_type: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.api_error_code, self.message, self.error_type = status, api_error_code, message, error_type

    def body(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "type": self.error_type,
            "api_error_code": self.api_error_code,
            "http_status_code": self.status,
        }


class WebhookSettings(BaseModel):
    """Chargebee's webhook settings: the URL and the basic auth it sends."""

    url: str
    username: str
    password: str


class PaymentFailure(BaseModel):
    """A failed collection of an invoice at the gateway (what Chargebee's dunning reports as payment_failed)."""

    reference_number: str = Field(description="the gateway's customer/payment method, e.g. cus_.../pm_...")
    gateway_account_id: str = "gw_stripe"
    id_at_gateway: str = "ch_failed"
    error_code: str = "insufficient_funds"
    error_text: str = "Your card has insufficient funds."
    card_type: str = "visa"
    last4: str = "4242"


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


class Chargebee:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.invoices: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.webhook: WebhookSettings | None = None
        self.record_failures = FailureSwitch()
        self._sending: set[asyncio.Task[None]] = set()

    def create_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = params.get("customer_id")
        amounts = (params.get("charges") or {}).get("amount") or {}
        if not customer or not amounts:
            raise ChargebeeError(400, "param_wrong_value", "customer_id and charges[amount][0] are required")
        total = sum(int(v) for v in (amounts.values() if isinstance(amounts, dict) else amounts))
        now = int(time.time())
        invoice = {
            "id": _new_id("inv_"),
            "customer_id": customer,
            "status": "payment_due",
            "currency_code": str(params.get("currency_code") or "USD").upper(),
            "date": now,
            "total": total,
            "amount_due": total,
            "amount_paid": 0,
            "linked_payments": [],
            "object": "invoice",
        }
        with self.lock:
            self.invoices[invoice["id"]] = invoice
        return invoice

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        found = self.invoices.get(invoice_id)
        if found is None:
            raise ChargebeeError(404, "resource_not_found", f"Sorry, we couldn't find that resource: {invoice_id}")
        return found

    def record_payment(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            failing = self.record_failures.take()
            if failing is not None:
                raise ChargebeeError(failing, "internal_error", "Sorry, something went wrong", "api_error")
            invoice = self.invoice(invoice_id)
            txn = params.get("transaction") or {}
            if txn.get("status") not in ("success", "failure"):
                raise ChargebeeError(400, "param_wrong_value", "transaction[status] must be success or failure")
            if not txn.get("payment_method"):
                raise ChargebeeError(400, "param_wrong_value", "transaction[payment_method] cannot be blank")
            if invoice["status"] != "payment_due":
                raise ChargebeeError(400, "invalid_state_for_request", f"Invoice {invoice_id} is {invoice['status']}")
            amount = int(txn.get("amount") or invoice["amount_due"])
            transaction = {
                "id": _new_id("txn_"),
                "object": "transaction",
                "amount": amount,
                "currency_code": invoice["currency_code"],
                "customer_id": invoice["customer_id"],
                "date": int(txn.get("date") or time.time()),
                "id_at_gateway": txn.get("id_at_gateway"),
                "payment_method": txn["payment_method"],
                "status": txn["status"],
                "type": "payment",
                "linked_invoices": [{"invoice_id": invoice_id, "applied_amount": amount}],
            }
            self.transactions[transaction["id"]] = transaction
            if txn["status"] == "success":
                paid = min(amount, invoice["amount_due"])
                invoice["amount_paid"] += paid
                invoice["amount_due"] -= paid
                invoice["linked_payments"].append({"txn_id": transaction["id"], "applied_amount": paid})
                if invoice["amount_due"] == 0:
                    invoice.update(status="paid", paid_at=int(time.time()))
                self.emit("payment_succeeded", {"transaction": transaction, "invoice": dict(invoice)})
            return {"invoice": invoice, "transaction": transaction}

    def void_invoice(self, invoice_id: str) -> dict[str, Any]:
        """Chargebee's *Void an invoice*: refused once a payment is applied; the invoice becomes `voided` and an
        `invoice_updated` event is sent."""
        with self.lock:
            invoice = self.invoice(invoice_id)
            if invoice["amount_paid"] or invoice["status"] in ("paid", "voided"):
                raise ChargebeeError(
                    400,
                    "invalid_state_for_request",
                    f"Invoice {invoice_id} is {invoice['status']}: it cannot be voided",
                )
            invoice.update(status="voided", voided_at=int(time.time()))
            self.emit("invoice_updated", {"invoice": dict(invoice)})
            return {"invoice": invoice}

    def payment_failed(self, invoice_id: str, failure: PaymentFailure) -> dict[str, Any]:
        with self.lock:
            invoice = self.invoice(invoice_id)
            transaction = {
                "id": _new_id("txn_"),
                "object": "transaction",
                "amount": invoice["amount_due"],
                "currency_code": invoice["currency_code"],
                "customer_id": invoice["customer_id"],
                "date": int(time.time()),
                "gateway": "stripe",
                "gateway_account_id": failure.gateway_account_id,
                "id_at_gateway": failure.id_at_gateway,
                "reference_number": failure.reference_number,
                "payment_method": "card",
                "status": "failure",
                "type": "payment",
                "error_code": failure.error_code,
                "error_text": failure.error_text,
                "linked_invoices": [{"invoice_id": invoice_id, "applied_amount": 0}],
            }
            self.transactions[transaction["id"]] = transaction
            card = {"card_type": failure.card_type, "funding_type": "credit", "last4": failure.last4}
            return self.emit("payment_failed", {"transaction": transaction, "invoice": dict(invoice), "card": card})

    def emit(self, event_type: str, content: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": _new_id("ev_"),
            "object": "event",
            "api_version": "v2",
            "event_type": event_type,
            "occurred_at": int(time.time()),
            "source": "scheduled_job",
            "webhook_status": "scheduled",
            "content": json.loads(json.dumps(content)),
        }
        with self.lock:
            self.events[event["id"]] = event
        try:
            task = asyncio.get_running_loop().create_task(self.deliver(event))
        except RuntimeError:
            return event
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return event

    async def deliver(self, event: dict[str, Any], password: str | None = None) -> None:
        settings = self.webhook
        if settings is None:
            return
        token = base64.b64encode(f"{settings.username}:{password or settings.password}".encode()).decode()
        record: dict[str, Any] = {"event": event["id"], "type": event["event_type"], "url": settings.url}
        try:
            async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
                answer = await client.post(
                    settings.url,
                    content=json.dumps(event).encode(),
                    headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
                )
            record.update(status=answer.status_code, answer=answer.text[:1000])
        except httpx.HTTPError as error:
            record.update(status=None, error=f"{type(error).__name__}: {error}")
        with self.lock:
            self.deliveries.append(record)


def _authenticate(request: Request) -> None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    try:
        key = base64.b64decode(credential).decode().split(":", 1)[0] if scheme.lower() == "basic" else ""
    except (ValueError, UnicodeDecodeError):
        key = ""
    if not key:
        raise ChargebeeError(401, "api_authentication_failed", "Sorry, authentication failed. Invalid api key", "")


async def _form(request: Request) -> dict[str, Any]:
    try:
        return decode_form(await request.body())
    except FormError as error:
        raise ChargebeeError(400, "param_wrong_value", str(error)) from error


def create_app() -> FastAPI:
    app = FastAPI(title="Chargebee-compatible sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    site = Chargebee()
    app.state.chargebee = site

    @app.exception_handler(ChargebeeError)
    async def _on_error(request: Request, error: ChargebeeError) -> JSONResponse:
        return JSONResponse(error.body(), error.status)

    @app.post("/api/v2/invoices")
    async def create_invoice(request: Request) -> dict[str, Any]:
        _authenticate(request)
        return {"invoice": site.create_invoice(await _form(request))}

    @app.get("/api/v2/invoices/{invoice_id}")
    async def get_invoice(request: Request, invoice_id: str) -> dict[str, Any]:
        _authenticate(request)
        return {"invoice": site.invoice(invoice_id)}

    @app.post("/api/v2/invoices/{invoice_id}/record_payment")
    async def record_payment(request: Request, invoice_id: str) -> dict[str, Any]:
        _authenticate(request)
        return site.record_payment(invoice_id, await _form(request))

    @app.post("/api/v2/invoices/{invoice_id}/void")
    async def void_invoice(request: Request, invoice_id: str) -> dict[str, Any]:
        _authenticate(request)
        await _form(request)  # `comment`, `void_reason_code`: taken, not kept
        return site.void_invoice(invoice_id)

    # ----- sandbox controls (not Chargebee's) ------------------------------------------------------------

    @app.post("/_sandbox/webhook")
    async def configure_webhook(settings: WebhookSettings) -> dict[str, str]:
        site.webhook = settings
        return {"url": settings.url}

    @app.post("/_sandbox/invoices/{invoice_id}/payment_failed")
    async def fail_payment(invoice_id: str, failure: PaymentFailure) -> dict[str, Any]:
        return site.payment_failed(invoice_id, failure)

    @app.post("/_sandbox/invoices/{invoice_id}/deleted")
    async def delete_invoice(invoice_id: str) -> dict[str, Any]:
        invoice = site.invoice(invoice_id)
        invoice["deleted"] = True
        return site.emit("invoice_deleted", {"invoice": dict(invoice)})

    @app.post("/_sandbox/events/{event_id}/resend")
    async def resend(event_id: str, password: str | None = None) -> dict[str, Any]:
        event = site.events.get(event_id)
        if event is None:
            raise ChargebeeError(404, "resource_not_found", f"no event {event_id}")
        await site.deliver(event, password)
        return site.deliveries[-1]

    @app.get("/_sandbox/events")
    async def events() -> dict[str, Any]:
        return {"events": list(site.events.values()), "deliveries": list(site.deliveries)}

    add_injection_routes(app, "/_sandbox/record_failures", site.record_failures)

    return app
