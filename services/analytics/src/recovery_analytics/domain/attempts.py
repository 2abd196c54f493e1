"""A payment's attempts as the read side keeps them: one record per attempt number, from the executor's
`payment.attempt-failed` and `payment.succeeded`, with the card network the request gave its token."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from recovery_contracts.messages import PaymentAttemptFailed, PaymentSucceeded


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    ERROR = "error"


@dataclass(frozen=True)
class AttemptRecord:
    number: int
    attempt_id: str
    token: str
    card_network: str | None
    outcome: AttemptOutcome
    at: datetime
    decline_code: str | None = None
    error_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    message: str | None = None
    connector_transaction_id: str | None = None

    @property
    def declined(self) -> bool:
        return self.outcome is not AttemptOutcome.SUCCEEDED

    @property
    def decline_class(self) -> str | None:
        """The group a declined attempt is counted under: the connector's decline code (Stripe's
        `decline_code`), else its error code, else the outcome. No event carries the scheduler's own decline
        class (docs/analytics.md, "What the events do not say")."""
        if not self.declined:
            return None
        return self.decline_code or self.error_code or self.outcome.value


def failed_attempt(body: PaymentAttemptFailed) -> AttemptRecord:
    return AttemptRecord(
        number=body.attempt_number,
        attempt_id=body.attempt_id,
        token=body.token,
        card_network=None,
        outcome=AttemptOutcome(body.outcome.value),
        at=body.attempted_at,
        decline_code=body.decline_code,
        error_code=body.error_code,
        advice_code=body.advice_code,
        network_advice_code=body.network_advice_code,
        network_decline_code=body.network_decline_code,
        message=body.message,
        connector_transaction_id=body.connector_transaction_id,
    )


def succeeded_attempt(body: PaymentSucceeded) -> AttemptRecord:
    return AttemptRecord(
        number=body.attempt_number,
        attempt_id=body.attempt_id,
        token=body.token,
        card_network=None,
        outcome=AttemptOutcome.SUCCEEDED,
        at=body.succeeded_at,
        connector_transaction_id=body.connector_transaction_id,
    )


def with_network(attempt: AttemptRecord, network: str | None) -> AttemptRecord:
    """The attempt with the card network of its token (known from the request, whenever that arrived)."""
    return attempt if attempt.card_network == network else replace(attempt, card_network=network)
