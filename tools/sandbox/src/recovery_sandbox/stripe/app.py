"""The Stripe-compatible HTTP API: Stripe's paths, form-encoded requests, Stripe-shaped JSON and errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from recovery_sandbox import chargebee, recurly
from recovery_sandbox.stripe.credit_notes import add_credit_note_routes
from recovery_sandbox.stripe.disputes import add_dispute_routes
from recovery_sandbox.stripe.errors import StripeError, invalid_request, unrecognized_url
from recovery_sandbox.stripe.faults import Fault, FaultMode, idempotency_error, rate_limited
from recovery_sandbox.stripe.files import FileCabinet, add_file_routes
from recovery_sandbox.stripe.form import FormError, decode_form, decode_pairs
from recovery_sandbox.stripe.invoices import add_invoice_routes
from recovery_sandbox.stripe.params import new_id, parse_int
from recovery_sandbox.stripe.search import parse_query
from recovery_sandbox.stripe.state import IdempotencySlot, account_of
from recovery_sandbox.stripe.store import StripeState
from recovery_sandbox.stripe.test_cards import DECLINES_BY_CODE, Decline
from recovery_sandbox.stripe.versions import STORED_API_VERSION, answered_version, api_version
from recovery_sandbox.stripe.webhooks import WebhookBook, add_webhook_routes

# The API version the sandbox's objects are shaped after; a request is served as its `Stripe-Version`, else as the
# account's default DEFAULT_API_VERSION (newer: see versions.py), and the answer names the version it was served as.
STRIPE_VERSION = STORED_API_VERSION
_MAX_IDEMPOTENCY_KEY = 255

Operation = Callable[[IdempotencySlot | None, Decline | None], tuple[int, dict[str, Any]]]


def _stripe_error_response(error: StripeError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _authenticate(request: Request) -> str:
    """The account (digest of the secret key) the request acts for; Stripe's 401 otherwise (and its 400 for a
    malformed `Stripe-Version`)."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    key = ""
    if scheme.lower() == "bearer":
        key = credential.strip()
    elif scheme.lower() == "basic":
        # Stripe also takes the key as the Basic-auth user name with an empty password.
        try:
            key = base64.b64decode(credential).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            key = ""
    if not key:
        raise StripeError(
            401,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the Authorization header, "
            "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    if not key.startswith("sk_test_"):
        # Stripe echoes a masked key; never the whole of it.
        raise StripeError(
            401,
            "invalid_request_error",
            f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:] if len(key) > 12 else ''}",
            code="api_key_invalid" if key.startswith("sk_") else None,
        )
    api_version(request)
    return account_of(key)


async def _form(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        raise invalid_request(
            "Invalid request: Stripe's API takes form-encoded bodies (application/x-www-form-urlencoded)."
        )
    try:
        return decode_form(await request.body())
    except FormError as exc:
        raise invalid_request(str(exc), param=exc.param) from exc


def _query(request: Request) -> dict[str, Any]:
    try:
        return decode_pairs(list(request.query_params.multi_items()))
    except FormError as exc:
        raise invalid_request(str(exc), param=exc.param) from exc


def _list_body(url: str, items: list[dict[str, Any]], params: Mapping[str, Any]) -> dict[str, Any]:
    limit = parse_int(params, "limit") or 10
    if not 1 <= limit <= 100:
        raise invalid_request("This value must be between 1 and 100.", param="limit")
    after = params.get("starting_after")
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise invalid_request(f"No such object: '{after}'", code="resource_missing", param="starting_after")
        items = items[ids.index(after) + 1 :]
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}


