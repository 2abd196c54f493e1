"""What is stored of a payment's view: its query fields, its figures and its answers, at a version; and, up to
`EMBEDDED_MAX` of them, the events it was folded from (what folding the payment's next event needs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from recovery_analytics.domain.answers import list_item, recovery_intent, recovery_status, timeline
from recovery_analytics.domain.figures import Counters, contribution, day_of
from recovery_analytics.domain.payment_events import in_order
from recovery_analytics.domain.view import PaymentView
from recovery_contracts.envelope import Envelope

# The most events a view carries. A payment has a few (its request, an attempt each, its end, a record back, its
# monitoring steps: a few dozen with the smart ladder's 15 attempts and its shadow plans), each 0.5-2.5 kB as
# received (the largest carry the recovery snapshot, which grows with its tokens): some 160 kB at most in a
# document MongoDB allows 16 MiB. A payment with more carries none (`history` None) and folds each next event
# from the event log, as a view stored before this field existed does.
EMBEDDED_MAX = 64


@dataclass(frozen=True)
class ViewRecord:
    payment_id: str
    merchant_id: str | None
    profile_id: str | None
    # The view's status (`ViewStatus`) and Hyperswitch's `RecoveryStatus` (the list's filter).
    status: str
    recovery_status: str
    created_at: datetime | None
    day: date | None
    # What the payment adds to its day's figures (figures.contribution), kept to move the day by the difference.
    contribution: Counters
    seconds_to_recover: float | None
    events: int
    # The answers, as JSON: the list item and the recovery intent (None until the request is known), the timeline.
    list_item: dict[str, Any] | None
    intent: dict[str, Any] | None
    timeline: dict[str, Any]
    version: int = 0
    # Where the record back stands after its last try (the list's `record_back_state` filter); None before any.
    record_back_state: str | None = None
    # Where the payment's disputes stand (`DisputeState`, the list's `dispute_state` filter); None without any.
    dispute_state: str | None = None
    # Each dispute on the payment as it stands now, as JSON (the dispute list's `DisputeObject`s): saved as
    # documents of their own, not with the record, so a record read back has none.
    disputes: tuple[dict[str, Any], ...] = ()
    # The events the view was folded from, in the fold's order (view.in_order); None when it does not carry them:
    # more than EMBEDDED_MAX, a view stored before this field, or read for an answer (the API leaves it out).
    history: tuple[Envelope[Any], ...] | None = None

    @classmethod
    def of(cls, view: PaymentView, version: int, events: list[Envelope[Any]]) -> ViewRecord:
        """The record of `view`, folded from `events` (every event of the payment: they are carried along when
        there are at most EMBEDDED_MAX)."""
        item, intent = list_item(view), recovery_intent(view)
        history = in_order(events)
        return cls(
            payment_id=view.payment_id,
            merchant_id=view.merchant_id,
            profile_id=view.profile_id,
            status=view.status.value,
            recovery_status=recovery_status(view).value,
            created_at=view.payment.created_at if view.payment is not None else None,
            day=day_of(view),
            contribution=contribution(view),
            seconds_to_recover=view.seconds_to_recover,
            events=view.events,
            list_item=item.model_dump(mode="json") if item is not None else None,
            intent=intent.model_dump(mode="json") if intent is not None else None,
            record_back_state=view.record_back_state,
            dispute_state=view.dispute_state,
            disputes=tuple(d.model_dump(mode="json") for d in view.dispute_objects),
            timeline=timeline(view).model_dump(mode="json"),
            version=version,
            history=tuple(history) if len(history) <= EMBEDDED_MAX else None,
        )
