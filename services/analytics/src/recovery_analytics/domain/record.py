"""What is stored of a payment's view: its query fields, its figures and its answers, at a version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from recovery_analytics.domain.answers import list_item, recovery_intent, recovery_status, timeline
from recovery_analytics.domain.figures import Counters, contribution, day_of
from recovery_analytics.domain.view import PaymentView


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

    @classmethod
    def of(cls, view: PaymentView, version: int) -> ViewRecord:
        item, intent = list_item(view), recovery_intent(view)
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
            timeline=timeline(view).model_dump(mode="json"),
            version=version,
        )
