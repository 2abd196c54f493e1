"""A Recurly-compatible sandbox (served by the Stripe sandbox's process under `/recurly`): transactions and charge
invoices as API v2021-02-25 shows them, `mark_successful` and refunds (credit invoices, their related invoices) with
idempotency keys, and signed JSON notifications.

Shapes follow Recurly's v3 API (https://recurly.com/developers/api/v2021-02-25/): JSON, the version in `Accept`, basic
auth with the private API key as the user name, resources unwrapped (`{"object": "invoice", ...}`), errors
`{"error": {"type", "message", "params"}}`; and its webhooks (https://docs.recurly.com/docs/webhooks). The site's API
base is `<sandbox>/recurly`; `/_sandbox/...` are this sandbox's controls. In memory only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.exceptions import HTTPException

from recovery_sandbox.injected_failures import add_injection_routes
from recovery_sandbox.recurly.objects import PaymentFailure
from recovery_sandbox.recurly.site import NewInvoice, RecurlyError, RecurlySite, WebhookSettings
from recovery_sandbox.redelivery import add_redelivery_routes

API_VERSION = "v2021-02-25"
ACCEPTED_MEDIA_TYPES = frozenset(
    {f"application/vnd.recurly.{API_VERSION}", f"application/vnd.recurly.{API_VERSION}+json"}
)
_ERROR_TYPES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}

_basic = HTTPBasic(auto_error=False)


def recurly_request(request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> None:
    """Every API call: the private API key as the basic-auth user name (any non-empty key), then the version."""
    if credentials is None or not credentials.username:
        raise RecurlyError(401, "unauthorized", "Unauthorized: please provide your API key as the basic-auth user name")
    offered = {part.split(";")[0].strip() for part in request.headers.get("accept", "").split(",")}
    if not offered & ACCEPTED_MEDIA_TYPES:
        raise RecurlyError(
            406,
            "invalid_api_version",
            f"Please specify a version in the Accept header: application/vnd.recurly.{API_VERSION}",
        )


def create_app() -> FastAPI:
    app = FastAPI(title="Recurly-compatible sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    site = RecurlySite()
    app.state.recurly = site
    api = APIRouter(dependencies=[Depends(recurly_request)])

    @app.exception_handler(RecurlyError)
    async def _on_error(request: Request, error: RecurlyError) -> JSONResponse:
        return JSONResponse(error.body(), error.status)

    @app.exception_handler(HTTPException)
    async def _on_http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = _ERROR_TYPES.get(error.status_code, "bad_request")
        return JSONResponse(RecurlyError(error.status_code, kind, str(error.detail)).body(), error.status_code)

    @app.middleware("http")
    async def _version(request: Request, call_next: Any) -> Response:
        answer: Response = await call_next(request)
        answer.headers["Recurly-Version"] = f"recurly.{API_VERSION}"
        return answer

    @api.get("/transactions/{transaction_id}")
    async def get_transaction(transaction_id: str) -> dict[str, Any]:
        return site.transaction_answer(transaction_id)

    @api.get("/invoices/{invoice_id}")
    async def get_invoice(invoice_id: str) -> dict[str, Any]:
        return site.invoice_answer(invoice_id)

    @api.put("/invoices/{invoice_id}/mark_successful")
    async def mark_successful(invoice_id: str, idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
        status, body = site.mark_successful(invoice_id, idempotency_key)
        return JSONResponse(body, status)

    @api.post("/invoices/{invoice_id}/refund")
    async def refund_invoice(
        invoice_id: str, request: Request, idempotency_key: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError as error:
            raise RecurlyError(400, "bad_request", "the body is not JSON") from error
        status, answer = site.refund(invoice_id, body, idempotency_key)
        return JSONResponse(answer, status)

    @api.get("/invoices/{invoice_id}/related_invoices")
    async def related_invoices(
        invoice_id: str,
        cursor: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> dict[str, Any]:
        return site.related_invoices(invoice_id, f"/invoices/{invoice_id}/related_invoices", cursor, limit)

    app.include_router(api)

    # ----- sandbox controls (not Recurly's; no auth) --------------------------------------------------------

    @app.post("/_sandbox/webhook")
    async def configure_webhook(settings: WebhookSettings) -> dict[str, str]:
        site.webhook = settings
        return {"url": settings.url}

    add_redelivery_routes(app, "/_sandbox/webhook/redelivery", site.redelivery)

    @app.post("/_sandbox/invoices")
    async def create_invoice(request: NewInvoice) -> dict[str, Any]:
        return site.create_invoice(request)

    @app.post("/_sandbox/invoices/{invoice_id}/payment_failed")
    async def fail_payment(invoice_id: str, failure: PaymentFailure) -> dict[str, Any]:
        return site.payment_failed(invoice_id, failure)

    @app.post("/_sandbox/invoices/{invoice_id}/paid")
    async def pay_invoice(invoice_id: str) -> dict[str, Any]:
        return site.paid(invoice_id)

    @app.post("/_sandbox/invoices/{invoice_id}/failed")
    async def fail_invoice(invoice_id: str) -> dict[str, Any]:
        return site.failed(invoice_id)

    @app.get("/_sandbox/events")
    async def events() -> dict[str, Any]:
        with site.lock:
            return {"events": [dict(event, deliveries=list(event["deliveries"])) for event in site.events]}

    @app.post("/_sandbox/events/{n}/resend")
    async def resend(
        n: int, secret: Annotated[list[str] | None, Query()] = None, age_seconds: Annotated[int, Query(ge=0)] = 0
    ) -> dict[str, Any]:
        if not 0 <= n < len(site.events):
            raise RecurlyError(404, "not_found", f"no notification {n}")
        delivery = await site.send(n, secret, age_seconds)
        if delivery is None:
            raise RecurlyError(409, "no_webhook", "configure the webhook first: POST /_sandbox/webhook")
        return delivery

    add_injection_routes(app, "/_sandbox/record_failures", site.record_failures)

    @app.post("/_sandbox/idempotency/expire")
    async def expire_idempotency_keys() -> dict[str, int]:
        return {"forgotten": site.forget_idempotency_keys()}

    return app
