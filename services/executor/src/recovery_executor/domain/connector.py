"""What a connector call asks for and what came of it, independent of any one payment processor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class ChargeOutcomeKind(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    # Accepted by the processor, final status not known yet: sync later.
    PROCESSING = "processing"
    # The call may or may not have charged (timeout, connection lost, 5xx, a concurrent request holding the
    # idempotency key, the key first used with other parameters): only a sync or a replay of the same idempotency
    # key can tell.
    UNKNOWN = "unknown"
    # A sync found no charge for the attempt. Not proof that none happened: a processor's search can lag.
    NOT_FOUND = "not_found"
    # The request itself is wrong (credentials, a missing customer or payment method): retrying the same request
    # will fail the same way.
    CONFIG_ERROR = "config_error"


@dataclass(frozen=True)
class ChargeRequest:
    """One planned attempt: an off-session, merchant-initiated charge of a saved payment method."""

    payment_id: str
    attempt_number: int
    amount: int  # minor units of `currency`
    currency: str  # ISO 4217, any case
    customer: str | None
    payment_method: str  # the processor's token, e.g. Stripe's pm_...
    idempotency_key: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("amount must be positive, in minor units")
        if self.attempt_number < 1:
            raise ValueError("attempt_number starts at 1")
        if not self.idempotency_key:
            raise ValueError("a charge without an idempotency key could be made twice")
        # Frozen all the way down: a caller's dict must not change the request after the fact.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def parameters(self) -> dict[str, Any]:
        """The request as a canonical dict (JSON values, metadata sorted by key): what an attempt stores when it is
        claimed, and sends again, exactly, on every later call under its idempotency key."""
        return {
            "payment_id": self.payment_id,
            "attempt_number": self.attempt_number,
            "amount": self.amount,
            "currency": self.currency,
            "customer": self.customer,
            "payment_method": self.payment_method,
            "idempotency_key": self.idempotency_key,
            "metadata": dict(sorted(self.metadata.items())),
            "description": self.description,
        }

    @classmethod
    def of_parameters(cls, parameters: Mapping[str, Any]) -> ChargeRequest:
        """The request `parameters()` stored."""
        return cls(**parameters)


# HTTP statuses of a connector refusing the caller itself (authentication, permission), whatever the request.
REFUSED_CALLER = frozenset({401, 403})


@dataclass(frozen=True)
class ChargeOutcome:
    """What the processor said, kept in its own words (codes, statuses) for the retry rules to read."""

    kind: ChargeOutcomeKind
    connector_transaction_id: str | None = None  # Stripe: the PaymentIntent id, pi_...
    charge_id: str | None = None  # Stripe: the latest charge, ch_...
    amount_received: int | None = None
    decline_code: str | None = None  # the issuer's reason, e.g. insufficient_funds
    error_code: str | None = None  # the processor's error code, e.g. card_declined
    error_type: str | None = None  # e.g. card_error, invalid_request_error, api_error
    message: str | None = None
    advice_code: str | None = None  # e.g. try_again_later, do_not_try_again
    network_decline_code: str | None = None
    network_advice_code: str | None = None
    raw_status: str | None = None  # the processor's object status, e.g. requires_payment_method
    http_status: int | None = None  # None when no HTTP answer arrived

    @property
    def is_final(self) -> bool:
        """Whether the attempt is settled: no sync can change a final outcome."""
        return self.kind in (
            ChargeOutcomeKind.SUCCEEDED,
            ChargeOutcomeKind.DECLINED,
            ChargeOutcomeKind.CONFIG_ERROR,
        )

    def after_an_unknown(self) -> ChargeOutcome:
        """What this answer says of an attempt whose outcome was unknown (PSYNC's read, or its re-send under the
        same idempotency key). The connector refusing the caller (401, 403: a key revoked or replaced since the
        charge) is answered before the key's stored result is looked at, so it says nothing of the charge the
        first call may have made: the outcome stays unknown, and PSYNC asks again, rather than a final error that
        would let the next attempt charge under a new key."""
        if self.kind is not ChargeOutcomeKind.CONFIG_ERROR or self.http_status not in REFUSED_CALLER:
            return self
        said = self.message or "no message"
        return replace(self, kind=ChargeOutcomeKind.UNKNOWN, message=f"the connector refused the caller: {said}")
