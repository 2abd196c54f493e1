"""`POST /v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_id}`: billing systems' webhooks.

No API key: the provider authenticates by its own scheme (Stripe-Signature; Chargebee's basic auth;
recurly-signature), checked against the account. Refusals answer Hyperswitch's error body, like every other route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from recovery_contracts.api.errors import ApiError, ErrorResponse
from recovery_intake.domain.deliveries import EventRefused, ProviderApiError, RefusalKind
from recovery_intake.handlers.billing_events import BillingEvents
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem

# How a refused delivery is answered (the payment connector's webhooks answer the same).
_REFUSALS = {
    RefusalKind.UNAUTHENTICATED: ApiError.GENERIC_UNAUTHORIZED,  # 401
    RefusalKind.NOT_FOUND: ApiError.GENERIC_NOT_FOUND,  # 404, as for an account that does not exist
    RefusalKind.INVALID: ApiError.NOT_SUPPORTED,  # 400
}
_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERROR_RESPONSES,
    503: {"model": ErrorResponse, "description": "the billing system's API could not be read: deliver again"},
}


# A provider's delivery handler: (merchant, profile, account, body, headers) -> (outcome, payment id).
Delivery = Callable[[str, str, str, bytes, Mapping[str, str]], Awaitable[tuple[str, str | None]]]


async def answer_delivery(
    deliver: Delivery,
    merchant_id: str,
    profile_id: str,
    account_id: str,
    request: Request,
    unavailable: ApiError = ApiError.BILLING_SYSTEM_UNAVAILABLE,
) -> JSONResponse:
    """A provider's webhook delivery, answered: 200 with its outcome; a refusal as Hyperswitch's error body;
    `unavailable` (503 `CE_01`, naming the provider) when the provider's API could not be read (not applied: the
    provider delivers it again later). The billing systems' door and the payment connector's
    (http/payment_webhooks.py) answer alike."""
    payload = await request.body()
    try:
        outcome, payment_id = await deliver(merchant_id, profile_id, account_id, payload, request.headers)
    except EventRefused as refused:
        raise ApiProblem(_REFUSALS[refused.kind], refused.reason, message=refused.reason) from None
    except ProviderApiError as error:
        raise ApiProblem(unavailable, str(error), message=str(error)) from None
    return JSONResponse({"received": True, "outcome": outcome, "payment_id": payment_id})


def router(events: BillingEvents) -> APIRouter:
    api = APIRouter(tags=["Billing webhooks"], responses=_RESPONSES)

    @api.post("/v2/webhooks/recovery/{merchant_id}/{profile_id}/{connector_id}")
    async def billing_webhook(merchant_id: str, profile_id: str, connector_id: str, request: Request) -> JSONResponse:
        return await answer_delivery(events.delivery, merchant_id, profile_id, connector_id, request)

    return api
