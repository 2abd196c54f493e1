"""How the Stripe adapter reads an error answer to a charge: only an answer that proves what happened is final."""

from __future__ import annotations

from typing import Any

import pytest

from recovery_contracts.messages import PAYMENT_METHOD_UNUSABLE
from recovery_executor.adapters.stripe import outcome_from_response
from recovery_executor.domain.connector import ChargeOutcomeKind


def stripe_error(type_: str, code: str | None = None, **fields: Any) -> dict[str, Any]:
    error = {"type": type_, "message": f"a {type_}", **fields}  # `message` among `fields` replaces it
    if code is not None:
        error["code"] = code
    return {"error": error}


@pytest.mark.parametrize(
    ("http_status", "body", "kind"),
    [
        # The key was first used with other parameters: that first request may have charged.
        (400, stripe_error("idempotency_error"), ChargeOutcomeKind.UNKNOWN),
        # Another request holds the key right now.
        (409, stripe_error("invalid_request_error", "idempotency_key_in_use"), ChargeOutcomeKind.UNKNOWN),
        (429, stripe_error("invalid_request_error", "rate_limit"), ChargeOutcomeKind.UNKNOWN),
        (500, stripe_error("api_error"), ChargeOutcomeKind.UNKNOWN),
        (502, None, ChargeOutcomeKind.UNKNOWN),
        (
            402,
            stripe_error("card_error", "card_declined", decline_code="insufficient_funds"),
            ChargeOutcomeKind.DECLINED,
        ),
        (400, stripe_error("invalid_request_error", "resource_missing"), ChargeOutcomeKind.CONFIG_ERROR),
        (401, stripe_error("invalid_request_error"), ChargeOutcomeKind.CONFIG_ERROR),
    ],
)
def test_a_charge_answer_is_final_only_when_it_says_what_happened(
    http_status: int, body: dict[str, Any] | None, kind: ChargeOutcomeKind
) -> None:
    outcome = outcome_from_response(http_status, body)

    assert (outcome.kind, outcome.http_status) == (kind, http_status)
    assert outcome.is_final is (kind is not ChargeOutcomeKind.UNKNOWN)


def test_an_idempotency_error_keeps_stripes_words() -> None:
    outcome = outcome_from_response(400, stripe_error("idempotency_error"))

    assert (outcome.error_type, outcome.message) == ("idempotency_error", "a idempotency_error")


def test_a_saved_method_stripe_refuses_is_told_apart_from_a_missing_one_and_other_bad_requests() -> None:
    """A method detached from its customer (or another customer's) is refused for the `payment_method` parameter
    with no `resource_missing`: the card's state, `payment_method_unusable` for the scheduler. A missing method
    (an account of another Stripe account answers so for every one) and other bad requests keep Stripe's code."""
    detached = "The provided PaymentMethod was ... detached from a Customer. It may not be used again."
    refused = outcome_from_response(
        400, stripe_error("invalid_request_error", param="payment_method", message=detached)
    )
    missing = outcome_from_response(
        400, stripe_error("invalid_request_error", "resource_missing", param="payment_method")
    )
    other = outcome_from_response(400, stripe_error("invalid_request_error", "parameter_unknown", param="amount"))
    unauthorized = outcome_from_response(401, stripe_error("invalid_request_error", param="payment_method"))

    assert (refused.kind, refused.error_code, refused.message) == (
        ChargeOutcomeKind.CONFIG_ERROR,
        PAYMENT_METHOD_UNUSABLE,
        detached,
    )
    assert [o.error_code for o in (missing, other, unauthorized)] == ["resource_missing", "parameter_unknown", None]
