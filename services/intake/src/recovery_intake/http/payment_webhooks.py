"""`POST /v2/webhooks/{merchant_id}/{profile_id}/{connector_account_id}`: the payment connector's webhooks
(Hyperswitch's incoming webhook path), today Stripe's `charge.dispute.closed`.

No API key: Stripe authenticates with `Stripe-Signature`, checked against the payment connector account's
`connector_webhook_details.merchant_secret`. Refusals answer Hyperswitch's error body, as the billing webhooks'."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from recovery_contracts.api.errors import ApiError, ErrorResponse
from recovery_intake.handlers.payment_events import PaymentEvents
from recovery_intake.http.billing_webhooks import answer_delivery
from recovery_intake.http.errors import ERROR_RESPONSES

_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERROR_RESPONSES,
    503: {"model": ErrorResponse, "description": "the payment connector's API could not be read: deliver again"},
}


def router(events: PaymentEvents) -> APIRouter:
    api = APIRouter(tags=["Payment connector webhooks"], responses=_RESPONSES)

    @api.post("/v2/webhooks/{merchant_id}/{profile_id}/{connector_account_id}")
    async def payment_connector_webhook(
        merchant_id: str, profile_id: str, connector_account_id: str, request: Request
    ) -> JSONResponse:
        # A Stripe not answering is answered 503 CE_01, as at the billing webhooks: Stripe delivers the event again.
        unavailable = ApiError.PAYMENT_CONNECTOR_UNAVAILABLE
        return await answer_delivery(
            events.delivery, merchant_id, profile_id, connector_account_id, request, unavailable
        )

    return api
