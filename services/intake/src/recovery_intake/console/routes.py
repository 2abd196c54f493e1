"""The console's pages and actions at `/console/`: sign-in, Overview, Recoveries, Payment, Webhooks, and the
operator's Dead letters and Services.

Thin, as every route here: read the session, ask a port, hand the answer to `views`, render. Every POST checks
the session's CSRF token (form field or `X-CSRF-Token` header) and, when the browser sends one, the Origin.
A merchant sees only its own data: every read is scoped to the session's merchant, and another merchant's
payment reads as one that does not exist.
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
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from recovery_intake.console import views, webhook_views
from recovery_intake.console.ports import ConsoleAdapters, OwnerRefused, OwnerUnavailable, RecoveryFilter
from recovery_intake.console.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    SessionSigner,
)
from recovery_intake.domain.access import READ_PAYMENTS, WRITE_PAYMENTS, Access, check_access, scopes_of
from recovery_intake.domain.api_keys import same_secret
from recovery_intake.domain.rejection import Rejection
from recovery_intake.http.context import ApiContext
from recovery_runtime.dead_letters import dead_letter_queues

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
PREFIX = "/console"
PAGE_SIZE = 20
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


def _valid_id(value: str) -> bool:
    return 0 < len(value) <= 64 and set(value) <= _ID_CHARS


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise Refused(400, f"{value!r} is not a date (YYYY-MM-DD)") from error


def _problem_message(problem: Rejection) -> str:
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
            return Visitor(session, token, can_write=True)
        if session.merchant_id is None or session.key_id is None:
            return None
        record = await self.ctx.stored.api_keys.get(session.merchant_id, session.key_id)
        if record is None or record.get("revoked"):
            return None
        expires = record.get("expires_at")
        if expires is not None and expires <= self.clock.now():
            return None
        return Visitor(session, token, can_write=self._permits(record, WRITE_PAYMENTS))

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
        if operator and not visitor.session.is_admin:
            raise Refused(403, "This page is for operators (the admin key).")
        return visitor

    async def checked_post(self, request: Request, *, operator: bool = False) -> tuple[Visitor, FormData]:
        """A state-changing request: signed in, same origin, carrying the session's CSRF token."""
        visitor = await self.required(request, operator=operator)
        form = await request.form()
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


