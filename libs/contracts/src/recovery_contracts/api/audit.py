"""The audit trail (`GET /v2/audit-events`, this system's own): what the merchant's callers did through the API and
the console, one event per state-changing request a caller was known for, whatever the answer."""

from __future__ import annotations

from enum import StrEnum

from recovery_contracts.api.fields import ResponseBody
from recovery_contracts.timestamps import UtcMillis


class AuditActorKind(StrEnum):
    API_KEY = "api_key"  # a merchant's API key (`key_id`)
    ADMIN_KEY = "admin_key"  # the platform's admin key, acting for the merchant
    CONSOLE = "console"  # the console, signed in with a merchant's key (`key_id`) or the admin key


class AuditEventResponse(ResponseBody):
    event_id: str
    # Null on the platform's own entries (the admin key acting for no merchant: `GET /v2/audit-events` with the
    # admin key and no merchant).
    merchant_id: str | None
    profile_id: str | None = None
    actor: AuditActorKind
    key_id: str | None = None
    # The route as its template (`/v2/api-keys/{key_id}`) and the ids it was called with.
    method: str
    route: str
    target: dict[str, str]
    # The answer's HTTP status: 2xx done, 4xx refused (and why is in the answer the caller got), 5xx failed.
    status_code: int
    created_at: UtcMillis


class AuditEventListResponse(ResponseBody):
    """Newest first; `next_cursor`: the next page's `cursor` (null on the last page)."""

    count: int
    data: list[AuditEventResponse]
    next_cursor: str | None = None
