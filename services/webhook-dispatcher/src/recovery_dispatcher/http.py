"""The events API behind intake (`/events/{merchant_id}/…` forwarded to `/internal/events/…`), and the endpoint
health the console reads (`/internal/endpoints/{merchant_id}`).

Hyperswitch's paths and fields; the merchant in `x-internal-merchant-id` scopes every query, so another
merchant's event ids answer 404 as unknown ones do. A profile-level call (`x-internal-profile-id`) sees only that
profile's events and endpoints: another profile's event answers as an unknown one, and a list filtered to another
profile (`profile_id` in the body) is empty, as for a profile without events.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from recovery_contracts.api.errors import ApiError, validation_error_response
from recovery_contracts.api.events import (
    EVENTS_COUNT_CAP,
    EndpointBreaker,
    EndpointLatency,
    EventListConstraints,
    EventListItemResponse,
    EventRecoverRequest,
    EventRecoverResponse,
    EventRetrieveResponse,
    TotalEventsResponse,
    WebhookEndpointHealth,
    WebhookEndpointsResponse,
)
from recovery_dispatcher.dependencies import EndpointStatusReads, EventQueries, EventRepository
from recovery_dispatcher.domain.endpoint_status import EndpointStatus
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.ids import CLOCK_SKEW, MERCHANT_ID, created_at_of, record_key
from recovery_dispatcher.domain.outgoing_webhook import recorded_headers
from recovery_dispatcher.handlers.recover_failed import Recovered, RecoverRefused, RecoverRunning
from recovery_runtime.internal_api import InternalCaller, InternalScope

DEFAULT_PAGE = 10
# The recover of a window: (merchant, since, until, profile, cursor) -> the events delivered again.
Recover = Callable[[str, datetime, datetime | None, str | None, str | None], Awaitable[Recovered]]


def _problem(error: ApiError, **params: Any) -> JSONResponse:
    return JSONResponse(error.response(**params).model_dump(exclude_none=True), status_code=error.status_code)


def list_item(doc: dict[str, Any]) -> dict[str, Any]:
    initial = doc.get("delivery_attempt") == "initial_attempt"
    succeeded = doc.get("is_overall_delivery_successful") if initial else doc.get("is_webhook_notified")
    return {
        "event_id": doc["event_id"],
        "merchant_id": doc["merchant_id"],
        "profile_id": doc["business_profile_id"],
        "object_id": doc["primary_object_id"],
        "event_type": doc["event_type"],
        "event_class": doc["event_class"],
        # The event's overall result on the initial record; this attempt's own result on a retry record.
        "is_delivery_successful": succeeded,
        "initial_attempt_id": doc["initial_attempt_id"],
        "created": doc["created_at"],
    }


def attempt_item(doc: dict[str, Any]) -> EventRetrieveResponse:
    request = doc.get("request") or {"headers": []}
    if request.get("body") is None:
        # An initial record keeps the body once, in `body` (bytes): its request is that body.
        request = {**request, "body": bytes(doc.get("body") or b"").decode()}
    response = doc.get("response") or {}
    return EventRetrieveResponse.model_validate(
        {
            **list_item(doc),
            # Masked again: records written before custom header values were masked hold them as sent.
            "request": {"body": request["body"], "headers": list(recorded_headers(request["headers"]))},
            "response": {
                "body": response.get("body"),
                "headers": [tuple(h) for h in response["headers"]] if response.get("headers") is not None else None,
                "status_code": response.get("status_code"),
                "error_message": response.get("error_message"),
            },
            "delivery_attempt": doc.get("delivery_attempt"),
        }
    )


@dataclass
class _ListQuery:
    """A list request as a records query: `filters` and the `_id` range's time bounds (to the millisecond)."""

    filters: dict[str, Any]
    after: datetime | None = None
    before: datetime | None = None


