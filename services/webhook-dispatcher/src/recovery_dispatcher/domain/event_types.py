"""The event types the dispatcher raises, each with Hyperswitch's event class and the content its body carries (the
record's `event_class` and `primary_object_type`, which the events API lists by)."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_contracts.api.events import EventClass, EventType
from recovery_contracts.disputes import ENDED_STATUSES, OPEN_STATUSES, DisputeObject
from recovery_contracts.payments import PaymentObject
from recovery_contracts.webhooks import WebhookContentType

# What a webhook's `content.object` is: the payment, or a dispute on it.
ContentObject = PaymentObject | DisputeObject


@dataclass(frozen=True, slots=True)
class RaisedType:
    event_class: EventClass
    content_type: WebhookContentType


_PAYMENT = RaisedType(EventClass.PAYMENTS, WebhookContentType.PAYMENT_DETAILS)
_DISPUTE = RaisedType(EventClass.DISPUTES, WebhookContentType.DISPUTE_DETAILS)
RAISED_TYPES: dict[str, RaisedType] = {
    EventType.PAYMENT_SUCCEEDED: _PAYMENT,
    EventType.PAYMENT_FAILED: _PAYMENT,
    EventType.PAYMENT_CANCELLED: _PAYMENT,
    # Hyperswitch's incoming dispute flow: class `disputes`, object `dispute_details`, the dispute id its object id,
    # one type per status the payment connector reports (docs/webhooks.md, "Which events are sent").
    EventType.DISPUTE_OPENED: _DISPUTE,
    EventType.DISPUTE_CHALLENGED: _DISPUTE,
    EventType.DISPUTE_WON: _DISPUTE,
    EventType.DISPUTE_LOST: _DISPUTE,
    EventType.DISPUTE_CANCELLED: _DISPUTE,
}


# The dispute events further along than an open one (the open statuses after it, then the endings raised here):
# raised already, they make a late open one moot.
FURTHER_DISPUTE_EVENTS: dict[str, tuple[str, ...]] = {
    status.value: tuple(s.value for s in (*OPEN_STATUSES[n + 1 :], *sorted(ENDED_STATUSES)) if s.value in RAISED_TYPES)
    for n, status in enumerate(OPEN_STATUSES)
}


def raised_type(event_type: str) -> RaisedType:
    """The class and content of an event type this dispatcher raises (KeyError for any other)."""
    return RAISED_TYPES[event_type]


def payment_id_of(content: ContentObject) -> str:
    """The payment an event's object belongs to: its events are numbered and ordered within that payment."""
    return content.id if isinstance(content, PaymentObject) else content.payment_id
