"""Hyperswitch's error body `{"error": {"type", "message", "code"}}` and the catalogue of codes intake uses.

Codes, HTTP statuses and `type` values follow Hyperswitch's `ApiErrorResponse` (IR_ = invalid request, HE_ =
Hyperswitch-side, WE_ = webhooks, CE_ = connector). `RR_` codes are this project's extensions for limits
Hyperswitch does not define. docs/contracts.md lists the same table; change both together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorType(StrEnum):
    """`error.type` on the wire. Hyperswitch collapses its internal error types into these."""

    INVALID_REQUEST = "invalid_request"
    API = "api"
    CONNECTOR = "connector"
    BLOCKED = "blocked"


class ErrorBody(BaseModel):
    """Key order as Hyperswitch serialises it: type, message, code, then optional extras."""

    model_config = ConfigDict(extra="forbid")

    type: ErrorType
    message: str = Field(max_length=2048)
    code: str = Field(pattern=r"^[A-Z]{2}_\d{2}$")
    reason: str | None = Field(default=None, max_length=2048)
    connector: str | None = Field(default=None, max_length=64)
    payment_id: str | None = Field(default=None, max_length=64)
    data: Any | None = None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorBody


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    code: str
    status_code: int
    type: ErrorType
    message: str  # a str.format template; placeholders are named in the catalogue


_IR = ErrorType.INVALID_REQUEST


class ApiError(Enum):
    """Every error intake answers with: `ApiError.X.response(...)` is the body, `.status_code` the status."""

    UNAUTHORIZED = ErrorSpec("IR_01", 401, _IR, "API key not provided or invalid API key used")
    INVALID_REQUEST_URL = ErrorSpec("IR_02", 404, _IR, "Unrecognized request URL")
    INVALID_HTTP_METHOD = ErrorSpec("IR_03", 405, _IR, "The HTTP method is not applicable for this API")
    MISSING_REQUIRED_FIELD = ErrorSpec("IR_04", 400, _IR, "Missing required param: {field_name}")
    INVALID_DATA_FORMAT = ErrorSpec(
        "IR_05", 422, _IR, "{field_name} contains invalid data. Expected format is {expected_format}"
    )
    # A body that does not deserialise (malformed JSON, unknown field, wrong type, bad enum value):
    # Hyperswitch's JSON error handler answers 400 with IR_06 and "Json deserialize error: ...".
    INVALID_REQUEST_BODY = ErrorSpec("IR_06", 400, _IR, "Json deserialize error: {detail}")
    INVALID_REQUEST_DATA = ErrorSpec("IR_06", 422, _IR, "{message}")
    INVALID_DATA_VALUE = ErrorSpec("IR_07", 400, _IR, "Invalid value provided: {field_name}")
    # Hyperswitch answers 400 to a cancel of a `processing` payment; here the state passes within seconds (an
    # attempt being charged settles), so the answer is 409 and the `reason` says to send the request again.
    PAYMENT_UNEXPECTED_STATE = ErrorSpec(
        "IR_14",
        409,
        _IR,
        "This Payment could not be {current_flow} because it has a {field_name} of {current_value}. "
        "The expected state is {states}",
    )
    PRECONDITION_FAILED = ErrorSpec("IR_16", 400, _IR, "{message}")
    GENERIC_UNAUTHORIZED = ErrorSpec("IR_18", 401, _IR, "{message}")
    NOT_SUPPORTED = ErrorSpec("IR_19", 400, _IR, "{message}")
    ACCESS_FORBIDDEN = ErrorSpec(
        "IR_22", 403, _IR, "Access forbidden. Not authorized to access this resource {resource}"
    )
    CURRENCY_NOT_SUPPORTED = ErrorSpec("IR_28", 400, _IR, "{message}")
    UNPROCESSABLE_ENTITY = ErrorSpec("IR_29", 422, _IR, "{message}")
    INVALID_CONNECTOR_CONFIGURATION = ErrorSpec(
        "IR_30", 400, _IR, "Merchant connector account is configured with invalid {config}"
    )
    GENERIC_NOT_FOUND = ErrorSpec("IR_37", 404, _IR, "{message}")
    GENERIC_DUPLICATE = ErrorSpec("IR_38", 400, _IR, "{message}")

    INTERNAL_SERVER_ERROR = ErrorSpec("HE_00", 500, ErrorType.API, "Something went wrong")
    # Extension: the service that owns what was asked for (the scheduler's process tracker, the dispatcher's
    # events, analytics) does not answer; nothing went wrong with the request, which may be sent again.
    OWNER_UNAVAILABLE = ErrorSpec(
        "HE_00", 503, ErrorType.API, "This part of the service is not reachable right now. Please try again later."
    )
    RESOURCE_BUSY = ErrorSpec("HE_00", 422, _IR, "Resource is busy. Please try again later.")
    DUPLICATE_MERCHANT_ACCOUNT = ErrorSpec(
        "HE_01", 400, _IR, "The merchant account with the specified details already exists in our records"
    )
    DUPLICATE_CONNECTOR_ACCOUNT = ErrorSpec(
        "HE_01",
        400,
        _IR,
        "The merchant connector account with the specified profile_id '{profile_id}' and connector_label "
        "'{connector_label}' already exists in our records",
    )
    DUPLICATE_PAYMENT = ErrorSpec(
        "HE_01", 400, _IR, "The payment with the specified payment_id already exists in our records"
    )
    MERCHANT_ACCOUNT_NOT_FOUND = ErrorSpec("HE_02", 404, _IR, "Merchant account does not exist in our records")
    CONNECTOR_ACCOUNT_NOT_FOUND = ErrorSpec(
        "HE_02", 404, _IR, "Merchant connector account does not exist in our records"
    )
    PROFILE_NOT_FOUND = ErrorSpec("HE_02", 404, _IR, "Business profile with the given id {id} does not exist")
    PAYMENT_NOT_FOUND = ErrorSpec("HE_02", 404, _IR, "Payment does not exist in our records")
    API_KEY_NOT_FOUND = ErrorSpec("HE_02", 404, _IR, "API Key does not exist in our records")
    EVENT_NOT_FOUND = ErrorSpec("HE_02", 404, _IR, "Event does not exist in our records")
    DISPUTE_NOT_FOUND = ErrorSpec("HE_02", 404, _IR, "Dispute does not exist in our records")
    RESOURCE_ID_NOT_FOUND = ErrorSpec("HE_02", 404, _IR, "Resource ID does not exist in our records")
    CONNECTOR_ACCOUNT_DISABLED = ErrorSpec("HE_03", 400, _IR, "The selected merchant connector account is disabled")
    INCORRECT_CONNECTOR_NAME = ErrorSpec(
        "HE_04", 404, _IR, "The connector provided in the request is incorrect or not available"
    )
    EXTERNAL_CONNECTOR_ERROR = ErrorSpec("CE_00", 502, ErrorType.CONNECTOR, "{code}: {message}")
    # Extension: a provider's webhook that needs its API (a billing system's invoice, the payment connector's
    # PaymentIntent) while that API cannot be read; nothing is applied and the provider delivers the event again.
    BILLING_SYSTEM_UNAVAILABLE = ErrorSpec(
        "CE_01", 503, ErrorType.CONNECTOR, "The billing system could not be read: {message}"
    )
    PAYMENT_CONNECTOR_UNAVAILABLE = ErrorSpec(
        "CE_01", 503, ErrorType.CONNECTOR, "The payment connector could not be read: {message}"
    )

    # Extensions (Hyperswitch has no code for these limits).
    RATE_LIMITED = ErrorSpec("RR_01", 429, _IR, "Too many requests for this API key; retry after {retry_after} s")
    PAYLOAD_TOO_LARGE = ErrorSpec("RR_02", 413, _IR, "Request body is larger than {limit} bytes")

    @property
    def code(self) -> str:
        return self.value.code

    @property
    def status_code(self) -> int:
        return self.value.status_code

    def response(self, *, reason: str | None = None, **params: object) -> ErrorResponse:
        spec: ErrorSpec = self.value
        return ErrorResponse(
            error=ErrorBody(type=spec.type, message=spec.message.format(**params)[:2048], code=spec.code, reason=reason)
        )


def _field_path(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    # FastAPI prefixes body errors with "body"; the merchant only knows the JSON path.
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def describe_validation_errors(errors: Iterable[Mapping[str, Any]], *, limit: int = 5) -> str:
    """One line naming each bad field, from pydantic's (or FastAPI's) `errors()`.

    Input values are never echoed, so a secret sent in the wrong place does not come back in an error."""
    described = []
    for error in list(errors)[:limit]:
        path = _field_path(error.get("loc", ()))
        if error.get("type") == "extra_forbidden":
            described.append(f"unknown field `{path}`")
        elif error.get("type") == "missing":
            described.append(f"missing field `{path}`")
        else:
            described.append(f"`{path}`: {error.get('msg', 'invalid value')}")
    return "; ".join(described)


def validation_error_response(errors: Iterable[Mapping[str, Any]]) -> ErrorResponse:
    return ApiError.INVALID_REQUEST_BODY.response(detail=describe_validation_errors(errors))
