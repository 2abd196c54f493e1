"""Right before any connector call: may this payment still be charged? From the executor's own records only."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_contracts.payments import IntentStatus
from recovery_runtime.payment_fence import FenceVerdict

# Intent statuses (intake's, projected from recovery.updated) under which nothing may be charged.
NOT_CHARGEABLE = {
    IntentStatus.CANCELLED.value: "the invoice was cancelled",
    IntentStatus.SUCCEEDED.value: "the invoice was paid elsewhere",
    IntentStatus.PROCESSING.value: "the billing system reports a payment in progress",
}

# What the payment's fence (shared with intake) answers when it refuses a charge lease for good.
FENCE_REFUSALS = {
    FenceVerdict.CANCELLED: "the invoice was closed (intake accepted its cancel, or its payment elsewhere)",
    FenceVerdict.PAID: "an attempt of this payment already succeeded",
}


@dataclass(frozen=True)
class ChargeFacts:
    """What the executor knows of a payment: its projection of the intent's status (None: no update seen) and
    the number of an attempt of it that already succeeded, if any."""

    intent_status: str | None = None
    succeeded_attempt: int | None = None


def refusal_to_charge(facts: ChargeFacts) -> str | None:
    """Why the payment may not be charged, or None when it may."""
    if facts.intent_status in NOT_CHARGEABLE:
        return NOT_CHARGEABLE[facts.intent_status]
    if facts.succeeded_attempt is not None:
        return f"attempt {facts.succeeded_attempt} of this payment already succeeded"
    return None
