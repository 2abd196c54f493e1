"""The Audit trail page: who changed what for the merchant, through the API and the console, newest first, 20 a page,
one key's, only the refused, those of some days in UTC or those on one payment (`GET /v2/audit-events`'s read, for
the same callers: a key with the `read_only` or `management` scope, or the admin key: the chosen merchant's, or with
none chosen the platform's own).

Thin, as every route here: read the session, read the trail (intake's own), hand it to `audit_views`, render.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from recovery_intake.console.audit_views import audit_rows
from recovery_intake.console.pages import PREFIX, Console, Refused, day, valid_id
from recovery_intake.domain.audit import AuditFilter, EmptyWindow
from recovery_intake.handlers.audit_trail import CursorRefused, audit_page

PAGE_SIZE = 20


def router(console: Console) -> APIRouter:
    api = APIRouter(prefix=PREFIX, include_in_schema=False)

    @api.get("/audit")
    @console.guarded
    async def audit(request: Request) -> Response:
        visitor = await console.required(request)
        if not visitor.can_read_audit:
            raise Refused(403, "The audit trail needs an API key with the read_only or management scope.")
        query = request.query_params
        # The operator reads the platform's own trail (what acted for no merchant) with no merchant chosen, or asked.
        platform = visitor.session.is_admin and (visitor.merchant_id is None or bool(query.get("platform")))
        merchant_id = None if platform else console.merchant_of(visitor)
        key_id = query.get("key_id") or None
        if key_id is not None and not valid_id(key_id):
            raise Refused(400, "key_id must be a key id: letters, digits, _ and -, at most 64.")
        payment_id = query.get("payment_id") or None
        if payment_id is not None and not valid_id(payment_id):
            raise Refused(400, "payment_id must be a payment id: letters, digits, _ and -, at most 64.")
        cursor = query.get("cursor") or None
        first, last = day(query.get("created_from")), day(query.get("created_to"))
        try:
            where = AuditFilter(
                key_id=key_id,
                refused_only=bool(query.get("refused")),
                # Whole days in UTC, as the dates on the page.
                created_after=datetime.combine(first, time.min, UTC) if first else None,
                created_before=datetime.combine(last, time.max, UTC) if last else None,
                payment_id=payment_id,
            )
        except EmptyWindow as empty:
            raise Refused(400, f"No entry can match: the first day ({first}) is after the last ({last}).") from empty
        try:
            page = await audit_page(console.ctx.stored.audit, merchant_id, PAGE_SIZE, cursor, where)
        except CursorRefused as refused:
            message = "That page link is not one this console gave out: start from the first page."
            raise Refused(400, message) from refused
        chosen = (
            ("platform", "1" if platform else None),
            ("key_id", key_id),
            ("payment_id", payment_id),
            ("refused", "1" if where.refused_only else None),
            ("created_from", first.isoformat() if first else None),
            ("created_to", last.isoformat() if last else None),
        )
        filters = {k: v for k, v in chosen if v}
        return console.page(
            request,
            "audit.html",
            visitor,
            nav="audit",
            platform=platform,
            rows=audit_rows(page.entries),
            filters=filters,
            filtered=where.narrowed,
            first_page=cursor is None,
            # The links' queries: the first page, and the next one (with the same filters).
            newest=urlencode(filters),
            older=urlencode({**filters, "cursor": page.next_cursor}) if page.next_cursor is not None else None,
            retention_days=console.ctx.settings.audit_retention_days,
        )

    return api