def router(ctx: ApiContext, adapters: ConsoleAdapters) -> APIRouter:
    console = Console(ctx, adapters)
    api = APIRouter(prefix=PREFIX, include_in_schema=False)
    reads, events, operations = adapters.reads, adapters.events, adapters.operations

    Handler = Callable[..., Awaitable[Response]]

    def guarded(handler: Handler) -> Handler:
        """Turns a refusal or an unavailable owner into a page (or a sign-in redirect)."""

        @functools.wraps(handler)
        async def run(request: Request, *args: Any, **kwargs: Any) -> Response:
            try:
                return await handler(request, *args, **kwargs)
            except Refused as refusal:
                return console.refused(request, await console.visitor(request), refusal)
            except OwnerRefused as refused:
                return console.refused(request, await console.visitor(request), Refused(400, str(refused)))
            except OwnerUnavailable as error:
                visitor = await console.visitor(request)
                if visitor is None:
                    raise
                return console.unavailable(request, visitor, error)

        return run

    def merchant_of(visitor: Visitor) -> str:
        if visitor.merchant_id is None:
            raise Refused(409, "Choose the merchant to look at (the field at the top of the page).")
        return visitor.merchant_id

    # ---- sign-in and sign-out ----------------------------------------------------------------------------

    @api.get("/")
    async def home(request: Request) -> Response:
        visitor = await console.visitor(request)
        target = "overview" if visitor is not None else "sign-in"
        return RedirectResponse(f"{PREFIX}/{target}", status_code=303)

    def sign_in_page(request: Request, error: str | None = None, status: int = 200, merchant_id: str = "") -> Response:
        cookie, nonce = console.signer.pre_session(console.clock.now())
        response = console.page(
            request,
            "sign_in.html",
            None,
            status=status,
            error=error,
            merchant_id=merchant_id,
            csrf_token=console.signer.csrf_token(nonce),
        )
        response.set_cookie(
            PRE_SESSION_COOKIE,
            cookie,
            max_age=1800,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @api.get("/sign-in")
    async def sign_in_form(request: Request) -> Response:
        return sign_in_page(request)

    @api.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        api_key = str(form.get("api_key") or "").strip()
        merchant_id = str(form.get("merchant_id") or "").strip()
        try:
            console.check_origin(request)
        except Refused as refusal:
            return sign_in_page(request, refusal.message, 403)
        nonce = console.signer.pre_session_nonce(request.cookies.get(PRE_SESSION_COOKIE), console.clock.now())
        token = form.get(CSRF_FIELD)
        if not console.signer.csrf_valid(nonce, token if isinstance(token, str) else None):
            return sign_in_page(request, "The sign-in form expired: try again.", 403, merchant_id)
        if not api_key:
            return sign_in_page(request, "Enter an API key.", 400, merchant_id)
        if merchant_id and not _valid_id(merchant_id):
            return sign_in_page(request, "That is not a merchant id.", 400, merchant_id)
        try:
            session = await authenticate(request, api_key, merchant_id or None)
        except Rejection as problem:
            return sign_in_page(request, _problem_message(problem), problem.error.status_code, merchant_id)
        response = RedirectResponse(f"{PREFIX}/overview", status_code=303)
        console.set_session(response, request, session)
        response.delete_cookie(PRE_SESSION_COOKIE, path=PREFIX)
        log.info("console.signed_in", merchant_id=session.merchant_id, admin=session.is_admin)
        return response

    async def authenticate(request: Request, api_key: str, merchant_id: str | None) -> ConsoleSession:
        """The key checked exactly as the API checks it (intake's Authenticator: failure limits, expiry, scopes),
        presented as the headers an API call would send."""
        try:
            headers = [(b"api-key", api_key.encode("latin-1"))]
        except UnicodeEncodeError:
            headers = [(b"api-key", b"not-a-key")]
        if merchant_id:
            headers.append((b"x-merchant-id", merchant_id.encode()))
        presented = Request(
            {"type": "http", "method": "GET", "path": request.url.path, "headers": headers, "client": request.client}
        )
        now = console.clock.now()
        if same_secret(api_key, ctx.settings.admin_api_key):
            if merchant_id:
                await ctx.auth.merchant(presented, access=READ_PAYMENTS)  # the merchant must exist
            return console.signer.start(now, merchant_id=merchant_id, admin_key=api_key)
        caller = await ctx.auth.merchant(presented, access=READ_PAYMENTS, admin_allowed=False)
        return console.signer.start(now, merchant_id=caller.merchant_id, key_id=caller.key_id)

    @api.post("/sign-out")
    @guarded
    async def sign_out(request: Request) -> Response:
        await console.checked_post(request)
        response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @api.post("/merchant")
    @guarded
    async def choose_merchant(request: Request) -> Response:
        """Operators: the merchant the pages show."""
        visitor, form = await console.checked_post(request, operator=True)
        merchant_id = str(form.get("merchant_id") or "").strip()
        if not _valid_id(merchant_id) or await ctx.stored.merchants.get(merchant_id) is None:
            raise Refused(404, f"There is no merchant {merchant_id[:64]!r}.")
        response = RedirectResponse(f"{PREFIX}/overview", status_code=303)
        console.set_session(response, request, visitor.session.viewing(merchant_id))
        return response

    # ---- merchant pages ----------------------------------------------------------------------------------

    @api.get("/overview")
    @guarded
    async def overview(request: Request) -> Response:
        visitor = await console.required(request)
        if visitor.merchant_id is None:
            return console.page(request, "choose_merchant.html", visitor, nav="overview")
        query = request.query_params
        profile_id = query.get("profile_id") or None
        answer = await reads.analytics(visitor.merchant_id, _day(query.get("from")), _day(query.get("to")), profile_id)
        shown = views.overview(answer)
        return console.page(request, "overview.html", visitor, nav="overview", overview=shown, query=query)

    @api.get("/recoveries")
    @guarded
    async def recoveries(request: Request) -> Response:
        visitor = await console.required(request)
        merchant_id = merchant_of(visitor)
        query = request.query_params
        status = query.get("status") or None
        if status is not None and status not in views.RECOVERY_STATUSES:
            raise Refused(400, f"{status!r} is not a recovery status.")
        try:
            offset = max(0, int(query.get("offset") or 0))
        except ValueError as error:
            raise Refused(400, "offset must be a whole number") from error
        where = RecoveryFilter(
            status=status,
            created_from=_day(query.get("created_from")),
            created_to=_day(query.get("created_to")),
            profile_id=query.get("profile_id") or None,
            limit=PAGE_SIZE,
            offset=offset,
        )
        page = views.recoveries_page(await reads.recoveries(merchant_id, where), offset, PAGE_SIZE)
        filters = {k: v for k, v in query.items() if k != "offset" and v}
        return console.page(
            request,
            "recoveries.html",
            visitor,
            nav="recoveries",
            page=page,
            query=query,
            filters=filters,
            statuses=views.RECOVERY_STATUSES,
        )

    async def deliveries_of(merchant_id: str, payment_id: str) -> list[views.Delivery]:
        listed = await events.events(merchant_id, object_id=payment_id, limit=50)
        shown = []
        for event in listed.get("events") or []:
            attempts = await events.attempts(merchant_id, str(event.get("event_id"))) or []
            shown.append(views.delivery(event, attempts))
        return shown

    @api.get("/payments/{payment_id}")
    @guarded
    async def payment(request: Request, payment_id: str) -> Response:
        visitor = await console.required(request)
        merchant_id = merchant_of(visitor)
        timeline = await reads.timeline(merchant_id, payment_id) if _valid_id(payment_id) else None
        if timeline is None:
            # Another merchant's payment reads as one that does not exist.
            raise Refused(404, f"No payment {payment_id[:64]!r} for this merchant.")
        intent = await reads.recovery(merchant_id, payment_id)
        try:
            workflow = await adapters.workflows.workflow(merchant_id, payment_id)
        except OwnerUnavailable:
            workflow = None  # the page still shows what the read model knows
        shown = views.payment_page(timeline, intent, await deliveries_of(merchant_id, payment_id), workflow)
        return console.page(request, "payment.html", visitor, nav="recoveries", payment=shown)

    @api.post("/payments/{payment_id}/webhooks/{event_id}/retry")
    @guarded
    async def retry_webhook(request: Request, payment_id: str, event_id: str) -> Response:
        visitor, _ = await console.checked_post(request)
        merchant_id = merchant_of(visitor)
        if not visitor.can_write:
            raise Refused(403, "This API key may only read: a retry needs the payments scope.")
        if not (_valid_id(payment_id) and _valid_id(event_id)):
            raise Refused(404, "No such webhook event.")
        # The event must be one of this payment's (the page's button names both).
        before = {d.event_id for d in await deliveries_of(merchant_id, payment_id)}
        if event_id not in before or await events.retry(merchant_id, event_id) is None:
            raise Refused(404, "No such webhook event for this payment.")
        log.info("console.webhook_retried", merchant_id=merchant_id, payment_id=payment_id, event_id=event_id)
        if not request.headers.get("hx-request"):
            return RedirectResponse(f"{PREFIX}/payments/{payment_id}", status_code=303)
        after = {d.event_id: d for d in await deliveries_of(merchant_id, payment_id)}
        return console.page(request, "_delivery.html", visitor, delivery=after[event_id], payment_id=payment_id)

    @api.get("/webhooks")
    @guarded
    async def webhooks(request: Request) -> Response:
        visitor = await console.required(request)
        merchant_id = merchant_of(visitor)
        listed = (await events.events(merchant_id, limit=100)).get("events") or []
        return console.page(
            request,
            "webhooks.html",
            visitor,
            nav="webhooks",
            endpoints=webhook_views.endpoint_rows(await events.endpoints(merchant_id)),
            health=webhook_views.endpoint_health(listed),
            events=webhook_views.event_rows(listed[:PAGE_SIZE]),
        )

    # ---- operator pages ------------------------------------------------------------------------------------

    @api.get("/dead-letters")
    @guarded
    async def dead_letters(request: Request) -> Response:
        visitor = await console.required(request, operator=True)
        counts = await operations.dead_letter_counts()
        return console.page(
            request, "dead_letters.html", visitor, nav="dead-letters", counts=counts, replayed=request.query_params
        )

    @api.post("/dead-letters/{queue}/replay")
    @guarded
    async def replay(request: Request, queue: str) -> Response:
        await console.checked_post(request, operator=True)
        try:
            dead_letter_queues([queue])
        except ValueError as error:
            raise Refused(404, str(error)) from error
        outcome = await operations.replay(queue)
        log.info("console.dead_letters_replayed", queue=queue, replayed=outcome.replayed, failed=outcome.failed)
        return RedirectResponse(
            f"{PREFIX}/dead-letters?queue={queue}&replayed={outcome.replayed}&failed={outcome.failed}",
            status_code=303,
        )

    @api.get("/services")
    @guarded
    async def services(request: Request) -> Response:
        visitor = await console.required(request, operator=True)
        return console.page(request, "services.html", visitor, nav="services", services=await operations.readiness())

    return api


def install(app: FastAPI, ctx: ApiContext, adapters: ConsoleAdapters) -> None:
    """The console's routes and its static files (the pinned Chart.js and htmx, its own CSS and JS)."""
    app.include_router(router(ctx, adapters))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
