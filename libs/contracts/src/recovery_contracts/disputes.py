"""The dispute object (Hyperswitch's DisputeResponse) that the dispute webhooks (`dispute_opened`, ...,
`dispute_lost`) carry.

A dispute here is one the payment connector told of on a payment a recovery collected: opened, challenged, or ended
(won, lost: the money went back to the customer, or an inquiry cancelled). Field order is Hyperswitch's wire order:
do not reorder."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from recovery_contracts.timestamps import UtcMillis


class DisputeStage(StrEnum):
    PRE_DISPUTE = "pre_dispute"
    DISPUTE = "dispute"
    PRE_ARBITRATION = "pre_arbitration"


class DisputeStatus(StrEnum):
    """Hyperswitch's `DisputeStatus`. This system reports opened, challenged, won, lost and cancelled (what Stripe's
    dispute statuses map to); expired and accepted are Hyperswitch's, for other connectors."""

    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_EXPIRED = "dispute_expired"
    DISPUTE_ACCEPTED = "dispute_accepted"
    DISPUTE_CANCELLED = "dispute_cancelled"
    DISPUTE_CHALLENGED = "dispute_challenged"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"


# Where a dispute stands: its open statuses in the order a dispute passes them, and its endings (final).
OPEN_STATUSES = (DisputeStatus.DISPUTE_OPENED, DisputeStatus.DISPUTE_CHALLENGED)
ENDED_STATUSES = frozenset(
    {
        DisputeStatus.DISPUTE_WON,
        DisputeStatus.DISPUTE_LOST,
        DisputeStatus.DISPUTE_CANCELLED,
        DisputeStatus.DISPUTE_EXPIRED,
        DisputeStatus.DISPUTE_ACCEPTED,
    }
)


class DisputeState(StrEnum):
    """Where the disputes on a recovered payment stand, all taken together (the recovery list's `dispute_state`
    filter): the first of these that holds."""

    OPEN = "open"  # one is open (opened or challenged): the merchant may still answer it
    LOST = "lost"  # none is open, and one was lost: its amount went back to the customer
    ENDED = "ended"  # each ended otherwise (won, cancelled): nothing was taken back


class DisputeObject(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dispute_id: str
    payment_id: str
    attempt_id: str
    # Minor units, as a string (Hyperswitch's), of the amount disputed (taken back, when lost).
    amount: str
    currency: str
    dispute_stage: DisputeStage
    dispute_status: DisputeStatus
    connector: str
    # The connector's own words: Stripe's dispute `status` (`needs_response`, `lost`, ...), `reason` and, where it
    # has one, its code.
    connector_status: str
    connector_dispute_id: str
    connector_reason: str | None = None
    connector_reason_code: str | None = None
    challenge_required_by: UtcMillis | None = None
    connector_created_at: UtcMillis | None = None
    connector_updated_at: UtcMillis | None = None
    created_at: UtcMillis
    profile_id: str | None = None
    merchant_connector_id: str | None = None