def _list_query(
    merchant_id: str, constraints: EventListConstraints, payment_event_ids: list[str] | None = None
) -> _ListQuery:
    """The records query of a list request. `payment_event_ids`: the initial events of `object_id` when it is a
    payment (the caller reads them from the claims); else `object_id` is an event's primary object (an attempt, or
    a dispute), looked for from its creation when its id tells it (time-ordered ids)."""
    query = _ListQuery({})
    created: dict[str, Any] = {}
    if constraints.created_after is not None:
        created["$gte"] = query.after = constraints.created_after
    if constraints.created_before is not None:
        created["$lte"] = query.before = constraints.created_before
    if created:
        query.filters["created_at"] = created
    ids: set[str] | None = None
    if constraints.object_id is not None:
        if payment_event_ids:
            # Merchants also look events up by payment id.
            ids = set(payment_event_ids)
        else:
            # The primary object: the attempt, or the dispute of a dispute event (as Hyperswitch's).
            query.filters["primary_object_id"] = constraints.object_id
            created_at = created_at_of(constraints.object_id, datetime.now(UTC))
            if created_at is not None:
                since = created_at - CLOCK_SKEW
                query.after = since if query.after is None else max(query.after, since)
    if constraints.event_id is not None:
        # Initial records only are listed, and an initial record's id is its `initial_attempt_id`.
        ids = {constraints.event_id} if ids is None else ids & {constraints.event_id}
    if ids is not None:
        query.filters["_id"] = {"$in": sorted(record_key(merchant_id, event_id) for event_id in ids)}
    if constraints.profile_id is not None:
        query.filters["business_profile_id"] = constraints.profile_id
    if constraints.event_classes:
        query.filters["event_class"] = {"$in": [c.value for c in constraints.event_classes]}
    if constraints.event_types:
        query.filters["event_type"] = {"$in": [t.value for t in constraints.event_types]}
    if constraints.is_delivered is not None:
        query.filters["is_overall_delivery_successful"] = bool(constraints.is_delivered)
    return query


def router(
    events: EventRepository,
    queries: EventQueries,
    retry_event: Callable[[WebhookEvent], Awaitable[dict[str, Any]]],
    recover: Recover,
    caller: InternalCaller,
) -> APIRouter:
    """`retry_event`: the manual retry of an event (handlers.manual_retry), returning its attempt's record;
    `recover`: the failed events of a window delivered again (handlers.recover_failed)."""
    api = APIRouter(prefix="/internal/events", include_in_schema=False)

    async def initial_event(scope: InternalScope, merchant_id: str, event_id: str) -> WebhookEvent | None:
        """The event the call may see: another merchant's, or another profile's on a profile-level call, is None,
        as one that does not exist."""
        initial = await events.load_initial(scope.merchant_id, event_id) if scope.merchant_id == merchant_id else None
        return initial if initial is not None and scope.owns(initial.merchant_id, initial.profile_id) else None

    async def page_of(merchant_id: str, constraints: EventListConstraints) -> tuple[list[dict[str, Any]], int, bool]:
        payment_event_ids = None
        if constraints.object_id is not None:
            payment_event_ids = await queries.event_ids_of_payment(constraints.object_id)
        query = _list_query(merchant_id, constraints, payment_event_ids)
        return await queries.list_initial(
            merchant_id,
            query.filters,
            constraints.offset or 0,
            constraints.limit or DEFAULT_PAGE,
            after=query.after,
            before=query.before,
            below=record_key(merchant_id, constraints.cursor) if constraints.cursor is not None else None,
        )

    @api.post("/{merchant_id}/list")
    async def list_events(merchant_id: str, request: Request, scope: InternalScope = Depends(caller)) -> JSONResponse:
        if scope.merchant_id != merchant_id or not MERCHANT_ID.fullmatch(merchant_id):
            return _problem(ApiError.EVENT_NOT_FOUND)
        raw = await request.body()
        try:
            constraints = EventListConstraints.model_validate_json(raw or b"{}")
        except ValidationError as error:
            response = validation_error_response(error.errors())
            return JSONResponse(response.model_dump(exclude_none=True), status_code=400)
        profile_id = scope.list_profile(constraints.profile_id)
        if scope.owns(merchant_id, profile_id):
            docs, total, more = await page_of(merchant_id, constraints.model_copy(update={"profile_id": profile_id}))
        else:
            # Another profile's events, asked for on a profile-level call: none, as of a profile that does not exist.
            docs, total, more = [], 0, False
        body = TotalEventsResponse(
            events=[EventListItemResponse.model_validate(list_item(d)) for d in docs],
            total_count=total,
            total_count_capped=total >= EVENTS_COUNT_CAP,
            # Only when an event follows the page: the next page starts after this page's last (oldest) one.
            next_cursor=docs[-1]["event_id"] if more and docs else None,
        )
        return JSONResponse(json.loads(body.model_dump_json()))

    @api.post("/{merchant_id}/recover")
    async def recover_events(
        merchant_id: str, request: Request, scope: InternalScope = Depends(caller)
    ) -> JSONResponse:
        if scope.merchant_id != merchant_id or not MERCHANT_ID.fullmatch(merchant_id):
            return _problem(ApiError.EVENT_NOT_FOUND)
        try:
            asked = EventRecoverRequest.model_validate_json(await request.body() or b"{}")
        except ValidationError as error:
            response = validation_error_response(error.errors())
            return JSONResponse(response.model_dump(exclude_none=True), status_code=400)
        profile_id = scope.list_profile(asked.profile_id)
        if not scope.owns(merchant_id, profile_id):
            # Another profile's events, asked for on a profile-level call: none, as of a profile without events.
            return JSONResponse(json.loads(EventRecoverResponse(recovered_count=0, event_ids=[]).model_dump_json()))
        try:
            done = await recover(merchant_id, asked.since, asked.until, profile_id, asked.cursor)
        except RecoverRefused as refused:
            return _problem(ApiError.INVALID_REQUEST_DATA, message=str(refused))
        except RecoverRunning:
            # Hyperswitch's answer to a resource in use: send it again once the running one answered.
            return _problem(ApiError.RESOURCE_BUSY)
        body = EventRecoverResponse(
            recovered_count=len(done.event_ids),
            event_ids=done.event_ids,
            next_cursor=done.next_cursor,
            refused_profiles=done.refused_profiles,
        )
        return JSONResponse(json.loads(body.model_dump_json()))

    @api.get("/{merchant_id}/{event_id}/attempts")
    async def attempts(merchant_id: str, event_id: str, scope: InternalScope = Depends(caller)) -> JSONResponse:
        initial = await initial_event(scope, merchant_id, event_id)
        if initial is None:
            return _problem(ApiError.EVENT_NOT_FOUND)
        docs = await queries.attempts_of(scope.merchant_id, initial.event_id)
        return JSONResponse([json.loads(attempt_item(d).model_dump_json()) for d in docs])

    @api.post("/{merchant_id}/{event_id}/retry")
    async def retry(merchant_id: str, event_id: str, scope: InternalScope = Depends(caller)) -> JSONResponse:
        initial = await initial_event(scope, merchant_id, event_id)
        if initial is None:
            return _problem(ApiError.EVENT_NOT_FOUND)
        try:
            record = await retry_event(initial)
        except LookupError as missing:
            return _problem(ApiError.PRECONDITION_FAILED, message=str(missing))
        return JSONResponse(json.loads(attempt_item(record).model_dump_json()))

    return api


