"""The MongoDB shape of webhook events: claims (`webhook_claims`), initial records and attempt records
(`webhook_events`, Hyperswitch's shape), to and from the domain's `WebhookEvent` and `Claim`."""

from __future__ import annotations

from typing import Any

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_dispatcher.adapters.record_writer import sequence_key
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.event import Claim, EarlierEvent, WebhookEvent
from recovery_dispatcher.domain.ids import record_key, retry_event_id
from recovery_dispatcher.domain.outgoing_webhook import recorded_headers
from recovery_dispatcher.domain.status import EventStatus

# The event's state as stored on its initial record: (attribute of WebhookEvent, field of the document).
_STATE_FIELDS = (
    ("status", "status"),
    ("status_reason", "status_reason"),
    ("retry_index", "retry_index"),
    ("holds", "holds"),
    ("rounds", "rounds"),
    ("attempts", "attempts"),
    ("next_retry_at", "next_retry_at"),
    ("lease_until", "lease_until"),
    ("lease_owner", "lease_owner"),
    ("finished_at", "finished_at"),
    ("notified", "is_webhook_notified"),
    ("delivered", "is_overall_delivery_successful"),
)


def _shared_fields(event: WebhookEvent) -> dict[str, Any]:
    """What every record of an event says about it (the initial record and each later attempt's)."""
    return {
        "event_type": event.event_type,
        "event_class": event.event_class,
        "primary_object_id": event.primary_object_id,
        "primary_object_type": event.content_type,
        "payment_id": event.payment_id,
        "merchant_id": event.merchant_id,
        "business_profile_id": event.profile_id,
    }


def claim_document(event: WebhookEvent) -> dict[str, Any]:
    """The claim of a new event; the record writer numbers it (`_id`, `sequence`, `sequence_key`)."""
    return {
        "idempotent_event_id": event.idempotent_event_id,
        "event_id": event.event_id,
        "payment_id": event.payment_id,
        "created_at": event.created_at,
        "body": event.body,
        "lease_until": event.lease_until,
        "lease_owner": event.lease_owner,
    }


def claim_of(doc: dict[str, Any]) -> Claim:
    return Claim(
        key=doc["_id"],
        idempotent_event_id=doc["idempotent_event_id"],
        event_id=doc["event_id"],
        payment_id=doc["payment_id"],
        created_at=doc["created_at"],
        body=bytes(doc["body"]),
        sequence=int(doc.get("sequence") or 0),
        lease_until=doc.get("lease_until"),
        lease_owner=doc.get("lease_owner"),
    )


def initial_document(event: WebhookEvent) -> dict[str, Any]:
    """The initial record of an event (its first attempt's fields are added by `attempt_fields`)."""
    doc: dict[str, Any] = {
        "_id": event.key,
        "event_id": event.event_id,
        "initial_attempt_id": event.event_id,
        "idempotent_event_id": event.idempotent_event_id,
        **_shared_fields(event),
        "created_at": event.created_at,
        "body": event.body,
        "sequence": event.sequence,
        "sequence_key": sequence_key(event.payment_id, event.sequence),
        "delivery_attempt": WebhookDeliveryAttempt.INITIAL_ATTEMPT.value,
        "is_webhook_notified": event.notified,
        "is_overall_delivery_successful": event.delivered,
        "status": event.status.value,
        "lease_until": event.lease_until,
        "lease_owner": event.lease_owner,
        "retry_index": event.retry_index,
        "holds": event.holds,
        "rounds": event.rounds,
        "request": None,
        "response": None,
    }
    if event.attempted:
        doc["attempts"] = event.attempts
    for name in ("status_reason", "next_retry_at", "finished_at"):
        value = getattr(event, name)
        if value is not None:
            doc[name] = value
    return doc


def event_of(doc: dict[str, Any]) -> WebhookEvent:
    """The event of an initial record."""
    return WebhookEvent(
        event_id=doc["event_id"],
        idempotent_event_id=doc.get("idempotent_event_id") or "",
        event_type=doc.get("event_type") or "",
        primary_object_id=doc.get("primary_object_id") or "",
        payment_id=doc.get("payment_id") or "",
        merchant_id=doc["merchant_id"],
        profile_id=doc.get("business_profile_id") or "",
        created_at=doc["created_at"],
        body=bytes(doc.get("body") or b""),
        sequence=int(doc.get("sequence") or 0),
        status=EventStatus(doc.get("status") or EventStatus.DELIVERING),
        status_reason=doc.get("status_reason"),
        retry_index=int(doc.get("retry_index") or 0),
        holds=int(doc.get("holds") or 0),
        rounds=int(doc.get("rounds") or 0),
        attempts=int(doc.get("attempts") or 0),
        attempted=doc.get("request") is not None,
        notified=bool(doc.get("is_webhook_notified")),
        delivered=bool(doc.get("is_overall_delivery_successful")),
        next_retry_at=doc.get("next_retry_at"),
        lease_until=doc.get("lease_until"),
        lease_owner=doc.get("lease_owner"),
        finished_at=doc.get("finished_at"),
    )


def earlier_of(doc: dict[str, Any]) -> EarlierEvent:
    return EarlierEvent(doc["event_id"], doc.get("sequence"), doc.get("next_retry_at"))


def changed_fields(before: WebhookEvent, after: WebhookEvent) -> dict[str, Any]:
    """The `$set` that turns the stored state `before` into `after`."""
    fields: dict[str, Any] = {}
    for attribute, name in _STATE_FIELDS:
        value = getattr(after, attribute)
        if value != getattr(before, attribute):
            fields[name] = value.value if isinstance(value, EventStatus) else value
    return fields


def attempt_fields(body: bytes, result: DeliveryResult, *, with_body: bool = True) -> dict[str, Any]:
    """An attempt's request and response as recorded. `with_body=False` (the initial record, which keeps the
    body bytes in `body`): the request without its copy of the body (readers take `body`; see `http.py`)."""
    # Header pairs as tuples: BSON stores a tuple as an array, as it would a list.
    request: dict[str, Any] = {"headers": recorded_headers(result.request_headers)}
    if with_body:
        request = {"body": body.decode(), **request}
    return {
        "request": request,
        "response": {
            "status_code": result.status_code,
            "headers": result.response_headers,
            "body": result.response_body,
            "body_truncated": result.response_body_truncated,
            "error_message": result.error_message,
            "duration_ms": result.duration_ms,
        },
        "is_webhook_notified": result.is_success,
        "url": result.url,
        "attempted_at": result.started_at,
        "outcome": result.verdict.outcome.value,
    }


def attempt_record(
    event: WebhookEvent, result: DeliveryResult, kind: WebhookDeliveryAttempt, random_hex: str
) -> dict[str, Any]:
    """A record of its own for an attempt after the first (`automatic_retry`, `manual_retry`)."""
    retry_id = retry_event_id(event.event_id, random_hex)
    return {
        **_shared_fields(event),
        "initial_attempt_id": event.event_id,
        "sequence": event.sequence,
        "_id": record_key(event.merchant_id, retry_id),
        "event_id": retry_id,
        "idempotent_event_id": f"{event.idempotent_event_id}:{retry_id}",
        "created_at": result.started_at,
        "delivery_attempt": kind.value,
        "is_overall_delivery_successful": None,
        **attempt_fields(event.body, result),
    }
