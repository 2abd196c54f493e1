"""The audit trail as `recovery audit` reads it: intake's `GET /v2/audit-events`, page after page, each entry in the
console's words (who, what, on what ids, how it ended: `recovery_intake.console.audit_views`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import httpx
from pydantic import ValidationError

from recovery_cli.stack.state import service_url
from recovery_contracts.api.audit import AuditEventListResponse, AuditEventResponse
from recovery_contracts.timestamps import format_ms, in_utc
from recovery_intake.console.audit_views import AuditRow, audit_rows
from recovery_intake.domain.audit import AuditActor, AuditEntry

INTAKE_DEFAULT_URL = "http://127.0.0.1:8080"
# The API's largest page.
PAGE_LIMIT = 100


class AuditTrailUnread(Exception):
    """The trail could not be read: intake unreachable, or its answer a refusal (its message says why)."""


@dataclass(frozen=True)
class TrailQuery:
    """Whose entries and which: the merchant's (None: the platform's own, with the admin key), one key's, only the
    refused or failed ones, those made from `since` to `until` (both included), those on one payment, the newest
    `limit`."""

    merchant_id: str | None = None
    key_id: str | None = None
    refused: bool = False
    payment_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 20

    def params(self, page_size: int, cursor: str | None) -> dict[str, str | int]:
        params: dict[str, str | int] = {"limit": page_size}
        if self.merchant_id:
            params["merchant_id"] = self.merchant_id
        if self.key_id:
            params["key_id"] = self.key_id
        if self.refused:
            params["refused"] = "true"
        if self.payment_id:
            params["payment_id"] = self.payment_id
        if self.since:
            params["created_after"] = format_ms(self.since)
        if self.until:
            params["created_before"] = format_ms(self.until)
        if cursor:
            params["cursor"] = cursor
        return params


# An age before now, as `--since 12h` takes it: a whole number and its unit.
_AGE = re.compile(r"(\d+)([mhd])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
# A date without a time (ISO 8601's calendar date, extended or basic).
_DATE_ALONE = re.compile(r"\d{4}-?\d{2}-?\d{2}")


def moment_of(text: str, now: datetime, *, day_ends: bool = False) -> datetime:
    """A time as the command line gives it: ISO 8601 (UTC where it names no offset; a date alone is its first
    moment, or with `day_ends` its last: `--until 2026-12-01` takes in the whole day), or an age before `now`
    (`30m`, `12h`, `7d`)."""
    given = text.strip()
    age = _AGE.fullmatch(given)
    if age is not None:
        try:
            return now - int(age.group(1)) * _UNITS[age.group(2)]
        except OverflowError:
            raise ValueError(f"{text!r} is further back than any time") from None
    try:
        at = datetime.fromisoformat(given)
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time (2026-12-01, 2026-12-01T09:30Z) or an age (30m, 12h, 7d), got {text!r}"
        ) from None
    if day_ends and _DATE_ALONE.fullmatch(given):
        at = datetime.combine(at.date(), time.max)
    return in_utc(at)  # a time with no UTC time (the calendar's edges with an offset) is a ValueError too


def intake_url(run_dir: Path) -> str:
    """`INTAKE_URL`, else the intake of the stack `recovery up` runs from `run_dir`, else :8080."""
    return service_url(run_dir, "intake", "INTAKE_URL", INTAKE_DEFAULT_URL)


class AuditTrail:
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0, page_size: int = PAGE_LIMIT) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._page_size = min(page_size, PAGE_LIMIT)

    def read(self, query: TrailQuery) -> list[AuditEventResponse]:
        """The newest `query.limit` entries, newest first, through as many pages as that takes."""
        return list(self._entries(query))

    def _entries(self, query: TrailQuery) -> Iterator[AuditEventResponse]:
        headers = {"api-key": self._api_key}
        if query.merchant_id:
            headers["x-merchant-id"] = query.merchant_id
        left, cursor = query.limit, None
        with httpx.Client(timeout=self._timeout, follow_redirects=False, trust_env=False) as client:
            while left > 0:
                url = f"{self._base_url}/v2/audit-events"
                try:
                    answer = client.get(url, params=query.params(min(left, self._page_size), cursor), headers=headers)
                except httpx.HTTPError as error:
                    raise AuditTrailUnread(f"intake at {self._base_url} did not answer: {error}") from error
                page = _page_of(answer)
                yield from page.data[:left]
                left -= len(page.data)
                cursor = page.next_cursor
                if cursor is None:
                    return


def _page_of(answer: httpx.Response) -> AuditEventListResponse:
    if answer.status_code != 200:
        raise AuditTrailUnread(f"intake answered {answer.status_code}: {_reason(answer)}")
    try:
        return AuditEventListResponse.model_validate_json(answer.content)
    except ValidationError as error:
        raise AuditTrailUnread(f"intake's answer is not an audit trail page: {error}") from error


def _reason(answer: httpx.Response) -> str:
    try:
        error = answer.json().get("error") or {}
        return str(error.get("message") or answer.text)
    except (ValueError, AttributeError):
        return answer.text[:200]


def entry_of(answer: AuditEventResponse) -> AuditEntry:
    actor = AuditActor(answer.actor, answer.merchant_id, answer.key_id, answer.profile_id)
    return AuditEntry(
        answer.event_id,
        answer.created_at,
        actor,
        answer.method,
        answer.route,
        answer.target,
        answer.status_code,
    )


def rows_of(answers: list[AuditEventResponse]) -> list[AuditRow]:
    return audit_rows([entry_of(answer) for answer in answers])


def render_text(answers: list[AuditEventResponse], query: TrailQuery) -> str:
    whose = f"merchant {query.merchant_id}" if query.merchant_id else "the platform (or the key's merchant)"
    if not answers:
        window = "".join(
            f" {word} {format_ms(at)}" for word, at in (("from", query.since), ("to", query.until)) if at is not None
        )
        on = f" on payment {query.payment_id}" if query.payment_id else ""
        return f"no audit entries for {whose}{on}{window}"
    lines = []
    for row in rows_of(answers):
        on = f" [{', '.join(row.target)}]" if row.target else ""
        lines.append(f"{row.when}  {row.outcome:<7}  {row.who}: {row.action}{on}  ({row.route} -> {row.status})")
    return "\n".join(lines)


def render_json(answers: list[AuditEventResponse]) -> str:
    return json.dumps([answer.model_dump(mode="json") for answer in answers], indent=2)
