"""What happens to a recovered payment's money afterwards, as the read side keeps it: the record back at the billing
system (its tries, by try number), the disputes lost on the payment, each with its refund record's tries, and each
step of a dispute's course before its end (opened, challenged, won, cancelled).

A dispute is its own fact beside the recovery: the payment stays recovered, and the figures count what lost
disputes took back, and what open ones put at risk, apart (`figures.contribution`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from recovery_contracts.disputes import OPEN_STATUSES, DisputeObject, DisputeState, DisputeStatus
from recovery_contracts.messages import PaymentDisputeLost, PaymentDisputeUpdated


@dataclass(frozen=True)
class RecordBackTry:
    """One try of recording the recovered payment back at the billing system, and where it stood after it."""

    attempt: int
    at: datetime
    billing_connector: str
    state: str
    status_code: int | None = None
    error: str | None = None


# Tries by try number, as the fold collects them.
Tries = Mapping[int, RecordBackTry]


@dataclass(frozen=True)
class LostDispute:
    """A dispute the payment connector decided against the merchant after the recovery (intake's
    `payment.dispute-lost`): what it took back, and the tries of recording that at the billing system as a refund
    (the executor's `record-back.updated` with its `dispute_id`), by try number."""

    dispute_id: str
    connector: str
    connector_dispute_id: str
    amount: int
    currency: str
    reason: str | None
    lost_at: datetime
    refund_record: tuple[RecordBackTry, ...] = ()


@dataclass(frozen=True)
class DisputeStep:
    """A step of a dispute's course that intake told of (`payment.dispute-updated`): opened, challenged, won or
    cancelled, at its stage, when the connector said so, and by when the merchant must answer an open one."""

    dispute_id: str
    connector: str
    connector_dispute_id: str
    stage: str
    status: DisputeStatus
    amount: int
    currency: str
    reason: str | None
    at: datetime
    challenge_required_by: datetime | None = None

    @property
    def open(self) -> bool:
        """The merchant may still answer it, and its amount is at risk."""
        return self.status in OPEN_STATUSES


def dispute_step(body: PaymentDisputeUpdated) -> DisputeStep:
    dispute = body.dispute
    return DisputeStep(
        dispute_id=dispute.dispute_id,
        connector=dispute.connector,
        connector_dispute_id=dispute.connector_dispute_id,
        stage=dispute.dispute_stage.value,
        status=dispute.dispute_status,
        amount=int(dispute.amount),
        currency=dispute.currency,
        reason=dispute.connector_reason,
        at=body.updated_at,
        challenge_required_by=dispute.challenge_required_by,
    )


def current_disputes(told: Iterable[tuple[datetime, DisputeObject]]) -> tuple[DisputeObject, ...]:
    """Each dispute on the payment as it stands now (the dispute list's, `GET /v2/disputes/list`): the object of its
    loss when it was lost, else the one told last (`(when, object)`: a step's `updated_at`, a loss's `lost_at`),
    received (`created_at`) when this system was first told of it; in the order they were received."""
    latest: dict[str, tuple[tuple[bool, datetime], DisputeObject]] = {}
    received: dict[str, datetime] = {}
    for at, dispute in told:
        key = dispute.dispute_id
        rank = (dispute.dispute_status is DisputeStatus.DISPUTE_LOST, at)
        if key not in latest or rank >= latest[key][0]:
            latest[key] = (rank, dispute)
        received[key] = min(received.get(key, dispute.created_at), dispute.created_at)
    now = (d.model_copy(update={"created_at": received[k]}) for k, (_, d) in latest.items())
    return tuple(sorted(now, key=lambda d: (d.created_at, d.dispute_id)))


def open_disputes(steps: tuple[DisputeStep, ...], lost: tuple[LostDispute, ...]) -> tuple[DisputeStep, ...]:
    """The disputes whose latest step (by time) is open and that were not lost: what is at risk now."""
    latest: dict[str, DisputeStep] = {}
    for step in steps:
        latest[step.dispute_id] = step
    ended = {d.dispute_id for d in lost}
    return tuple(s for s in latest.values() if s.open and s.dispute_id not in ended)


def dispute_state(steps: tuple[DisputeStep, ...], lost: tuple[LostDispute, ...]) -> DisputeState | None:
    """Where the payment's disputes stand, taken together: `open` while any is open (one the merchant must still
    answer, whatever another dispute on the payment came to), else `lost` when one was lost, else `ended` (each was
    won or cancelled); None when it had none. A loss is told of by `payment.dispute-lost` alone: a dispute whose
    latest step is not open and that was not lost ended otherwise."""
    if open_disputes(steps, lost):
        return DisputeState.OPEN
    if lost:
        return DisputeState.LOST
    return DisputeState.ENDED if steps else None


def by_number(tries: Tries) -> tuple[RecordBackTry, ...]:
    return tuple(tries[n] for n in sorted(tries))


def lost_dispute(body: PaymentDisputeLost) -> LostDispute:
    dispute = body.dispute
    return LostDispute(
        dispute_id=dispute.dispute_id,
        connector=dispute.connector,
        connector_dispute_id=dispute.connector_dispute_id,
        amount=body.amount,
        currency=dispute.currency,
        reason=dispute.connector_reason,
        lost_at=body.lost_at,
    )


def with_refund_records(
    disputes: Mapping[str, LostDispute], refund_records: Mapping[str, Tries]
) -> tuple[tuple[LostDispute, ...], tuple[tuple[str, RecordBackTry], ...]]:
    """The disputes by when they were lost, each with its refund record's tries; and the tries of a dispute not
    folded yet (its `payment.dispute-lost` may arrive after them), by dispute id then try number."""
    joined = tuple(
        replace(d, refund_record=by_number(refund_records.get(d.dispute_id, {})))
        for d in sorted(disputes.values(), key=lambda d: (d.lost_at, d.dispute_id))
    )
    unmatched = tuple(
        (dispute_id, tried)
        for dispute_id in sorted(refund_records.keys() - disputes.keys())
        for tried in by_number(refund_records[dispute_id])
    )
    return joined, unmatched
