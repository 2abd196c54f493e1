"""Failed deliveries and `webhook.deliver` through the real consumer pipeline on in-memory adapters: a failing
endpoint gets durable retries (timers through the scheduler) until the schedule is used up, a 410 disables the
endpoint, and a due retry is delivered only by the dispatcher that takes the event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import DeliverWebhook
from recovery_dispatcher.domain.event import WebhookEvent
from recovery_dispatcher.domain.status import EventStatus
from recovery_runtime.bus import LEASE_MARGIN_SECONDS
from recovery_runtime.testing import consumed

from .fakes import AttemptRecord, Dispatcher
from .messages import deliver, succeeded

SUCCEEDED, DELIVER = "dispatcher.payment-succeeded", "dispatcher.deliver-webhook"


def timers(dispatcher: Dispatcher) -> list[Envelope[Any]]:
    return dispatcher.published.envelopes(MessageType.SCHEDULE_TIMER)


def the_event(dispatcher: Dispatcher) -> WebhookEvent:
    [event] = dispatcher.events.initial_events()
    return event


async def retry_taken_by(
    dispatcher: Dispatcher, owner: str, lease: timedelta = timedelta(minutes=1)
) -> Envelope[DeliverWebhook]:
    """A failed first attempt's retry message, its event taken by `owner` (another dispatcher) for `lease`."""
    dispatcher.sender.answer(500)
    await dispatcher.send(SUCCEEDED, succeeded())
    [timer] = timers(dispatcher)
    dispatcher.events.recorded_elsewhere(the_event(dispatcher).leased(dispatcher.clock.now() + lease, owner))
    return deliver(timer.payload.message)


