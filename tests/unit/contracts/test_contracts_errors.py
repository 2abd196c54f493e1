"""The error catalogue answers in Hyperswitch's body, codes and statuses."""

from __future__ import annotations

import re

import pytest

from recovery_contracts.api.errors import ApiError, ErrorResponse, ErrorType

pytestmark = pytest.mark.unit


def test_every_catalogue_entry_is_distinct_and_well_formed():
    assert len(list(ApiError)) == len(ApiError.__members__)  # no entry silently aliases another
    for entry in ApiError:
        assert re.fullmatch(r"[A-Z]{2}_\d{2}", entry.code)
        assert 400 <= entry.status_code < 600
        # `api` is ours to blame (5xx), the connector's own failures aside; a 4xx is never `api`.
        assert (entry.value.type is ErrorType.API) == (
            entry.status_code >= 500 and entry.value.type is not ErrorType.CONNECTOR
        )


@pytest.mark.parametrize(
    ("error", "params", "status", "body"),
    [
        (
            ApiError.UNAUTHORIZED,
            {},
            401,
            {
                "type": "invalid_request",
                "message": "API key not provided or invalid API key used",
                "code": "IR_01",
            },
        ),
        (
            ApiError.PAYMENT_NOT_FOUND,
            {},
            404,
            {"type": "invalid_request", "message": "Payment does not exist in our records", "code": "HE_02"},
        ),
        (
            ApiError.MISSING_REQUIRED_FIELD,
            {"field_name": "amount_details"},
            400,
            {"type": "invalid_request", "message": "Missing required param: amount_details", "code": "IR_04"},
        ),
        (
            ApiError.INTERNAL_SERVER_ERROR,
            {},
            500,
            {"type": "api", "message": "Something went wrong", "code": "HE_00"},
        ),
    ],
)
def test_error_body_matches_hyperswitch(error, params, status, body):
    response = error.response(**params)
    assert error.status_code == status
    assert response.model_dump(mode="json", exclude_none=True) == {"error": body}
    assert ErrorResponse.model_validate_json(response.model_dump_json()) == response
