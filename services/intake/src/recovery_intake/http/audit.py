"""The audit trail over HTTP: `AuditTrail`, the ASGI middleware that records an entry for each state-changing request
whose caller was identified (domain/audit.py; `auth.act_as` marks the request: the authentication and the console
do, and `Authenticator.identify` for a request the models refused before its route), with the status of its
answer; and `GET /v2/audit-events`, the merchant's entries, newest first.

The entry is written when the answer starts, before the caller has it (an answer that fails before it starts is
written as 500): a caller that has its answer finds the entry. A write that fails (the database down) is logged with
the whole entry (`audit.write_failed`, at error) and counted (`recovery_audit_write_failures_total`), and the
answer goes out as it was: the action happened, and refusing its answer would only make the caller repeat it."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recovery_contracts.api.audit import AuditEventListResponse, AuditEventResponse
from recovery_contracts.api.errors import ApiError
from recovery_contracts.ids import uuid7
from recovery_contracts.timestamps import UtcMillis
from recovery_intake import metrics
from recovery_intake.dependencies import AuditLog
from recovery_intake.domain.access import READ_CONFIGURATION
from recovery_intake.domain.api_keys import same_secret
from recovery_intake.domain.audit import CHANGING_METHODS, AuditActor, AuditEntry, AuditFilter, EmptyWindow, audited
from recovery_intake.handlers.audit_trail import CursorRefused, audit_page
from recovery_intake.http.auth import ACTOR, credentials_of
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem
from recovery_intake.http.recovery_views import reader_for
from recovery_runtime.clock import Clock

log = structlog.get_logger(__name__)

# The longest `x-profile-id` an entry keeps (an id's bound: a longer one names no profile).
PROFILE_ID_KEPT = 64


class AuditTrail:
    def __init__(self, app: ASGIApp, *, trail: AuditLog, clock: Clock) -> None:
        self.app = app
        self._trail = trail
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGING_METHODS:
            await self.app(scope, receive, send)
            return
        # The state the routes write to, shared by every scope copied from this one.
        scope.setdefault("state", {})
        started = False

        async def answering(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                await self._record(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, answering)
        except Exception:
            if not started:
                await self._record(scope, 500)
            raise

    async def _record(self, scope: Scope, status: int) -> None:
        actor = scope["state"].get(ACTOR)
        route = getattr(scope.get("route"), "path", None)
        if not audited(scope["method"], route, actor):
            return
        assert route is not None and isinstance(actor, AuditActor)
        if actor.profile_id is not None and len(actor.profile_id) > PROFILE_ID_KEPT:
            # As the request named it, before it was checked: kept to an id's length at most.
            actor = replace(actor, profile_id=actor.profile_id[:PROFILE_ID_KEPT])
        target = {name: str(value)[:256] for name, value in (scope.get("path_params") or {}).items()}
        entry = AuditEntry(str(uuid7()), self._clock.now(), actor, scope["method"], route, target, status)
        try:
            await self._trail.record(entry)
        except Exception as error:  # the action happened; its answer goes out (module docstring)
            metrics.AUDIT_WRITE_FAILURES.inc()
            log.error(
                "audit.write_failed",
                error=str(error),
                entry_id=entry.entry_id,
                merchant_id=actor.merchant_id,
                actor=actor.kind.value,
                key_id=actor.key_id,
                action=entry.action,
                target=target,
                status=status,
            )


def answer_of(entry: AuditEntry) -> AuditEventResponse:
    actor = entry.actor
    return AuditEventResponse(
        event_id=entry.entry_id,
        merchant_id=actor.merchant_id,
        profile_id=actor.profile_id,
        actor=actor.kind,
        key_id=actor.key_id,
        method=entry.method,
        route=entry.route,
        target=dict(entry.target),
        status_code=entry.status,
        created_at=entry.at,
    )


def router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(tags=["Audit"], responses=ERROR_RESPONSES)
    reader = reader_for(ctx, READ_CONFIGURATION)

    async def trail_owner(request: Request, merchant_id: str | None) -> str | None:
        """Whose trail is read: the merchant's (as every merchant read), or the platform's (None) for the admin key
        naming no merchant, neither with `merchant_id` nor with `x-merchant-id`."""
        credentials = credentials_of(request)
        if merchant_id is None and not credentials.merchant_id and credentials.api_key is not None:
            if same_secret(credentials.api_key, ctx.settings.admin_api_key):
                await ctx.auth.require_admin(request)
                return None
        return (await reader(request)).merchant_id

    @api.get("/v2/audit-events", response_model=AuditEventListResponse)
    async def audit_events(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
        merchant_id: Annotated[
            str | None, Query(description="admin key only: the merchant to read (none: the platform's own entries)")
        ] = None,
        key_id: Annotated[
            str | None, Query(max_length=64, description="only this key's entries (its console sessions' too)")
        ] = None,
        refused: Annotated[bool, Query(description="only the entries answered 400 or more")] = False,
        payment_id: Annotated[
            str | None, Query(max_length=128, description="only the entries on this payment (route ids naming it)")
        ] = None,
        created_after: Annotated[
            UtcMillis | None, Query(description="only the entries made at or after this time (UTC if no offset)")
        ] = None,
        created_before: Annotated[
            UtcMillis | None, Query(description="only the entries made at or before this time (UTC if no offset)")
        ] = None,
    ) -> AuditEventListResponse:
        """Extension: what the merchant's callers did through the API and the console (each state-changing request
        a key, the admin key or a console session was known for, whatever its answer), newest first; `limit` 1-100,
        `cursor` the previous page's `next_cursor` (with the same filters); `key_id` one key's entries, `refused`
        the refused or failed ones, `created_after` and `created_before` (ISO 8601, both included) a window of
        time, `payment_id` the entries on one payment (its recovery cancelled, its webhook retried, its dispute
        answered, ...). A key with the `read_only` or `management` scope, or the admin key naming the merchant with
        `merchant_id`; the admin key naming none reads the platform's own entries (the admin key's and the
        operator's that acted for no merchant: creating a merchant account, the console's operator pages)."""
        whose = await trail_owner(request, merchant_id)
        try:
            where = AuditFilter(
                key_id=key_id,
                refused_only=refused,
                created_after=created_after,
                created_before=created_before,
                payment_id=payment_id,
            )
        except EmptyWindow as empty:
            raise ApiProblem(ApiError.INVALID_REQUEST_DATA, message=f"no entry can match: {empty}") from empty
        try:
            page = await audit_page(ctx.stored.audit, whose, limit, cursor, where)
        except CursorRefused as refused_cursor:
            message = "`cursor` is not one this API gave out"
            raise ApiProblem(ApiError.INVALID_REQUEST_DATA, message=message) from refused_cursor
        return AuditEventListResponse(
            count=len(page.entries), data=[answer_of(e) for e in page.entries], next_cursor=page.next_cursor
        )

    return api
