"""The read side's public routes: the recovery list, the recovery intent, the analytics, the timeline and the
disputes on recovered payments.

Authenticated here and answered by the analytics service (it owns the read model), as gateway.py does for the
events and process-tracker APIs. Merchant-scoped through the API key, and profile-scoped when `x-profile-id` names
a profile (gateway.py); the admin key may name any merchant with the `merchant_id` query parameter (or
`x-merchant-id`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from recovery_contracts.api.analytics import (
    RecoveryAnalyticsResponse,
    RecoveryPaymentListResponse,
    RecoveryStatus,
    RevenueRecoveryGetIntentResponse,
)
from recovery_contracts.api.disputes import DisputeListConstraints
from recovery_contracts.api.errors import ApiError
from recovery_contracts.api.process_tracker import RecoveryTimelineResponse
from recovery_contracts.disputes import DisputeObject, DisputeState
from recovery_contracts.messages import RecordBackState
from recovery_intake.domain.access import READ_PAYMENTS, Access
from recovery_intake.domain.api_keys import same_secret
from recovery_intake.http.auth import Caller, credentials_of
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ApiProblem
from recovery_intake.http.gateway import GATEWAY_RESPONSES, Forwarder, owner_id

TAG = "Revenue recovery (read side)"


def reader_for(ctx: ApiContext, access: Access) -> Callable[[Request], Awaitable[Caller]]:
    """Who reads, for a route of the merchant's records with `access`: the merchant of the key, or the one the admin
    key names with the `merchant_id` query parameter (a merchant key naming another merchant reads as naming one that
    does not exist)."""

    async def reader(request: Request) -> Caller:
        """The merchant whose records are read: the key's, or the one the admin key names."""
        named = request.query_params.get("merchant_id")
        credentials = credentials_of(request)
        key = credentials.api_key
        if named is not None and key is not None and same_secret(key, ctx.settings.admin_api_key):
            merchant_id = owner_id(named, ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
            if await ctx.stored.merchants.get(merchant_id) is None:
                raise ApiProblem(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
            return await ctx.auth.with_profile(credentials, Caller(merchant_id=merchant_id, is_admin=True))
        caller = await ctx.auth.merchant(request, access=access)
        if named is not None and named != caller.merchant_id:
            # Another merchant's id reads as one that does not exist.
            raise ApiProblem(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        return caller

    return reader


def router(ctx: ApiContext, forwarder: Forwarder) -> APIRouter:
    api = APIRouter(responses=GATEWAY_RESPONSES)
    analytics = ctx.settings.analytics_internal_url.rstrip("/")

    reader = reader_for(ctx, READ_PAYMENTS)

    async def forward(request: Request, caller: Caller, path: str) -> Response:
        return await forwarder.forward(request, analytics, path, caller.merchant_id, caller.profile_id)

    @api.get("/v2/payments/recovery-list", tags=[TAG], response_model=RecoveryPaymentListResponse)
    async def recovery_list(
        request: Request,
        # Declared for the API's description and checked here; the analytics service reads them from the query.
        status: RecoveryStatus | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        profile_id: str | None = None,
        record_back_state: Annotated[
            list[RecordBackState] | None,
            Query(description="extension: the record back's state after its last try (repeat for several)"),
        ] = None,
        dispute_state: Annotated[
            list[DisputeState] | None,
            Query(description="extension: where the payment's disputes stand, taken together (repeat for several)"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
        cursor: str | None = None,
        merchant_id: Annotated[str | None, Query(description="admin key only: the merchant to read")] = None,
    ) -> Response:
        """Payments in revenue recovery, newest first (Hyperswitch #9409). Filters: `status` (a RecoveryStatus),
        `created_from`, `created_to`, `profile_id`, and this system's `record_back_state` (e.g. `abandoned` and
        `blocked`: the record backs to start again) and `dispute_state` (`open`: a dispute to answer; `lost`;
        `ended`: each won or cancelled); paging: `limit` (1-100) with `offset`, or `cursor` (the previous page's
        `next_cursor`)."""
        caller = await reader(request)
        return await forward(request, caller, f"/internal/recoveries/{caller.merchant_id}")

    @api.get(
        "/v2/payments/{payment_id}/get-revenue-recovery-intent",
        tags=[TAG],
        response_model=RevenueRecoveryGetIntentResponse,
    )
    async def revenue_recovery_intent(payment_id: str, request: Request) -> Response:
        caller = await reader(request)
        payment = owner_id(payment_id, ApiError.PAYMENT_NOT_FOUND)
        return await forward(request, caller, f"/internal/recoveries/{caller.merchant_id}/{payment}")

    @api.get("/v2/revenue-recovery/analytics", tags=[TAG], response_model=RecoveryAnalyticsResponse)
    async def recovery_analytics(
        request: Request,
        from_: Annotated[str | None, Query(alias="from", description="first UTC day, YYYY-MM-DD")] = None,
        to: Annotated[str | None, Query(description="last UTC day, YYYY-MM-DD (included)")] = None,
        profile_id: str | None = None,
        merchant_id: Annotated[str | None, Query(description="admin key only: the merchant to read")] = None,
    ) -> Response:
        """Recovery figures of the payments accepted from `from` to `to` (UTC days, both included; default the
        last 30 days), optionally of one `profile_id`."""
        caller = await reader(request)
        return await forward(request, caller, f"/internal/analytics/{caller.merchant_id}")

    @api.get(
        "/v2/process-trackers/revenue-recovery-workflow/{payment_id}/timeline",
        tags=["Process tracker"],
        response_model=RecoveryTimelineResponse,
    )
    async def payment_timeline(payment_id: str, request: Request) -> Response:
        """The payment's story from the read model: the request, each attempt, the updates, webhook failures, the
        end (docs/analytics.md)."""
        caller = await reader(request)
        payment = owner_id(payment_id, ApiError.PAYMENT_NOT_FOUND)
        return await forward(request, caller, f"/internal/timeline/{caller.merchant_id}/{payment}")

    @api.get("/v2/disputes/list", tags=["Disputes"], response_model=list[DisputeObject])
    async def dispute_list(
        request: Request,
        # Declared for the API's description and checked here; the analytics service reads it from the query.
        asked: Annotated[DisputeListConstraints, Query()],
        merchant_id: Annotated[str | None, Query(description="admin key only: the merchant to read")] = None,
    ) -> Response:
        """The disputes the payment connector told of on recovered payments, each as it stands now (Hyperswitch's
        `DisputeResponse`), newest first or, `sort=answer_by`, the earliest deadline to answer
        (`challenge_required_by`) first: `dispute_status=dispute_opened&sort=answer_by` lists those waiting for the
        merchant's answer, the most urgent first."""
        caller = await reader(request)
        return await forward(request, caller, f"/internal/disputes/{caller.merchant_id}")

    @api.get("/v2/disputes/{dispute_id}", tags=["Disputes"], response_model=DisputeObject)
    async def dispute(dispute_id: str, request: Request) -> Response:
        """One dispute on a recovered payment, as it stands now (Hyperswitch's `DisputeResponse`)."""
        caller = await reader(request)
        dispute = owner_id(dispute_id, ApiError.DISPUTE_NOT_FOUND)
        return await forward(request, caller, f"/internal/disputes/{caller.merchant_id}/{dispute}")

    return api
