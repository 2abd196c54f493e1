"""What the retry planner knows about one recovery: its tokens, its attempts, the billing system's count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .budgets import CardUse


class Algorithm(StrEnum):
    """The profile's `revenue_recovery_retry_algorithm_type` (Hyperswitch's names)."""

    MONITORING = "monitoring"
    CASCADING = "cascading"
    SMART = "smart"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    # The connector did not say (timeout, 5xx, `processing`): PSYNC settles it; never charge meanwhile.
    UNKNOWN = "unknown"
    # The call failed without a decline (connector or API error); planned as a technical failure.
    ERROR = "error"


@dataclass(frozen=True)
class TokenState:
    """A saved payment method of the customer, as the scheduler sees it."""

    token: str
    card_network: str | None = None
    card_issuer: str | None = None
    # Set by whoever learned it (a `never` decline here or elsewhere); the planner also derives it.
    hard_declined: bool = False
    # When the card data last changed (new expiry, account updater): lifts an earlier `fix`-class block.
    card_updated_at: datetime | None = None
    # The merchant's authorizations on this card outside this recovery (its other invoices' attempts, planned or
    # made) that network budgets must count.
    other_uses: tuple[CardUse, ...] = ()


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt this system made (1-based `number`), with what the connector and network said."""

    number: int
    token: str
    at: datetime
    outcome: AttemptOutcome
    decline_code: str | None = None
    error_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None


@dataclass(frozen=True)
class RecoveryView:
    """The planner's input: one failed invoice payment and everything tried on it so far.

    `tokens[0]` is the primary token, the one the billing system charged. `billing_retry_count` is the
    billing system's own attempts (`total_retry_count`): they count towards `max_retry_count` and, on the
    primary token, towards network budgets (placed at `billing_last_attempt_at`, the conservative choice).
    """

    algorithm: Algorithm
    tokens: tuple[TokenState, ...]
    created_at: datetime
    attempts: tuple[AttemptRecord, ...] = ()
    billing_retry_count: int = 0
    # When the billing system's last failed attempt happened; defaults to `created_at`.
    billing_last_attempt_at: datetime | None = None
    # The billing system's failure that opened the recovery (Hyperswitch's first_payment_attempt_* fields).
    first_error_code: str | None = None
    first_decline_code: str | None = None
    first_advice_code: str | None = None
    first_network_advice_code: str | None = None
    first_network_decline_code: str | None = None
    # When the profile chose monitoring (Hyperswitch: `monitoring_configured_timestamp`): the monitoring
    # threshold counts from it. None: from `created_at`.
    monitoring_started_at: datetime | None = None
    # The billing address country (ISO 3166 alpha-2): the customer's local time, which smart aims at.
    customer_country: str | None = None

    @property
    def billing_failed_at(self) -> datetime:
        return self.billing_last_attempt_at or self.created_at
