"""What every console route stands on: who is asking (the signed session, its key still valid), the checks of a
state-changing request (CSRF token and Origin), rendering a page with the security headers, and turning a
refusal or an unavailable owner into a page.

Every POST checks the session's CSRF token (form field or `X-CSRF-Token` header) and, when the browser sends one,
the Origin. A merchant sees only its own data: `merchant_of` is the only way a route learns which merchant to read.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from recovery_contracts.api.audit import AuditActorKind
from recovery_intake.console.ports import ConsoleAdapters, OwnerRefused, OwnerUnavailable
from recovery_intake.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    ConsoleSession,
    SessionSigner,
)
from recovery_intake.domain.access import READ_CONFIGURATION, WRITE_PAYMENTS, Access, check_access, scopes_of
from recovery_intake.domain.audit import AuditActor
from recovery_intake.domain.rejection import Rejection
from recovery_intake.http.auth import act_as
from recovery_intake.http.context import ApiContext

log = structlog.get_logger(__name__)

Handler = Callable[..., Awaitable[Response]]

HERE = Path(__file__).parent
PREFIX = "/console"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
# Scripts and styles only from this origin (the pinned vendor files); no framing.
_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True)
class Visitor:
    """A signed-in request: its session and what its key may do."""

    session: ConsoleSession
    csrf_token: str
    can_write: bool
    # The audit trail: a key with the `read_only` or `management` scope, or the admin key (as on the API).
    can_read_audit: bool = False

    @property
    def merchant_id(self) -> str | None:
        return self.session.merchant_id


class Refused(Exception):
    """A console request that cannot go on: answered with `status` and `message` on the page (or a redirect)."""

    def __init__(self, status: int, message: str, redirect: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.redirect = redirect


def valid_id(value: str) -> bool:
    return 0 < len(value) <= 64 and set(value) <= _ID_CHARS


def day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise Refused(400, f"{value!r} is not a date (YYYY-MM-DD)") from error


def problem_message(problem: Rejection) -> str:
    return problem.error.response(reason=problem.reason, **problem.params).error.message


class Console:
    """The console's pages over `ctx` (intake's own authentication and storage) and the console's adapters."""

    def __init__(self, ctx: ApiContext, adapters: ConsoleAdapters) -> None:
        self.ctx = ctx
        self.adapters = adapters
        self.clock = ctx.stored.clock
        self.signer = SessionSigner(ctx.settings.api_key_hash_secret)
        self.templates = Jinja2Templates(directory=HERE / "templates")

    # ---- sessions --------------------------------------------------------------------------------------

    async def visitor(self, request: Request) -> Visitor | None:
        """The signed-in visitor, or None: no cookie, a forged or expired one, a revoked or expired key, or a
        changed admin key."""
        session = self.signer.decode(request.cookies.get(SESSION_COOKIE), self.clock.now())
        if session is None:
            return None
        token = self.signer.csrf_token(session.nonce)
        if session.is_admin:
            if session.admin_mark != self.signer.admin_mark(self.ctx.settings.admin_api_key):
                return None
            return Visitor(session, token, can_write=True, can_read_audit=True)
        if session.merchant_id is None or session.key_id is None:
            return None
        record = await self.ctx.stored.api_keys.get(session.merchant_id, session.key_id)
        if record is None or record.get("revoked"):
            return None
        expires = record.get("expires_at")
        if expires is not None and expires <= self.clock.now():
            return None
        return Visitor(
            session,
            token,
            can_write=self._permits(record, WRITE_PAYMENTS),
            can_read_audit=self._permits(record, READ_CONFIGURATION),
        )

    @staticmethod
    def _permits(record: dict[str, Any], access: Access) -> bool:
        try:
            check_access(scopes_of(record), access)
        except Rejection:
            return False
        return True

    async def required(self, request: Request, *, operator: bool = False) -> Visitor:
        visitor = await self.visitor(request)
        if visitor is None:
            raise Refused(401, "Sign in to continue.", redirect=f"{PREFIX}/sign-in")
        session = visitor.session
        # Who a changing request acts as (the audit trail): the session's key, or the admin key's operator; an operator
        # page acts for no merchant (the platform's own trail), whichever merchant the pages show.
        acting_for = None if operator else session.merchant_id
        act_as(request, AuditActor(AuditActorKind.CONSOLE, acting_for, session.key_id))
        if operator and not session.is_admin:
            raise Refused(403, "This page is for operators (the admin key).")
        return visitor

    async def checked_post(
        self, request: Request, *, operator: bool = False, max_part_size: int = 1024 * 1024
    ) -> tuple[Visitor, FormData]:
        """A state-changing request: signed in, same origin, carrying the session's CSRF token (`max_part_size`:
        an upload's bound)."""
        visitor = await self.required(request, operator=operator)
        form = await request.form(max_part_size=max_part_size)
        self.check_origin(request)
        token = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not self.signer.csrf_valid(visitor.session.nonce, token if isinstance(token, str) else None):
            log.info("console.csrf_rejected", path=request.url.path)
            raise Refused(403, "The form expired or did not come from this console: reload the page and try again.")
        return visitor, form

    @staticmethod
    def check_origin(request: Request) -> None:
        # Browsers send Origin with every POST; a client that sends none is held to the CSRF token alone.
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise Refused(403, "This request came from another site.")

    def set_session(self, response: Response, request: Request, session: ConsoleSession) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.signer.encode(session),
            max_age=int((session.expires_at - self.clock.now()).total_seconds()),
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    # ---- rendering -------------------------------------------------------------------------------------

    def page(
        self, request: Request, template: str, visitor: Visitor | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        context = {"visitor": visitor, "prefix": PREFIX, "csrf_field": CSRF_FIELD, **values}
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        response.headers.update(_SECURITY_HEADERS)
        return response

    def refused(self, request: Request, visitor: Visitor | None, refusal: Refused) -> Response:
        if refusal.redirect is not None:
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": refusal.redirect})
            return RedirectResponse(refusal.redirect, status_code=303)
        return self.page(request, "error.html", visitor, status=refusal.status, message=refusal.message)

    def unavailable(self, request: Request, visitor: Visitor, error: OwnerUnavailable) -> HTMLResponse:
        message = f"The {error.owner} service does not answer right now; try again in a moment."
        return self.page(request, "error.html", visitor, status=503, message=message)

    # ---- what every route does ---------------------------------------------------------------------------

    def guarded(self, handler: Handler) -> Handler:
        """Turns a refusal or an unavailable owner into a page (or a sign-in redirect)."""

        @functools.wraps(handler)
        async def run(request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                return await handler(request, *args, **kwargs)
            except Refused as refusal:
                return self.refused(request, await self.visitor(request), refusal)
            except OwnerRefused as refused:
                return self.refused(request, await self.visitor(request), Refused(400, str(refused)))
            except OwnerUnavailable as error:
                visitor = await self.visitor(request)
                if visitor is None:
                    raise
                return self.unavailable(request, visitor, error)

        return run

    @staticmethod
    def merchant_of(visitor: Visitor) -> str:
        if visitor.merchant_id is None:
            raise Refused(409, "Choose the merchant to look at (the field at the top of the page).")
        return visitor.merchant_id
