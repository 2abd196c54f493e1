"""Hyperswitch's error body for every failure, including validation, unknown routes and crashes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from bson.errors import InvalidStringData
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from recovery_contracts.api.errors import ApiError, ErrorResponse, validation_error_response
from recovery_intake.domain.audit import CHANGING_METHODS
from recovery_intake.domain.rejection import Rejection

log = structlog.get_logger(__name__)


# Every route documents Hyperswitch's error body for its 4xx answers (401, 404, 400, 413, 422, 429, ...).
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    "4XX": {"model": ErrorResponse, "description": "Hyperswitch's error body"},
}


class ApiProblem(Rejection):
    """Raised by a route: answered with `error`'s status and body, `reason` saying what exactly is wrong, and
    `headers` (such as Retry-After)."""

    def __init__(
        self, error: ApiError, reason: str | None = None, *, headers: dict[str, str] | None = None, **params: object
    ) -> None:
        super().__init__(error, reason, **params)
        self.headers = headers


def _json(status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def rejection_response(exc: Rejection) -> JSONResponse:
    body = exc.error.response(reason=exc.reason, **exc.params)
    headers = exc.headers if isinstance(exc, ApiProblem) else None
    return _json(exc.error.status_code, body.model_dump(mode="json", exclude_none=True), headers)


def install_error_handlers(app: FastAPI, identify: Callable[[Request], Awaitable[None]] | None = None) -> None:
    """`identify`: names the caller of a changing request the models refused (before its route, which would have),
    so that the refusal is an audit entry too (`Authenticator.identify`)."""

    @app.exception_handler(Rejection)
    async def problem(_: Request, exc: Rejection) -> JSONResponse:
        return rejection_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if identify is not None and request.method in CHANGING_METHODS:
            try:
                await identify(request)
            except Exception as error:  # the answer is the refusal still; only its audit entry is missing
                log.warning("audit.caller_unknown", error=str(error), path=request.url.path)
        body = validation_error_response(exc.errors())
        return _json(ApiError.INVALID_REQUEST_BODY.status_code, body.model_dump(mode="json", exclude_none=True))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error = ApiError.INVALID_REQUEST_URL
        elif exc.status_code == 405:
            error = ApiError.INVALID_HTTP_METHOD
        else:
            error = ApiError.INTERNAL_SERVER_ERROR if exc.status_code >= 500 else ApiError.INVALID_REQUEST_DATA
            body = error.response(message=str(exc.detail))
            return _json(exc.status_code, body.model_dump(mode="json", exclude_none=True))
        return _json(error.status_code, error.response().model_dump(mode="json", exclude_none=True))

    # JSON allows what BSON cannot store (lone UTF-16 surrogates in strings, integers beyond 64 bits); the models
    # bound what they can, and whatever still reaches the database is refused there, before anything is written.
    @app.exception_handler(UnicodeEncodeError)
    @app.exception_handler(OverflowError)
    @app.exception_handler(InvalidStringData)
    async def unstorable(_: Request, exc: Exception) -> JSONResponse:
        detail = "strings must be valid Unicode and integers must fit in 64 bits"
        body = ApiError.INVALID_REQUEST_BODY.response(detail=detail)
        return _json(ApiError.INVALID_REQUEST_BODY.status_code, body.model_dump(mode="json", exclude_none=True))

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unhandled_error")
        error = ApiError.INTERNAL_SERVER_ERROR
        return _json(error.status_code, error.response().model_dump(mode="json", exclude_none=True))
