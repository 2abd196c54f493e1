"""Scripted misbehaviour for tests: slow answers, lost answers after a charge, 500s, forced declines."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recovery_sandbox.stripe.errors import StripeError
from recovery_sandbox.stripe.test_cards import DECLINES_BY_CODE


class FaultMode(StrEnum):
    # The charge happens and is recorded, then the answer is held back `seconds`: the client times out
    # although the money moved, which is the case PSYNC exists for.
    TIMEOUT_AFTER_CHARGE = "timeout_after_charge"
    # Answer 500 api_error without charging; nothing is saved under the idempotency key, as Stripe does
    # when a request fails before the endpoint starts executing.
    ERROR_500_BEFORE_CHARGE = "error_500_before_charge"
    # Wait `seconds` before processing; the key is in flight meanwhile, so a concurrent retry gets 409.
    DELAY = "delay"
    # Decline with `decline_code` whatever the card: "insufficient funds twice, then it works".
    DECLINE = "decline"
    # Answer 429 (Stripe's `rate_limit`) without charging; nothing is saved under the idempotency key.
    RATE_LIMITED = "rate_limited"
    # Charge, then answer 400 idempotency_error instead of the result (as if the key had first been used with other
    # parameters by a request that charged): money moved under the key, and the answer does not say so.
    IDEMPOTENCY_ERROR = "idempotency_error"


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_method: str = Field("*", description="a pm_ id, a test alias such as pm_card_visa, or '*'")
    mode: FaultMode
    seconds: float = Field(0.0, ge=0)
    times: int | None = Field(1, ge=1, description="how many charges it applies to; null for every one")
    decline_code: str | None = None

    @model_validator(mode="after")
    def _decline_code_known(self) -> Self:
        if self.mode is FaultMode.DECLINE:
            if self.decline_code is None:
                self.decline_code = "generic_decline"
            if self.decline_code not in DECLINES_BY_CODE:
                raise ValueError(f"decline_code must be one of {sorted(DECLINES_BY_CODE)}")
        return self

    def applies_to(self, *payment_methods: str | None) -> bool:
        return self.payment_method == "*" or self.payment_method in payment_methods


class FaultBook:
    """Armed faults in the order they were added; the first that matches a charge is used up by it."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def list(self) -> list[Fault]:
        return list(self._faults)

    def take(self, *payment_methods: str | None) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.applies_to(*payment_methods):
                if fault.times is not None:
                    remaining = fault.times - 1
                    if remaining <= 0:
                        del self._faults[index]
                    else:
                        self._faults[index] = fault.model_copy(update={"times": remaining})
                return fault
        return None


def rate_limited() -> StripeError:
    return StripeError(
        429,
        "invalid_request_error",
        "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.",
        code="rate_limit",
    )


def idempotency_error(key: str | None) -> StripeError:
    return StripeError(
        400,
        "idempotency_error",
        "Keys for idempotent requests can only be used with the same parameters they were first used with. "
        f"Try using a key other than '{key}' if you meant to execute a different request.",
    )