async def test_a_failing_endpoint_gets_durable_retries_then_fails_once_the_schedule_is_used_up(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.sender.answer(500, 503, 500)
    start = dispatcher.clock.now()
    await dispatcher.send(SUCCEEDED, succeeded())

    [timer] = timers(dispatcher)
    event = the_event(dispatcher)
    assert (event.status, event.retry_index, event.attempts) == (EventStatus.RETRY_SCHEDULED, 1, 1)
    # Schedule time 60 s (the settings' "60,300"), at TIME_SCALE 1.
    assert timer.payload.due_at == start + timedelta(seconds=60) == event.next_retry_at
    assert timer.payload.timer_id == f"webhook:{event.event_id}:1" and timer.payload.kind == "webhook_retry"
    assert timer.correlation_id == event.payment_id

    dispatcher.clock.advance(timedelta(seconds=60))
    await dispatcher.send(DELIVER, deliver(timer.payload.message))
    second = timers(dispatcher)[-1]
    assert second.payload.due_at == dispatcher.clock.now() + timedelta(seconds=300)
    assert the_event(dispatcher).retry_index == 2

    await dispatcher.send(DELIVER, deliver(second.payload.message))
    event = the_event(dispatcher)
    assert event.status is EventStatus.FAILED and event.attempts == 3
    assert event.status_reason == "RETRIES_EXCEEDED: HTTP 500"
    [notice] = dispatcher.published.envelopes(MessageType.WEBHOOK_DELIVERY_FAILED)
    assert notice.payload.event_id == event.event_id and notice.payload.attempts == 3
    assert [a.kind for a in dispatcher.events.attempts] == [
        WebhookDeliveryAttempt.INITIAL_ATTEMPT,
        WebhookDeliveryAttempt.AUTOMATIC_RETRY,
        WebhookDeliveryAttempt.AUTOMATIC_RETRY,
    ]
    # Every attempt of the event carries the same webhook-id.
    assert {r.headers["webhook-id"] for r in dispatcher.sender.requests} == {event.event_id}


async def test_a_retry_that_succeeds_delivers_the_event(dispatcher: Dispatcher) -> None:
    dispatcher.sender.answer(500)
    await dispatcher.send(SUCCEEDED, succeeded())
    [timer] = timers(dispatcher)
    await dispatcher.send(DELIVER, deliver(timer.payload.message))
    event = the_event(dispatcher)
    assert (event.status, event.delivered, event.attempts) == (EventStatus.DELIVERED, True, 2)
    assert dispatcher.events.attempts[-1] == AttemptRecord(event.event_id, WebhookDeliveryAttempt.AUTOMATIC_RETRY, 200)


async def test_a_due_retry_delivered_twice_sends_once(dispatcher: Dispatcher) -> None:
    dispatcher.sender.answer(500)
    await dispatcher.send(SUCCEEDED, succeeded())
    [timer] = timers(dispatcher)
    await dispatcher.send(DELIVER, deliver(timer.payload.message))
    duplicates = consumed(DELIVER, "duplicate")
    await dispatcher.send(DELIVER, deliver(timer.payload.message))
    assert len(dispatcher.sender.requests) == 2  # the first attempt and one retry
    assert dispatcher.published.dead_letters == []
    assert consumed(DELIVER, "duplicate") - duplicates == 1  # acknowledged as a duplicate, not applied again


async def test_a_due_retry_another_dispatcher_took_is_left_to_it_and_its_message_comes_back(
    dispatcher: Dispatcher, requeues: list[int]
) -> None:
    # Another dispatcher won the compare-and-set on the event (its lease still runs).
    message = await retry_taken_by(dispatcher, "another-dispatcher")
    duplicates = consumed(DELIVER, "duplicate")
    await dispatcher.send(DELIVER, message)
    assert len(dispatcher.sender.requests) == 1
    assert the_event(dispatcher).lease_owner == "another-dispatcher"
    # Not acknowledged: that dispatcher may die holding the event (below).
    assert len(requeues) == 1 and consumed(DELIVER, "duplicate") == duplicates


async def test_a_due_retry_whose_dispatcher_died_mid_send_is_made_once_its_lease_ran_out(
    dispatcher: Dispatcher, requeues: list[int]
) -> None:
    # The dispatcher that took the retry was killed before it recorded anything: the broker hands its
    # unacknowledged message to this one while the dead one's lease still runs.
    message = await retry_taken_by(dispatcher, "killed")
    await dispatcher.send(DELIVER, message)
    assert len(requeues) == 1 and len(dispatcher.sender.requests) == 1

    dispatcher.clock.advance(timedelta(minutes=2))  # the redeliveries' pauses outlast the lease
    await dispatcher.send(DELIVER, message)
    event = the_event(dispatcher)
    assert (event.status, event.attempts) == (EventStatus.DELIVERED, 2)
    assert len(dispatcher.sender.requests) == 2 and len(requeues) == 1


@pytest.mark.parametrize(
    ("lease", "pause"),
    [
        # At the latest when the lease may have run out: a dead holder's retry waits no longer than that.
        (timedelta(seconds=3), 3.0 + LEASE_MARGIN_SECONDS),
        (timedelta(minutes=1), 60.0 + LEASE_MARGIN_SECONDS),
    ],
)
async def test_a_due_retry_held_by_another_dispatcher_comes_back_when_its_lease_may_have_run_out(
    dispatcher: Dispatcher, requeues: Any, lease: timedelta, pause: float
) -> None:
    message = await retry_taken_by(dispatcher, "another-dispatcher", lease)
    await dispatcher.send(DELIVER, message)
    assert requeues.waits == [pause]


async def test_a_deliver_command_for_an_unknown_event_is_dead_lettered_with_the_reason(dispatcher: Dispatcher) -> None:
    dispatcher.sender.answer(500)
    await dispatcher.send(SUCCEEDED, succeeded())
    [timer] = timers(dispatcher)
    message = dict(timer.payload.message)
    message["payload"] = {**message["payload"], "initial_attempt_id": "evt_unknown"}
    await dispatcher.send(DELIVER, deliver(message))
    [letter] = dispatcher.published.dead_letters
    assert letter.queue == DELIVER and letter.reason == "no webhook event evt_unknown"


async def test_410_disables_the_endpoint_and_fails_the_event_with_operational_events(dispatcher: Dispatcher) -> None:
    dispatcher.sender.answer(410)
    await dispatcher.send(SUCCEEDED, succeeded())
    event = the_event(dispatcher)
    assert event.status is EventStatus.FAILED and event.status_reason == "endpoint answered 410 Gone: disabled"
    endpoint = await dispatcher.endpoints.get("pro_test")
    assert endpoint is not None and endpoint.disabled_reason == f"410 Gone from {endpoint.url}"
    [disabled] = dispatcher.published.envelopes(MessageType.WEBHOOK_ENDPOINT_DISABLED)
    assert disabled.payload.profile_id == "pro_test" and disabled.payload.reason.startswith("410 Gone")
    assert len(dispatcher.published.envelopes(MessageType.WEBHOOK_DELIVERY_FAILED)) == 1

    # Every further event for the profile is recorded failed without a request.
    await dispatcher.send(SUCCEEDED, succeeded())
    assert len(dispatcher.sender.requests) == 1
    failed = [e for e in dispatcher.events.initial_events() if e.event_id != event.event_id]
    assert [e.status_reason for e in failed] == [f"endpoint disabled: 410 Gone from {endpoint.url}"]


async def test_a_due_retry_whose_holders_lease_runs_out_between_the_take_and_the_look_is_taken_over(
    dispatcher: Dispatcher, requeues: list[int]
) -> None:
    # The holder died mid-send; its retry message comes back at the very moment its lease runs out: the take sees
    # the lease still running (`lease_until < now` is false at `now == lease_until`), the look just after sees it
    # ran out. Before, the message was then acknowledged as a copy and the event stayed `delivering` for good (the
    # integration test of the dispatcher's endpoint health met it on a loaded machine).
    message = await retry_taken_by(dispatcher, "killed", lease=timedelta(seconds=3))
    dispatcher.clock.advance(timedelta(seconds=3))
    take = dispatcher.events.take

    async def take_then_tick(*args: Any, **kwargs: Any) -> bool:
        taken = await take(*args, **kwargs)
        dispatcher.clock.advance(timedelta(milliseconds=1))
        return taken

    dispatcher.events.take = take_then_tick  # type: ignore[method-assign]
    duplicates = consumed(DELIVER, "duplicate")
    await dispatcher.send(DELIVER, message)

    event = the_event(dispatcher)
    assert (event.status, event.attempts) == (EventStatus.DELIVERED, 2)
    assert len(dispatcher.sender.requests) == 2 and len(requeues) == 0
    assert consumed(DELIVER, "duplicate") == duplicates