def _created_filter(params: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
    created = params.get("created")
    if created is None:
        return lambda obj: True
    if isinstance(created, str):
        exact = parse_int(params, "created")
        return lambda obj: obj["created"] == exact
    bounds = {op: parse_int(created, op) for op in ("gt", "gte", "lt", "lte") if op in created}
    checks = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return lambda obj: all(checks[op](obj["created"], bound) for op, bound in bounds.items())


def create_app(state_dir: Path | None = None) -> FastAPI:
    """A fresh sandbox; with `state_dir`, its state survives a restart (the file is rewritten per change)."""
    app = FastAPI(title="Stripe-compatible sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    state = StripeState(state_dir)
    app.state.stripe = state

    @app.middleware("http")
    async def _request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = new_id("req_", 14)
        response = await call_next(request)
        response.headers["Request-Id"] = request.state.request_id
        if request.url.path.startswith("/v1/"):
            response.headers["Stripe-Version"] = answered_version(request)
        return response

    @app.exception_handler(StripeError)
    async def _on_stripe_error(request: Request, exc: StripeError) -> JSONResponse:
        return _stripe_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            return _stripe_error_response(unrecognized_url(request.method, request.url.path))
        return JSONResponse({"error": {"message": str(exc.detail), "type": "api_error"}}, exc.status_code)

    async def run(
        request: Request,
        params: dict[str, Any],
        operation: Operation,
        charge_refs: tuple[str | None, ...] | None = None,
    ) -> JSONResponse:
        """Runs a POST the way Stripe does: idempotency first, then faults (charges only), then the effect."""
        account = _authenticate(request)
        slot = None
        key = request.headers.get("idempotency-key")
        if key is not None:
            if not key or len(key) > _MAX_IDEMPOTENCY_KEY:
                raise invalid_request(
                    f"Idempotency-Key must be 1 to {_MAX_IDEMPOTENCY_KEY} characters.",
                    param="Idempotency-Key",
                )
            fingerprint = hashlib.sha256(
                json.dumps([request.method, request.url.path, params], sort_keys=True).encode()
            ).hexdigest()
            slot = IdempotencySlot(f"{account}:{key}", key, fingerprint, request.state.request_id)
            saved = state.begin_idempotent(slot)
            if saved is not None:
                return JSONResponse(
                    saved["body"],
                    saved["status"],
                    headers={"Idempotent-Replayed": "true", "Original-Request": saved["request_id"]},
                )
        hold_answer = 0.0
        try:
            forced_decline = None
            fault = state.take_fault(*charge_refs) if charge_refs is not None else None
            if fault is not None:
                if fault.mode is FaultMode.DELAY:
                    await asyncio.sleep(fault.seconds)
                elif fault.mode is FaultMode.ERROR_500_BEFORE_CHARGE:
                    raise StripeError(500, "api_error", "An unknown error occurred")
                elif fault.mode is FaultMode.TIMEOUT_AFTER_CHARGE:
                    hold_answer = fault.seconds
                elif fault.mode is FaultMode.DECLINE:
                    forced_decline = DECLINES_BY_CODE[fault.decline_code or "generic_decline"]
                elif fault.mode is FaultMode.RATE_LIMITED:
                    raise rate_limited()
            status, body = operation(slot, forced_decline)
            if fault is not None and fault.mode is FaultMode.IDEMPOTENCY_ERROR:
                raise idempotency_error(key)
        finally:
            if slot is not None:
                state.end_idempotent(slot)
        if hold_answer:
            await asyncio.sleep(hold_answer)
        return JSONResponse(body, status)

    # ----- customers ---------------------------------------------------------------------------------

    @app.post("/v1/customers")
    async def create_customer(request: Request) -> JSONResponse:
        params = await _form(request)
        return await run(request, params, lambda slot, _: state.create_customer(params, slot))

    @app.get("/v1/customers/{customer_id}")
    async def get_customer(request: Request, customer_id: str) -> dict[str, Any]:
        _authenticate(request)
        return state.get_customer(customer_id)

    @app.get("/v1/customers/{customer_id}/payment_methods")
    async def list_customer_payment_methods(request: Request, customer_id: str) -> dict[str, Any]:
        _authenticate(request)
        params = _query(request)
        items = state.customer_payment_methods(customer_id)
        return _list_body(f"/v1/customers/{customer_id}/payment_methods", items, params)

    # ----- payment methods ---------------------------------------------------------------------------

    @app.post("/v1/payment_methods")
    async def create_payment_method(request: Request) -> JSONResponse:
        params = await _form(request)
        return await run(request, params, lambda slot, _: state.create_payment_method(params, slot))

    @app.get("/v1/payment_methods")
    async def list_payment_methods(request: Request) -> dict[str, Any]:
        _authenticate(request)
        params = _query(request)
        customer = params.get("customer")
        if not customer:
            raise invalid_request("The sandbox lists payment methods by customer only.", param="customer")
        return _list_body("/v1/payment_methods", state.customer_payment_methods(str(customer)), params)

    @app.get("/v1/payment_methods/{pm_id}")
    async def get_payment_method(request: Request, pm_id: str) -> dict[str, Any]:
        _authenticate(request)
        return state.get_payment_method(pm_id)

    @app.post("/v1/payment_methods/{pm_id}/attach")
    async def attach_payment_method(request: Request, pm_id: str) -> JSONResponse:
        params = await _form(request)
        return await run(request, params, lambda slot, _: state.attach_payment_method(pm_id, params, slot))

    @app.post("/v1/payment_methods/{pm_id}/detach")
    async def detach_payment_method(request: Request, pm_id: str) -> JSONResponse:
        params = await _form(request)
        return await run(request, params, lambda slot, _: state.detach_payment_method(pm_id, slot))

    # ----- payment intents ---------------------------------------------------------------------------

    @app.post("/v1/payment_intents")
    async def create_payment_intent(request: Request) -> JSONResponse:
        params = await _form(request)
        refs = (params.get("payment_method"),) if params.get("confirm") == "true" else None
        return await run(
            request,
            params,
            lambda slot, decline: state.create_payment_intent(params, slot, decline),
            charge_refs=refs,
        )

    @app.get("/v1/payment_intents")
    async def list_payment_intents(request: Request) -> dict[str, Any]:
        _authenticate(request)
        params = _query(request)
        customer = params.get("customer")
        in_range = _created_filter(params)
        items = [
            pi
            for pi in state.payment_intents_newest_first()
            if (not customer or pi["customer"] == customer) and in_range(pi)
        ]
        return _list_body("/v1/payment_intents", items, params)

    @app.get("/v1/payment_intents/search")
    async def search_payment_intents(request: Request) -> dict[str, Any]:
        _authenticate(request)
        params = _query(request)
        query = params.get("query")
        if not isinstance(query, str):
            raise invalid_request("Missing required param: query.", code="parameter_missing", param="query")
        matches = parse_query(query)
        limit = parse_int(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise invalid_request("This value must be between 1 and 100.", param="limit")
        page = params.get("page")
        offset = 0
        if page:
            # Stripe's page tokens are opaque; here one is the offset of the next result.
            try:
                offset = int(base64.urlsafe_b64decode(str(page)).decode())
            except (ValueError, UnicodeDecodeError) as exc:
                raise invalid_request("Invalid page token.", param="page") from exc
        found = [pi for pi in state.payment_intents_newest_first() if matches(pi)]
        data = found[offset : offset + limit]
        has_more = len(found) > offset + limit
        next_page = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if has_more else None
        return {
            "object": "search_result",
            "data": data,
            "has_more": has_more,
            "next_page": next_page,
            "url": "/v1/payment_intents/search",
        }

    @app.get("/v1/payment_intents/{pi_id}")
    async def get_payment_intent(request: Request, pi_id: str) -> dict[str, Any]:
        _authenticate(request)
        return state.get_payment_intent(pi_id)

    @app.post("/v1/payment_intents/{pi_id}/confirm")
    async def confirm_payment_intent(request: Request, pi_id: str) -> JSONResponse:
        params = await _form(request)
        known = state.payment_intents.get(pi_id)
        refs = (params.get("payment_method"), known["payment_method"] if known else None)
        return await run(
            request,
            params,
            lambda slot, decline: state.confirm_payment_intent(pi_id, params, slot, decline),
            charge_refs=refs,
        )

    @app.get("/v1/charges/{charge_id}")
    async def get_charge(request: Request, charge_id: str) -> dict[str, Any]:
        _authenticate(request)
        return state.get_charge(charge_id)

    # Webhook endpoints and the events invoices, credit notes and disputes send them; the files dispute evidence names.
    webhooks = WebhookBook()
    files = FileCabinet(state)
    add_webhook_routes(app, state, webhooks, run, _authenticate, _form)
    add_invoice_routes(app, state, webhooks, run, _authenticate, _form)
    add_credit_note_routes(app, state, webhooks, run, _authenticate, _form, _query, _list_body)
    add_file_routes(app, files, run, _authenticate)
    add_dispute_routes(app, state, webhooks, files, run, _authenticate, _form)
    # Chargebee's and Recurly's APIs beside Stripe's, in the same process (bases `<sandbox>/chargebee`, `/recurly`).
    app.mount("/chargebee", chargebee.create_app())
    app.mount("/recurly", recurly.create_app())

    # ----- sandbox controls (no auth: they are not Stripe's) ---------------------------------------------

    @app.get("/_sandbox/ledger")
    async def ledger() -> list[dict[str, Any]]:
        return state.ledger_entries()

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return {"reset": True}

    @app.post("/_sandbox/faults")
    async def add_fault(fault: Fault) -> dict[str, Any]:
        state.add_fault(fault)
        return fault.model_dump(mode="json")

    @app.get("/_sandbox/faults")
    async def list_faults() -> list[dict[str, Any]]:
        return [fault.model_dump(mode="json") for fault in state.armed_faults()]

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> dict[str, bool]:
        state.clear_faults()
        return {"cleared": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
