"""The console's sign-in: the pre-session's CSRF token, the key checked exactly as the API checks it, the signed
session cookie; sign-out; and the operator's choice of merchant."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from recovery_intake.console.pages import PREFIX, Console, Refused, problem_message, valid_id
from recovery_intake.console.session import CSRF_FIELD, PRE_SESSION_COOKIE, SESSION_COOKIE, ConsoleSession
from recovery_intake.domain.access import READ_PAYMENTS
from recovery_intake.domain.api_keys import same_secret
from recovery_intake.domain.rejection import Rejection
from recovery_intake.http.context import ApiContext

log = structlog.get_logger(__name__)


def router(console: Console, ctx: ApiContext) -> APIRouter:
    api = APIRouter(prefix=PREFIX, include_in_schema=False)

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
        if merchant_id and not valid_id(merchant_id):
            return sign_in_page(request, "That is not a merchant id.", 400, merchant_id)
        try:
            session = await authenticate(request, api_key, merchant_id or None)
        except Rejection as problem:
            return sign_in_page(request, problem_message(problem), problem.error.status_code, merchant_id)
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
    @console.guarded
    async def sign_out(request: Request) -> Response:
        await console.checked_post(request)
        response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @api.post("/merchant")
    @console.guarded
    async def choose_merchant(request: Request) -> Response:
        """Operators: the merchant the pages show."""
        visitor, form = await console.checked_post(request, operator=True)
        merchant_id = str(form.get("merchant_id") or "").strip()
        if not valid_id(merchant_id) or await ctx.stored.merchants.get(merchant_id) is None:
            raise Refused(404, f"There is no merchant {merchant_id[:64]!r}.")
        response = RedirectResponse(f"{PREFIX}/overview", status_code=303)
        console.set_session(response, request, visitor.session.viewing(merchant_id))
        return response

    return api
