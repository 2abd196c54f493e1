"""`POST /v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_id}`: billing systems' webhooks.

No API key: the provider authenticates by its own scheme (Stripe-Signature; Chargebee's basic auth), checked
against the account."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from recovery_intake.adapters.stripe_billing import BillingApiError
from recovery_intake.domain.billing_events import EventRefused, RefusalKind
from recovery_intake.handlers.billing_events import BillingEvents

_STATUS = {RefusalKind.UNAUTHENTICATED: 401, RefusalKind.NOT_FOUND: 404, RefusalKind.INVALID: 400}


def router(events: BillingEvents) -> APIRouter:
    api = APIRouter(tags=["Billing webhooks"])

    @api.post("/v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_id}")
    async def billing_webhook(merchant_id: str, profile_id: str, connector_id: str, request: Request) -> JSONResponse:
        payload = await request.body()
        try:
            outcome, payment_id = await events.delivery(merchant_id, profile_id, connector_id, payload, request.headers)
        except EventRefused as refused:
            body = {"error": {"type": refused.kind.value, "message": refused.reason}}
            return JSONResponse(body, _STATUS[refused.kind])
        except BillingApiError as error:
            # Not applied: the provider delivers it again later.
            return JSONResponse({"error": {"type": "billing_api_unavailable", "message": str(error)}}, 503)
        return JSONResponse({"received": True, "outcome": outcome, "payment_id": payment_id})

    return api
