"""Reading the audit trail (domain/audit.py): a page of a merchant's entries (or the platform's own) newest first,
after the previous page's cursor, and the next page's cursor. The API's list and the console's page both read it."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_contracts.api.cursors import decode_cursor, encode_cursor
from recovery_intake.dependencies import AuditLog
from recovery_intake.domain.audit import AuditEntry, AuditFilter


class CursorRefused(ValueError):
    """A cursor that is not one a page of the trail gave out."""


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    # The next page's cursor; None on the last page.
    next_cursor: str | None


async def audit_page(
    trail: AuditLog, merchant_id: str | None, limit: int, cursor: str | None, where: AuditFilter
) -> AuditPage:
    after = decode_cursor(cursor) if cursor else None
    if cursor and after is None:
        raise CursorRefused(cursor)
    # One entry more than the page, read to tell whether another page follows.
    entries = await trail.page(merchant_id, limit + 1, after, where)
    shown = entries[:limit]
    last = shown[-1] if len(entries) > limit else None
    return AuditPage(shown, encode_cursor(last.at, last.entry_id) if last is not None else None)
