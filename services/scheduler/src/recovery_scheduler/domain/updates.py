"""What intake's `recovery.updated` means for a recovery: the actions that stop it, those that may plan, and the news
in a newer snapshot (a changed card, the card's retries before this system)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.messages import CARD_DATA_BACKFILL, RecoveryUpdated
from recovery_contracts.recovery import PaymentToken, PriorRetries, RecoveryPayment

from .card_budgets import planned_attempt
from .model import BusinessStatus
from .status import RecoveryStatus

if TYPE_CHECKING:
    from .recovery import Recovery

# Card fields whose change (a new expiry, the account updater) lifts an earlier `fix`-class block of the token.
CARD_FIELDS = ("card_exp_month", "card_exp_year", "last_four_digits")

# The billing system's actions that end a recovery outside the planner: the status, business status and reason.
STOPPING_ACTIONS: Mapping[str, tuple[RecoveryStatus, str, str]] = {
    RecoveryAction.CANCEL_INVOICE: (
        RecoveryStatus.CANCELLED,
        "CANCELLED_BY_BILLING_CONNECTOR",
        "the billing system cancelled the invoice: pending retries stopped",
    ),
    RecoveryAction.SUCCESS_PAYMENT_EXTERNAL: (
        RecoveryStatus.SUCCEEDED,
        "COMPLETED_BY_EXTERNAL_PAYMENT",
        "the invoice was paid outside this system: pending retries stopped",
    ),
}


# A cancel the merchant asked for itself (by the invoice's reference), not its billing system.
CANCELLED_BY_MERCHANT = (
    RecoveryStatus.CANCELLED,
    "CANCELLED_BY_MERCHANT",
    "the merchant cancelled the recovery: pending retries stopped",
)

# Why a planned attempt is planned again when the merchant's backfill brought its card's earlier retries.
PRIOR_RETRIES_IMPORTED = "the card's retries before this system were imported: planned again within its network budget"


def stopping(update: RecoveryUpdated) -> tuple[RecoveryStatus, str, str] | None:
    """The status, business status and reason `update` ends a recovery with, or None when it does not end it."""
    if update.action == RecoveryAction.CANCEL_INVOICE and update.by_merchant:
        return CANCELLED_BY_MERCHANT
    return STOPPING_ACTIONS.get(update.action)


def plans_on(update: RecoveryUpdated) -> bool:
    """Whether applying `update` may run the planner: only another failure reported for the invoice does (the
    other actions stop, pause or are recorded)."""
    return update.action == RecoveryAction.SCHEDULE_FAILED_PAYMENT


def may_plan(update: RecoveryUpdated) -> bool:
    """Whether applying `update` may run the planner at all: another failure, or news of the customer's cards (a
    recovery that ended waiting for a fixed card plans again when the card changed; a planned attempt whose card's
    earlier retries were imported plans again within its budget)."""
    return plans_on(update) or update.action == CARD_DATA_BACKFILL


def needs_its_recovery(update: RecoveryUpdated) -> bool:
    """Whether `update` can only apply to a recovery already stored: the merchant's card-data backfill, which intake
    sends only for an intent whose `recovery.scheduled` it sent before. Seen first (the two travel on different
    queues), it waits for the recovery: taken as a recovery's first news, nothing would be stored, and the later
    `recovery.scheduled` would start from the snapshot before the backfill."""
    return update.action == CARD_DATA_BACKFILL


def card_changed(old: PaymentToken, new: PaymentToken) -> bool:
    """The card data changed (`CARD_FIELDS`); its earlier retries (`prior_retries`) are not card data."""
    return any(getattr(old, name) != getattr(new, name) for name in CARD_FIELDS)


def prior_retries_changed(before: RecoveryPayment, after: RecoveryPayment, token: str) -> bool:
    """Whether the newer snapshot `after` brings other earlier retries for `token` (False: the token left it)."""
    new = _prior_retries(after, token)
    return new is not None and new != (_prior_retries(before, token) or ())


def _prior_retries(payment: RecoveryPayment, token: str) -> tuple[PriorRetries, ...] | None:
    return next((t.prior_retries for t in payment.tokens if t.token == token), None)


def waits_for_a_card(recovery: Recovery) -> bool:
    """Ended because no token may be charged until the customer acts (an expired card, a lost one)."""
    return (
        recovery.status is RecoveryStatus.FAILED
        and recovery.business_status == BusinessStatus.FAILED_DUE_TO_CUSTOMER_ACTION_REQUIRED
    )


def plan_misses_prior_retries(recovery: Recovery, payment: RecoveryPayment, now: datetime) -> bool:
    """The running recovery's planned attempt, its timer not due yet, was planned without the card's retries before
    this system that the newer snapshot `payment` brings (an attempt already due is in flight: it stands, keeping
    its budget slot)."""
    planned = planned_attempt(recovery)
    return (
        planned is not None
        and not recovery.ended
        and not recovery.paused
        and planned.due_at > now
        and prior_retries_changed(recovery.payment, payment, planned.token)
    )
