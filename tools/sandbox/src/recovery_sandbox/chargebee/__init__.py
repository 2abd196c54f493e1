"""A Chargebee-compatible sandbox (served by the Stripe sandbox's process under `/chargebee`): invoices, recording
a payment against one, its payments and an offline refund of one (a lost dispute's chargeback), idempotency keys on
those writes (kept for Chargebee's 30-minute window), and webhooks authenticated with basic auth as Chargebee's
webhook settings configure.

Shapes follow Chargebee's API v2 reference (https://apidocs.chargebee.com/docs/api/invoices,
https://apidocs.chargebee.com/docs/api/transactions, https://apidocs.chargebee.com/docs/api/events): form-encoded
requests, basic auth with the API key as the user name, resources wrapped by name (`{"invoice": {...}}`), lists as
`{"list": [{"transaction": {...}}], "next_offset": ...}`, errors `{message, type, api_error_code, http_status_code}`.
The site and its rules: recovery_sandbox.chargebee.site. In memory only.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from recovery_sandbox.chargebee.errors import ChargebeeError
from recovery_sandbox.chargebee.site import (
    IDEMPOTENCY_KEY,
    IDEMPOTENCY_REPLAYED,
    Chargebee,
    PaymentFailure,
    WebhookSettings,
)
from recovery_sandbox.injected_failures import FailureSwitch, add_injection_routes
from recovery_sandbox.stripe.form import FormError, decode_form

__all__ = ["Chargebee", "ChargebeeError", "PaymentFailure", "WebhookSettings", "create_app"]


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

    async def once(request: Request, failures: FailureSwitch, write: Callable[[dict[str, Any]], Any]) -> JSONResponse:
        """A write under the request's idempotency key (Chargebee's `chargebee-idempotency-key`)."""
        _authenticate(request)
        form = await _form(request)
        key = request.headers.get(IDEMPOTENCY_KEY)
        status, body, replayed = site.once(key, request.url.path, form, failures, lambda: write(form))
        return JSONResponse(body, status, headers={IDEMPOTENCY_REPLAYED: "true"} if replayed else None)

    @app.post("/api/v2/invoices/{invoice_id}/record_payment")
    async def record_payment(request: Request, invoice_id: str) -> JSONResponse:
        return await once(request, site.record_failures, lambda form: site.record_payment(invoice_id, form))

    @app.get("/api/v2/invoices/{invoice_id}/payments")
    async def invoice_payments(
        request: Request, invoice_id: str, limit: str | None = None, offset: str | None = None
    ) -> dict[str, Any]:
        _authenticate(request)
        return site.payments_of(invoice_id, limit, offset)

    @app.get("/api/v2/transactions")
    async def list_transactions(
        request: Request, limit: str | None = None, offset: str | None = None
    ) -> dict[str, Any]:
        _authenticate(request)
        equal_to = {
            name.removesuffix("[is]"): value for name, value in request.query_params.items() if name.endswith("[is]")
        }
        return site.list_transactions(equal_to, limit, offset)

    @app.get("/api/v2/transactions/{transaction_id}")
    async def get_transaction(request: Request, transaction_id: str) -> dict[str, Any]:
        _authenticate(request)
        with site.lock:
            return {"transaction": site.transaction(transaction_id)}

    @app.post("/api/v2/transactions/{transaction_id}/record_refund")
    async def record_refund(request: Request, transaction_id: str) -> JSONResponse:
        return await once(request, site.refund_failures, lambda form: site.record_refund(transaction_id, form))

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

    @app.post("/_sandbox/idempotency/expire")
    async def expire_idempotency_keys() -> dict[str, int]:
        """Chargebee's idempotency window (30 minutes) over for every key used so far: a repeat is a new request."""
        return {"forgotten": site.forget_idempotency_keys()}

    add_injection_routes(app, "/_sandbox/record_failures", site.record_failures)
    add_injection_routes(app, "/_sandbox/refund_failures", site.refund_failures)

    return app
