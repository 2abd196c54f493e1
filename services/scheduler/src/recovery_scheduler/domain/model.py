"""The retry planner's vocabulary: what it knows about one recovery (its tokens, its attempts, the billing
system's count) and what it decides (charge at a time, look again later, end the recovery, or only observe)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from .budgets import CardUse
from .declines import NO_DECLINE_CODES, DeclineCodes

if TYPE_CHECKING:
    from .learned_hours import HourRates


class Algorithm(StrEnum):
    """The profile's `revenue_recovery_retry_algorithm_type` (Hyperswitch's names)."""

    MONITORING = "monitoring"
    CASCADING = "cascading"
    SMART = "smart"


# What a monitoring recovery compares: the decision each of these would take, at every planning step.
SHADOWED_ALGORITHMS = (Algorithm.CASCADING, Algorithm.SMART)


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
    # Where another recovery of the merchant met a `never` decline on the card (then `hard_declined`), as the
    # reasons say it.
    hard_declined_in: str | None = None
    # When the card data last changed (new expiry, account updater): lifts an earlier `fix`-class block.
    card_updated_at: datetime | None = None
    # The merchant's word on when the card may next be tried (`scheduled_at` of its token status update), while it
    # is ahead: every algorithm, and an operator's resume, plans no attempt on the card before it.
    not_before: datetime | None = None
    # The merchant's authorizations on this card outside this recovery (its other invoices' attempts, planned or
    # made) that network budgets must count.
    other_uses: tuple[CardUse, ...] = ()
    # The card's retries before this system (the merchant's backfill, `daily_retry_history`) that network budgets
    # must count: each an attempt on the same amount and currency, declined, at the end of its day or hour (the
    # conservative reading: it stays inside every window as long as any retry of that period could).
    prior_uses: tuple[CardUse, ...] = ()
    # The merchant's learned success rates by hour for a retry like the next one on this card (smart reads them;
    # domain/learned_hours.py). None: not enough evidence, or not looked up.
    hour_rates: HourRates | None = None


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt this system made (1-based `number`), with what the connector and network said."""

    number: int
    token: str
    at: datetime
    outcome: AttemptOutcome
    codes: DeclineCodes = NO_DECLINE_CODES


@dataclass(frozen=True, kw_only=True)
class Attempt(AttemptRecord):
    """An attempt this system made, as the planner reads it, with what the recovery keeps of it besides."""

    attempt_id: str
    message: str | None = None
    connector_transaction_id: str | None = None


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
    # The billing system's failure that opened the recovery (Hyperswitch's first_payment_attempt_* fields); empty:
    # none reported.
    first_codes: DeclineCodes = NO_DECLINE_CODES
    # When the profile chose monitoring (Hyperswitch: `monitoring_configured_timestamp`): the monitoring
    # threshold counts from it. None: from `created_at`.
    monitoring_started_at: datetime | None = None
    # The billing address country (ISO 3166 alpha-2): the customer's local time, which smart aims at.
    customer_country: str | None = None

    @property
    def billing_failed_at(self) -> datetime:
        return self.billing_last_attempt_at or self.created_at


class EndOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED_HARD_DECLINE = "failed_hard_decline"  # every token hard-declined
    ACTION_REQUIRED = "action_required"  # no token left that may be charged off-session (customer / fix)
    RETRIES_EXHAUSTED = "retries_exhausted"  # ladder, max_retry_count, retry window or token caps used up
    HORIZON_REACHED = "horizon_reached"  # the recovery's horizon passed, whatever it was waiting for


class BusinessStatus(StrEnum):
    """Process-tracker business statuses (Hyperswitch's, plus three of ours where it has none)."""

    COMPLETED_EXECUTE_TASK = "COMPLETED_EXECUTE_TASK"
    CALCULATE_WORKFLOW_SCHEDULED = "CALCULATE_WORKFLOW_SCHEDULED"
    FAILED_DUE_TO_HARD_DECLINE_ERROR = "FAILED_DUE_TO_HARD_DECLINE_ERROR"
    FAILED_DUE_TO_RETRIES_EXHAUSTED = "FAILED_DUE_TO_RETRIES_EXHAUSTED"
    FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED = "FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED"
    FAILED_DUE_TO_HORIZON_REACHED = "FAILED_DUE_TO_HORIZON_REACHED"


BUSINESS_STATUS_BY_OUTCOME: dict[EndOutcome, BusinessStatus] = {
    EndOutcome.SUCCEEDED: BusinessStatus.COMPLETED_EXECUTE_TASK,
    EndOutcome.FAILED_HARD_DECLINE: BusinessStatus.FAILED_DUE_TO_HARD_DECLINE_ERROR,
    EndOutcome.RETRIES_EXHAUSTED: BusinessStatus.FAILED_DUE_TO_RETRIES_EXHAUSTED,
    EndOutcome.ACTION_REQUIRED: BusinessStatus.FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED,
    EndOutcome.HORIZON_REACHED: BusinessStatus.FAILED_DUE_TO_HORIZON_REACHED,
}


@dataclass(frozen=True)
class ScheduleAttempt:
    """Charge `token` at `at` as this system's attempt `attempt_number` (1-based). `held_until`: the merchant's word on
    the card (its `not_before`) when that moved the attempt later than the algorithm's own time, or, `held_card`, the
    word on the customer's other card that sent the attempt to this one (the algorithm would have tried that card
    first); so that lifting or moving the word sooner plans it again. `resumed_at`: an operator's resume asked for
    this attempt at that time (planned again, it is the resume's rules that apply, not the planner's)."""

    at: datetime
    token: str
    attempt_number: int
    reason: str
    held_until: datetime | None = None
    held_card: str | None = None
    resumed_at: datetime | None = None


@dataclass(frozen=True)
class Recheck:
    """Nothing may be charged now (a budget used up, an outcome unknown): call `decide_next` again at `at`."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class AwaitBillingSystem:
    """The billing system has not used its own retries yet (`billing_connector_retry_threshold`): no task.

    Nothing is scheduled; the next failure it reports (a higher billing_retry_count) asks again.
    """

    reason: str


@dataclass(frozen=True)
class EndRecovery:
    outcome: EndOutcome
    reason: str
    business_status: str
    # Send `payment_failed` (event and webhook): a failure end after at least one attempt of this system.
    emits_payment_failed: bool = False


# What an algorithm that charges would decide: what monitoring records in its shadow.
Shadowed = ScheduleAttempt | Recheck | EndRecovery | AwaitBillingSystem


@dataclass(frozen=True)
class Observe:
    """Monitoring: charge nothing. `shadows`: what each of `SHADOWED_ALGORITHMS` would do now, side by side;
    `active` the one that takes over at `switch_at` (its decision is `shadow`)."""

    shadows: Mapping[Algorithm, Shadowed]
    switch_at: datetime | None
    active: Algorithm = Algorithm.CASCADING

    @property
    def shadow(self) -> Shadowed:
        return self.shadows[self.active]


Decision = ScheduleAttempt | Recheck | EndRecovery | AwaitBillingSystem | Observe


def end_recovery(outcome: EndOutcome, reason: str, attempts_made: int) -> EndRecovery:
    return EndRecovery(
        outcome,
        reason,
        BUSINESS_STATUS_BY_OUTCOME[outcome].value,
        emits_payment_failed=outcome is not EndOutcome.SUCCEEDED and attempts_made > 0,
    )
