"""The MongoDB shape of webhook events without a database: the initial record (Hyperswitch's fields) and back, a
change written as the `$set` of what changed, the record of a later attempt, and its request headers as recorded and
shown by the events API (custom header values masked)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_contracts.api.masking import mask_secret
from recovery_dispatcher.adapters.event_documents import (
    attempt_record,
    changed_fields,
    claim_document,
    event_of,
    initial_document,
)
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.policy import classify_response
from recovery_dispatcher.http import attempt_item

from .messages import HASH_KEY, WHSEC, succeeded

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def event() -> WebhookEvent:
    message = succeeded()
    return WebhookEvent.raised(
        event_type="payment_succeeded",
        primary_object_id=message.payload.attempt_id,
        content=message.payload.payment,
        merchant_id="merchant_test",
        profile_id="pro_test",
        now=T0,
        lease_until=T0 + timedelta(minutes=1),
        lease_owner="dispatcher-1",
    ).numbered(2)


def result(status: int, request_headers: Sequence[tuple[str, str]] = (("webhook-id", "evt"),)) -> DeliveryResult:
    return DeliveryResult(
        url="https://merchant.example/hook",
        request_headers=tuple(request_headers),
        started_at=T0,
        duration_ms=12,
        status_code=status,
        response_headers=(),
        response_body="ok",
        response_body_truncated=False,
        error_message=None,
        verdict=classify_response(status, None),
    )


def test_a_claim_holds_what_is_fixed_when_the_event_is_raised() -> None:
    raised = event()
    assert claim_document(raised) == {
        "idempotent_event_id": raised.idempotent_event_id,
        "event_id": raised.event_id,
        "payment_id": raised.payment_id,
        "created_at": T0,
        "body": raised.body,
        "lease_until": T0 + timedelta(minutes=1),
        "lease_owner": "dispatcher-1",
    }


def test_the_initial_record_has_hyperswitchs_fields_and_reads_back_as_the_same_event() -> None:
    raised = event()
    doc = initial_document(raised)
    assert doc["_id"] == f"merchant_test/{raised.event_id}" and doc["initial_attempt_id"] == raised.event_id
    assert (doc["event_class"], doc["primary_object_type"], doc["delivery_attempt"]) == (
        "payments",
        "payment_details",
        "initial_attempt",
    )
    assert (doc["sequence"], doc["sequence_key"]) == (2, f"{raised.payment_id}#2")
    assert doc["status"] == "delivering" and doc["request"] is None and "attempts" not in doc
    assert event_of(doc) == raised


def test_a_change_writes_only_what_changed() -> None:
    raised = event()
    delivered = raised.attempts_made(1, first_succeeded=True, delivered_at=T0)
    assert changed_fields(raised, delivered) == {
        "status": "delivered",
        "status_reason": "delivered",
        "attempts": 1,
        "lease_until": None,
        "finished_at": T0,
        "is_webhook_notified": True,
        "is_overall_delivery_successful": True,
    }
    assert changed_fields(delivered, delivered) == {}


def test_a_later_attempt_is_a_record_of_its_own_in_its_events_id_range() -> None:
    raised = event()
    record = attempt_record(raised, result(500), WebhookDeliveryAttempt.AUTOMATIC_RETRY, "00ff")
    assert record["_id"] == f"merchant_test/{raised.event_id}_r00ff"
    assert record["initial_attempt_id"] == raised.event_id and record["delivery_attempt"] == "automatic_retry"
    assert record["idempotent_event_id"] == f"{raised.idempotent_event_id}:{raised.event_id}_r00ff"
    assert record["request"]["body"] == raised.body.decode() and record["response"]["status_code"] == 500
    assert record["is_overall_delivery_successful"] is None and record["is_webhook_notified"] is False


TOKEN = "Bearer merchant-endpoint-token-1234"


def sent_headers() -> list[tuple[str, str]]:
    """An attempt's headers as sent: a custom header with a credential beside the signatures."""
    endpoint = Endpoint("pro_test", hash_key=HASH_KEY, whsec_secrets=(WHSEC,), custom_headers={"Authorization": TOKEN})
    return endpoint.headers(b"{}", webhook_id="evt_1", timestamp=1_760_000_000, sequence=1)


def test_an_attempt_records_the_custom_header_values_masked_and_the_api_shows_them_so() -> None:
    sent = sent_headers()
    record = attempt_record(event(), result(200, sent), WebhookDeliveryAttempt.MANUAL_RETRY, "00ff")
    # Names and order kept; the signatures (HMACs of the body, no secret) as sent.
    expected = [(name, mask_secret(value) if name == "Authorization" else value) for name, value in sent]
    assert list(record["request"]["headers"]) == expected
    assert TOKEN not in str(record)
    assert attempt_item(record).request.headers == expected


def test_the_api_masks_a_record_written_before_values_were_masked() -> None:
    record = attempt_record(event(), result(200), WebhookDeliveryAttempt.MANUAL_RETRY, "00ff")
    record["request"]["headers"] = [list(pair) for pair in sent_headers()]  # as BSON gives them back
    shown = dict(attempt_item(record).request.headers)
    assert shown["Authorization"] == mask_secret(TOKEN)
    assert shown["X-Webhook-Signature-512"] == dict(sent_headers())["X-Webhook-Signature-512"]
