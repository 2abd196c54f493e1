"""The webhook event's transitions without I/O: what a failed delivery leads to (a durable retry on the schedule,
pushed later by Retry-After, or a final failure), holds that use no retry, and the messages each emits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_contracts.envelope import MessageType
from recovery_dispatcher.domain.event import EarlierEvent, Transition, WebhookEvent
from recovery_dispatcher.domain.policy import DeliveryVerdict, RetrySchedule, classify_response
from recovery_dispatcher.domain.status import EventOutcome, EventStatus

from .messages import succeeded

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SCHEDULE = RetrySchedule.from_seconds([60, 300], max_retry_after_seconds=3600)
URL = "https://merchant.example/hook"


def raised(*, attempted: bool = False) -> WebhookEvent:
    message = succeeded()
    event = WebhookEvent.raised(
        event_type="payment_succeeded",
        primary_object_id=message.payload.attempt_id,
        content=message.payload.payment,
        merchant_id="merchant_test",
        profile_id="pro_test",
        now=T0,
        lease_until=T0 + timedelta(minutes=1),
        lease_owner="dispatcher-1",
    ).numbered(1)
    return event.attempts_made(1, first_succeeded=False, delivered_at=None) if attempted else event


def after(event: WebhookEvent, verdict: DeliveryVerdict, time_scale: float = 1.0) -> Transition:
    return event.after_failed_delivery(verdict, schedule=SCHEDULE, url=URL, now=T0, time_scale=time_scale)


def test_a_new_event_is_delivering_leased_with_its_body_and_id_fixed() -> None:
    event = raised()
    assert event.status is EventStatus.DELIVERING and event.lease_owner == "dispatcher-1"
    assert event.event_id.startswith("evt_") and event.key == f"merchant_test/{event.event_id}"
    assert event.first_attempt_kind is WebhookDeliveryAttempt.INITIAL_ATTEMPT
    assert b'"event_type":"payment_succeeded"' in event.body


def test_a_delivery_that_succeeds_finishes_the_event() -> None:
    done = raised().attempts_made(2, first_succeeded=False, delivered_at=T0)
    assert (done.status, done.status_reason, done.delivered, done.notified) == (
        EventStatus.DELIVERED,
        "delivered",
        True,
        True,
    )
    assert (done.attempts, done.lease_until, done.finished_at) == (2, None, T0)
    assert done.first_attempt_kind is WebhookDeliveryAttempt.AUTOMATIC_RETRY


@pytest.mark.parametrize(
    ("time_scale", "wall"),
    [(1.0, timedelta(seconds=60)), (1000.0, timedelta(milliseconds=60))],
)
def test_a_retryable_failure_schedules_the_next_retry_on_the_schedule(time_scale: float, wall: timedelta) -> None:
    event = raised(attempted=True)
    transition = after(event, classify_response(500, None), time_scale)
    scheduled = transition.event
    assert (scheduled.status, scheduled.retry_index, scheduled.next_retry_at) == (
        EventStatus.RETRY_SCHEDULED,
        1,
        T0 + wall,
    )
    assert scheduled.status_reason == "HTTP 500" and scheduled.lease_until is None
    [timer] = transition.messages
    assert timer.type is MessageType.SCHEDULE_TIMER and timer.payload.timer_id == f"webhook:{event.event_id}:1"
    assert timer.payload.message["payload"] == {"initial_attempt_id": event.event_id, "retry_index": 1}
    assert timer.payload.message["type"] == MessageType.DELIVER_WEBHOOK.value
    assert transition.outcome is None


def test_retry_after_pushes_the_retry_later_within_the_bound() -> None:
    verdict = classify_response(429, None, retry_after=timedelta(minutes=30))
    assert after(raised(attempted=True), verdict).event.next_retry_at == T0 + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("verdict", "outcome", "reason"),
    [
        (classify_response(410, None), EventOutcome.ENDPOINT_GONE, "endpoint answered 410 Gone: disabled"),
        (classify_response(None, "blocked: x", blocked=True), EventOutcome.BLOCKED, "blocked: x"),
    ],
)
def test_a_failure_that_retrying_cannot_help_is_final(
    verdict: DeliveryVerdict, outcome: EventOutcome, reason: str
) -> None:
    transition = after(raised(attempted=True), verdict)
    failed = transition.event
    assert (failed.status, failed.status_reason, failed.finished_at) == (EventStatus.FAILED, reason, T0)
    assert transition.outcome is outcome
    [notice] = transition.messages
    assert notice.type is MessageType.WEBHOOK_DELIVERY_FAILED
    assert (notice.payload.reason, notice.payload.attempts, notice.payload.url) == (reason, 1, URL)
    assert notice.correlation_id == failed.payment_id


def test_past_the_last_retry_of_the_schedule_retries_are_exceeded() -> None:
    event = raised(attempted=True)
    for _ in range(2):
        event = after(event, classify_response(500, None)).event
    transition = after(event, classify_response(503, None))
    assert transition.event.status_reason == "RETRIES_EXCEEDED: HTTP 503: throttled"
    assert transition.outcome is EventOutcome.RETRIES_EXCEEDED


def test_holds_use_no_retry_and_each_has_a_timer_of_its_own() -> None:
    event = raised()
    first = event.held(T0 + timedelta(seconds=30), "circuit open for x").event
    second = first.waiting_for(EarlierEvent("evt_older", 1, T0 + timedelta(minutes=2)), T0, 1.0)
    assert second.event.retry_index == 0 and second.event.holds == 2
    assert second.event.next_retry_at == T0 + timedelta(minutes=2, seconds=5)
    assert second.event.status_reason == "waiting for evt_older (sequence 1)"
    [timer] = second.messages
    assert timer.payload.timer_id == f"webhook:{event.event_id}:hold2"


def test_a_failed_event_recovered_starts_its_schedule_again_with_a_timer_of_its_own() -> None:
    event = raised(attempted=True)
    for _ in range(3):
        event = after(event, classify_response(500, None)).event
    assert event.status is EventStatus.FAILED and event.finished_at is not None
    now = T0 + timedelta(days=1)

    first = event.recovered(now)
    again = event.recovered(now + timedelta(milliseconds=1))

    reopened = first.event
    assert (reopened.status, reopened.retry_index, reopened.next_retry_at) == (EventStatus.RETRY_SCHEDULED, 0, now)
    assert reopened.finished_at is None and reopened.attempts == event.attempts and reopened.body == event.body
    [timer] = first.messages
    assert timer.payload.due_at == now and timer.payload.message["payload"]["retry_index"] == 0
    assert timer.payload.timer_id != again.messages[0].payload.timer_id  # the scheduler keeps one timer per id
    for not_failed in (raised(), reopened):
        with pytest.raises(ValueError, match="not failed"):
            not_failed.recovered(now)


def test_disabling_the_endpoint_tells_operations_who_and_why() -> None:
    notice = raised().endpoint_disabled(url=URL, failing_since=T0, reason="410 Gone from x", now=T0)
    assert notice.type is MessageType.WEBHOOK_ENDPOINT_DISABLED
    assert (notice.payload.profile_id, notice.payload.merchant_id, notice.payload.url) == (
        "pro_test",
        "merchant_test",
        URL,
    )