def endpoint_item(status: EndpointStatus) -> WebhookEndpointHealth:
    breaker, recent = status.breaker, status.recent
    return WebhookEndpointHealth(
        profile_id=status.profile_id,
        url=status.url,
        current=status.current,
        enabled=status.enabled,
        disabled=status.disabled,
        disabled_reason=status.disabled_reason,
        failing_since=status.failing_since,
        breaker=EndpointBreaker(
            state=breaker.state.value,
            consecutive_failures=breaker.consecutive_failures,
            opened_at=breaker.opened_at,
            retry_at=breaker.retry_at(),
        ),
        slow_responses=status.slow_responses,
        last_slow_at=status.last_slow_at,
        recent_attempts=recent.attempts,
        recent_delivered=recent.delivered,
        success_rate=recent.success_rate,
        latency_ms=EndpointLatency(mean=recent.latency_ms_mean, p90=recent.latency_ms_p90),
    )


def endpoints_router(statuses: EndpointStatusReads, caller: InternalCaller) -> APIRouter:
    """`GET /internal/endpoints/{merchant_id}`: every endpoint of the merchant's profiles with its health (of the
    one profile on a profile-level call)."""
    api = APIRouter(prefix="/internal/endpoints", include_in_schema=False)

    @api.get("/{merchant_id}")
    async def endpoints(merchant_id: str, scope: InternalScope = Depends(caller)) -> JSONResponse:
        if scope.merchant_id != merchant_id or not MERCHANT_ID.fullmatch(merchant_id):
            return _problem(ApiError.MERCHANT_ACCOUNT_NOT_FOUND)
        found = [s for s in await statuses.of_merchant(merchant_id) if scope.owns(merchant_id, s.profile_id)]
        body = WebhookEndpointsResponse(merchant_id=merchant_id, endpoints=[endpoint_item(s) for s in found])
        return JSONResponse(json.loads(body.model_dump_json()))

    return api
