"""The audit trail over HTTP: `AuditTrail`, the ASGI middleware that records an entry for each state-changing request
whose caller a route identified (domain/audit.py; `auth.act_as` marks the request: the authentication and the
console do), with the status of its answer; and `GET /v2/audit-events`, the merchant's entries, newest first.

The entry is written when the answer starts, before the caller has it (an answer that fails before it starts is
written as 500): a caller that has its answer finds the entry. A write that fails (the database down) is logged with
the whole entry (`audit.write_failed`, at error) and counted (`recovery_audit_write_failures_total`), and the
answer goes out as it was: the action happened, and refusing its answer would only make the caller repeat it."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recovery_contracts.api.audit import AuditEventListResponse, AuditEventResponse
from recovery_contracts.api.cursors import decode_cursor, encode_cursor
from recovery_contracts.api.errors import ApiError
from recovery_contracts.ids import uuid7
from recovery_intake import metrics
from recovery_intake.dependencies import AuditLog
from recovery_intake.domain.access import READ_CONFIGURATION
from recovery_intake.domain.audit import CHANGING_METHODS, AuditActor, AuditEntry, audited
from recovery_intake.http.auth import ACTOR
from recovery_intake.http.context import ApiContext
from recovery_intake.http.errors import ERROR_RESPONSES, ApiProblem
from recovery_intake.http.recovery_views import reader_for
from recovery_runtime.clock import Clock

log = structlog.get_logger(__name__)


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
        merchant_id=actor.merchant_id or "",
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

    @api.get("/v2/audit-events", response_model=AuditEventListResponse)
    async def audit_events(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: str | None = None,
        merchant_id: Annotated[str | None, Query(description="admin key only: the merchant to read")] = None,
    ) -> AuditEventListResponse:
        """Extension: what the merchant's callers did through the API and the console (each state-changing request
        a key, the admin key or a console session was known for, whatever its answer), newest first; `limit` 1-100,
        `cursor` the previous page's `next_cursor`. A key with the `read_only` or `management` scope, or the admin
        key naming the merchant with `merchant_id`."""
        caller = await reader(request)
        after = decode_cursor(cursor) if cursor else None
        if cursor and after is None:
            raise ApiProblem(ApiError.INVALID_REQUEST_DATA, message="`cursor` is not one this API gave out")
        entries = await ctx.stored.audit.page(caller.merchant_id, limit + 1, after)
        shown = entries[:limit]
        last = shown[-1] if len(entries) > limit else None
        return AuditEventListResponse(
            count=len(shown),
            data=[answer_of(e) for e in shown],
            next_cursor=encode_cursor(last.at, last.entry_id) if last is not None else None,
        )

    return api
