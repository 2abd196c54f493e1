"""The events API, the process-tracker API, the retry statistics and a card's token status: authenticated here,
answered by the service owning the data.

`/events/...` is the webhook dispatcher's (it owns the event records), `/v2/process-trackers/...`,
`/v2/revenue-recovery/retry-stats`, `/v2/recovery/data-backfill/token-status` and `.../update-token` the
scheduler's (it owns the recoveries, counts their attempts and keeps the merchant's card budgets with the hard
declines on each), except a resume of `PSYNC_WORKFLOW`: the record back to the billing system started again, the
executor's (it owns the record backs), after which the scheduler answers the workflow as any resume does. Intake
checks the API key and the merchant, then forwards the call to the owner's internal endpoint with the internal
token, the merchant id and the profile id when `x-profile-id` named one (checked to be the merchant's); the owner
scopes every query to them (`recovery_runtime.internal_api.InternalScope`): on a profile-level call another
profile's payment or event answers as one that does not exist, as `GET /v2/payments/{id}` does here.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import httpx
import structlog
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from recovery_contracts.api.data_backfill import (
    TokenStatusResponse,
    UpdateTokenStatusRequest,
    UpdateTokenStatusResponse,
)
from recovery_contracts.api.errors import ApiError, ErrorResponse, describe_validation_errors
from recovery_contracts.api.events import (
    EventListConstraints,
    EventRecoverRequest,
    EventRecoverResponse,
    EventRetrieveResponse,
    TotalEventsResponse,
    WebhookEndpointsResponse,
)
from recovery_contracts.api.fields import EXTERNAL_REFERENCE_CHARS
from recovery_contracts.api.process_tracker import RevenueRecoveryTask
from recovery_contracts.api.retry_stats import RetryStatsResponse
from recovery_intake.domain.access import READ_PAYMENTS, WRITE_PAYMENTS, Access
from recovery_intake.http.auth import Caller
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem
from recovery_runtime.internal_api import MERCHANT_HEADER, PROFILE_HEADER, TOKEN_HEADER

log = structlog.get_logger(__name__)

_PASSED_HEADERS = ("content-type", "retry-after")
# An owner that does not answer: the client may send the same request again after this many seconds.
RETRY_LATER = {"retry-after": "5"}
GATEWAY_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERROR_RESPONSES,
    503: {"model": ErrorResponse, "description": "the service that owns the resource is not reachable: retry later"},
}


_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _body_of(model: type[BaseModel], *, required: bool = True) -> dict[str, object]:
    """A forwarded route's request body as OpenAPI describes it (the owner reads and validates it): the model's
    schema with its definitions written in place, as pydantic's `#/$defs/...` references would name nothing in the
    OpenAPI document."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def in_place(node: Any) -> Any:
        if isinstance(node, list):
            return [in_place(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return {**in_place(defs[ref.removeprefix("#/$defs/")]), **in_place(rest)}
        return {key: in_place(value) for key, value in node.items()}

    content = {"application/json": {"schema": in_place(schema)}}
    return {"requestBody": {"required": required, "content": content}}


TOKEN_STATUS_BODY = _body_of(UpdateTokenStatusRequest)
RECOVER_BODY = _body_of(EventRecoverRequest)
# The list's filters travel in the body, as in Hyperswitch; none at all lists the newest events.
LIST_BODY = _body_of(EventListConstraints, required=False)


async def _resumed_task(request: Request) -> str | None:
    """The `revenue_recovery_task` a resume names, as far as its body says (the owner validates the rest); a
    `retry_count` (Hyperswitch's override of its process-tracker row's retry count) is refused: a resume here plans one
    attempt or starts one round of record-back tries, whatever the ladder's position."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("retry_count") is not None:
        refused = (
            "retry_count cannot be set here: a resume plans one attempt (EXECUTE_WORKFLOW) or one round of record-back "
            "tries (PSYNC_WORKFLOW), whatever the ladder's position"
        )
        raise ApiProblem(ApiError.NOT_SUPPORTED, message=refused)
    task = body.get("revenue_recovery_task")
    return task if isinstance(task, str) else None


def owner_id(value: str, not_found: ApiError) -> str:
    """An id safe to put in the owner's path (no `/`, `..` or escapes); anything else cannot exist."""
    if not _ID.fullmatch(value):
        raise ApiProblem(not_found)
    return value


class Forwarder:
    def __init__(self, token: str, timeout: float) -> None:
        self._token = token
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def forward(
        self,
        request: Request,
        base_url: str,
        path: str,
        merchant_id: str,
        profile_id: str | None,
        *,
        method: str | None = None,
    ) -> Response:
        """The owner's answer to the request (`method`: another method, without the request's body)."""
        headers = {TOKEN_HEADER: self._token, MERCHANT_HEADER: merchant_id, "content-type": "application/json"}
        if profile_id:
            headers[PROFILE_HEADER] = profile_id
        try:
            answer = await self._client.request(
                method or request.method,
                f"{base_url}{path}",
                # Every value of a repeated parameter (a plain mapping would keep the last one only).
                params=tuple(request.query_params.multi_items()),
                content=b"" if method else await request.body(),
                headers=headers,
            )
        except httpx.HTTPError as error:
            # Not reachable, or no answer in time: a 503 the client may retry, not a 500.
            log.warning("gateway.owner_unreachable", owner=base_url, error=type(error).__name__)
            raise ApiProblem(ApiError.OWNER_UNAVAILABLE, headers=RETRY_LATER) from error
        if answer.status_code >= 400 and not _is_error_body(answer):
            raise _problem_for(answer)
        return Response(
            content=answer.content,
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() in _PASSED_HEADERS},
        )

    async def close(self) -> None:
        await self._client.aclose()


def _is_error_body(answer: httpx.Response) -> bool:
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


def _problem_for(answer: httpx.Response) -> ApiProblem:
    """An owner's answer that is not Hyperswitch's error body (a framework's own validation or routing error),
    turned into one, so every answer of the public API has the documented shape."""
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if answer.status_code in (400, 422):
        described = describe_validation_errors(detail) if isinstance(detail, list) else str(detail or "")
        return ApiProblem(ApiError.INVALID_REQUEST_BODY, detail=described or "invalid request")
    if answer.status_code == 404:
        return ApiProblem(ApiError.RESOURCE_ID_NOT_FOUND)
    if answer.status_code == 405:
        return ApiProblem(ApiError.INVALID_HTTP_METHOD)
    if answer.status_code in (502, 503, 504):
        log.warning("gateway.owner_unavailable", status=answer.status_code)
        return ApiProblem(ApiError.OWNER_UNAVAILABLE, headers=RETRY_LATER)
    log.warning("gateway.owner_error", status=answer.status_code)
    return ApiProblem(ApiError.INTERNAL_SERVER_ERROR)


def router(ctx: ApiContext, forwarder: Forwarder) -> APIRouter:
    api = APIRouter(responses=GATEWAY_RESPONSES)
    dispatcher = ctx.settings.dispatcher_internal_url.rstrip("/")
    scheduler = ctx.settings.scheduler_internal_url.rstrip("/")
    executor = (ctx.settings.executor_internal_url or "").rstrip("/") or None

    async def merchant_of_path(request: Request, merchant_id: str, access: Access) -> Caller:
        caller = await ctx.auth.merchant(request, access=access)
        # Another merchant's id reads as one that does not exist.
        if caller.merchant_id != merchant_id:
            raise ApiProblem(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        return caller

    @api.post("/events/{merchant_id}", tags=["Events"], response_model=TotalEventsResponse, openapi_extra=LIST_BODY)
    async def list_events(merchant_id: str, request: Request) -> Response:
        # A read, although a POST (the filters travel in the body, as in Hyperswitch).
        caller = await merchant_of_path(request, merchant_id, READ_PAYMENTS)
        path = f"/internal/events/{caller.merchant_id}/list"
        return await forwarder.forward(request, dispatcher, path, caller.merchant_id, caller.profile_id)

    @api.get("/events/{merchant_id}/{event_id}/attempts", tags=["Events"], response_model=list[EventRetrieveResponse])
    async def list_event_attempts(merchant_id: str, event_id: str, request: Request) -> Response:
        caller = await merchant_of_path(request, merchant_id, READ_PAYMENTS)
        path = f"/internal/events/{caller.merchant_id}/{owner_id(event_id, ApiError.EVENT_NOT_FOUND)}/attempts"
        return await forwarder.forward(request, dispatcher, path, caller.merchant_id, caller.profile_id)

    @api.post("/events/{merchant_id}/{event_id}/retry", tags=["Events"], response_model=EventRetrieveResponse)
    async def retry_event(merchant_id: str, event_id: str, request: Request) -> Response:
        caller = await merchant_of_path(request, merchant_id, WRITE_PAYMENTS)
        path = f"/internal/events/{caller.merchant_id}/{owner_id(event_id, ApiError.EVENT_NOT_FOUND)}/retry"
        return await forwarder.forward(request, dispatcher, path, caller.merchant_id, caller.profile_id)

    @api.post(
        "/events/{merchant_id}/recover",
        tags=["Events"],
        response_model=EventRecoverResponse,
        openapi_extra=RECOVER_BODY,
    )
    async def recover_events(merchant_id: str, request: Request) -> Response:
        """Extension (Svix's "recover"): the merchant's events whose delivery failed, created from `since` (at most
        14 days ago) to `until`, delivered again, oldest first, at most 200 a call (`next_cursor` for the next), each
        on a new round of its retry schedule (docs/webhooks.md, "Delivering failed events again"). A key with the
        `payments` scope; on a profile-level call (`x-profile-id`), that profile's events."""
        caller = await merchant_of_path(request, merchant_id, WRITE_PAYMENTS)
        path = f"/internal/events/{caller.merchant_id}/recover"
        return await forwarder.forward(request, dispatcher, path, caller.merchant_id, caller.profile_id)

    @api.get("/events/{merchant_id}/endpoints", tags=["Events"], response_model=WebhookEndpointsResponse)
    async def webhook_endpoint_health(merchant_id: str, request: Request) -> Response:
        # Extension: each webhook endpoint's breaker, disabled flag, success rate and latency (docs/webhooks.md).
        caller = await merchant_of_path(request, merchant_id, READ_PAYMENTS)
        return await forwarder.forward(
            request, dispatcher, f"/internal/endpoints/{caller.merchant_id}", caller.merchant_id, caller.profile_id
        )

    @api.get("/v2/process-trackers/revenue-recovery-workflow/{payment_id}", tags=["Process tracker"])
    async def revenue_recovery_workflow(payment_id: str, request: Request) -> Response:
        caller = await ctx.auth.merchant(request, access=READ_PAYMENTS)
        path = f"/internal/recoveries/{caller.merchant_id}/{owner_id(payment_id, ApiError.PAYMENT_NOT_FOUND)}"
        return await forwarder.forward(request, scheduler, path, caller.merchant_id, caller.profile_id)

    @api.post("/v2/process-trackers/revenue-recovery-workflow/{payment_id}/resume", tags=["Process tracker"])
    async def resume_revenue_recovery_workflow(
        payment_id: str,
        request: Request,
        dispute_id: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=64,
                description=(
                    "extension, with `PSYNC_WORKFLOW` only: start again the refund record of this dispute lost on "
                    "the payment (its `dispute_id`, as the `dispute_lost` webhook and the timeline's `disputes` "
                    "give it) instead of the payment's own record back"
                ),
            ),
        ] = None,
    ) -> Response:
        """Hyperswitch's resume: `EXECUTE_WORKFLOW` plans one more attempt of a failed recovery; `PSYNC_WORKFLOW`
        starts an abandoned or blocked record back to the billing system again (a new round of tries, nothing
        charged), or with `dispute_id` the refund record of a dispute lost on the payment. Answers the workflow
        (docs/retry-engine.md, "Process-tracker API")."""
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS)
        merchant, profile = caller.merchant_id, caller.profile_id
        payment = owner_id(payment_id, ApiError.PAYMENT_NOT_FOUND)
        recovery = f"/internal/recoveries/{merchant}/{payment}"
        if await _resumed_task(request) != RevenueRecoveryTask.PSYNC_WORKFLOW.value:
            if dispute_id is not None:
                refused = "dispute_id goes with revenue_recovery_task PSYNC_WORKFLOW only (a refund record restarted)"
                raise ApiProblem(ApiError.NOT_SUPPORTED, message=refused)
            return await forwarder.forward(request, scheduler, f"{recovery}/resume", merchant, profile)
        # Extension: PSYNC (Hyperswitch's task that records back) started again: an abandoned or blocked record
        # back gets a new round of tries at the executor; nothing is charged (docs/retry-engine.md, "Record back").
        if executor is None:
            unset = "record backs cannot be started again here: EXECUTOR_INTERNAL_URL is not set"
            raise ApiProblem(ApiError.NOT_SUPPORTED, message=unset)
        path = f"/internal/record-backs/{merchant}/{payment}/restart"
        # The executor reads `dispute_id` from the query forwarded with the call; an id that cannot be one of its
        # records (`_ID`) names no refund record, as an unknown one does there.
        if dispute_id is not None and not _ID.fullmatch(dispute_id):
            raise ApiProblem(ApiError.PRECONDITION_FAILED, message=f"no refund record of dispute {dispute_id!r}")
        restarted = await forwarder.forward(request, executor, path, merchant, profile)
        if restarted.status_code >= 300:
            return restarted
        return await forwarder.forward(request, scheduler, recovery, merchant, profile, method="GET")

    @api.get("/v2/revenue-recovery/retry-stats", tags=["Retry statistics"], response_model=RetryStatsResponse)
    async def retry_stats(request: Request) -> Response:
        """What the engine learned from its own attempts (extension, after Hyperswitch's
        `revenue_recovery_retry_stats`): per standardised decline code that led to an attempt, card network and
        funding, the attempts and successes in total and by day of week, day of month and hour of day, in UTC
        (docs/retry-engine.md, "Retry statistics")."""
        caller = await ctx.auth.merchant(request, access=READ_PAYMENTS)
        path = f"/internal/retry-stats/{caller.merchant_id}"
        return await forwarder.forward(request, scheduler, path, caller.merchant_id, caller.profile_id)

    @api.get("/v2/recovery/data-backfill/token-status", tags=["Payments"], response_model=TokenStatusResponse)
    async def token_status(
        request: Request,
        payment_processor_token: Annotated[
            str,
            Query(
                min_length=1,
                max_length=EXTERNAL_REFERENCE_CHARS,
                description="the saved card's token at the payment processor",
            ),
        ],
    ) -> Response:
        """Extension: one of the merchant's saved cards as its recoveries see it: hard-declined or not, each hard
        decline recorded on it (the merchant's mark, or the payment that met it) until when it counts, and the
        merchant's attempts on it in the last 30 days and planned. A key with the `payments` or `read_only`
        scope, or the admin key with `x-merchant-id`."""
        caller = await ctx.auth.merchant(request, access=READ_PAYMENTS)
        path = f"/internal/cards/{caller.merchant_id}/token-status"
        return await forwarder.forward(request, scheduler, path, caller.merchant_id, caller.profile_id)

    @api.put(
        "/v2/recovery/data-backfill/update-token",
        tags=["Payments"],
        response_model=UpdateTokenStatusResponse,
        openapi_extra=TOKEN_STATUS_BODY,
    )
    async def update_token_status(request: Request) -> Response:
        """Hyperswitch's token status update: `is_hard_decline: true` marks one of the merchant's saved cards
        hard-declined for every recovery of the merchant (those with an attempt planned on it plan again at
        once), `false` clears the hard declines recorded on it. `updated: false` when it stood so already. A key
        with the `payments` scope, or the admin key with `x-merchant-id` (docs/retry-engine.md, "A hard decline
        is the merchant's")."""
        caller = await ctx.auth.merchant(request, access=WRITE_PAYMENTS)
        path = f"/internal/cards/{caller.merchant_id}/token-status"
        return await forwarder.forward(request, scheduler, path, caller.merchant_id, caller.profile_id)

    return api
