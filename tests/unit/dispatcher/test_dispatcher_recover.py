"""The events API's recover on in-memory adapters: the merchant's failed events of a window go back on a new round of
their schedule (a timer each, the same `webhook-id`), and the retry the timer brings delivers them through the
ordinary path, and failing again it uses its whole schedule again; delivered events, other merchants' and other
profiles' are left alone, and so are those of a profile whose endpoint refuses deliveries now (the answer says
why); oldest first, a batch a call with the next one's cursor; a window older than 14 days or ending before it starts
is refused. Two recovers of one event on the real database:
tests/integration/dispatcher_delivery/test_event_recover_store.py."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from recovery_contracts.envelope import Envelope, MessageType
from recovery_dispatcher.dependencies import EventQueries
from recovery_dispatcher.domain.event import RECOVER_BATCH, RECOVERED, WebhookEvent
from recovery_dispatcher.domain.status import EventStatus
from recovery_dispatcher.handlers.delivery import Delivery
from recovery_dispatcher.handlers.recover_failed import FailedEventsRecovery, RecoverRunning
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.testing import FixedClock

from .fakes import Dispatcher
from .messages import deliver, succeeded

MERCHANT = "merchant_test"
TOKEN = "internal-token-for-the-recover-tests"

SUCCEEDED, DELIVER = "dispatcher.payment-succeeded", "dispatcher.deliver-webhook"


@pytest.fixture
def settings() -> dict[str, Any]:
    """One durable retry: an event fails after two deliveries."""
    return {"webhook_retry_schedule_seconds": "60", "internal_api_token": TOKEN}


def timers(dispatcher: Dispatcher) -> list[Envelope[Any]]:
    return dispatcher.published.envelopes(MessageType.SCHEDULE_TIMER)


async def failed_event(dispatcher: Dispatcher) -> WebhookEvent:
    """A new payment's event whose every delivery failed (its first, then its one retry)."""
    dispatcher.sender.answer(500, 500, 500, 500, 500, 500)
    known = set(dispatcher.events.records)
    await dispatcher.send(SUCCEEDED, succeeded())
    [event] = [e for key, e in dispatcher.events.records.items() if key not in known]
    timer = next(t for t in reversed(timers(dispatcher)) if t.correlation_id == event.payment_id)
    await dispatcher.send(DELIVER, deliver(timer.payload.message))
    failed = dispatcher.events.records[event.key]
    assert failed.status is EventStatus.FAILED, failed
    return failed


async def recover(dispatcher: Dispatcher, **asked: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=dispatcher.service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dispatcher") as http:
        return await http.post(
            f"/internal/events/{MERCHANT}/recover",
            json={"since": (dispatcher.clock.now() - timedelta(days=1)).isoformat(), **asked},
            headers={TOKEN_HEADER: TOKEN, MERCHANT_HEADER: MERCHANT},
        )


async def test_a_failed_event_is_delivered_again_on_a_new_round_of_its_schedule(dispatcher: Dispatcher) -> None:
    failed = await failed_event(dispatcher)
    dispatcher.clock.advance(timedelta(hours=1))
    before = len(timers(dispatcher))

    answer = await recover(dispatcher)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "recovered_count": 1,
        "event_ids": [failed.event_id],
        "next_cursor": None,
        "refused_profiles": {},
    }
    reopened = dispatcher.events.records[failed.key]
    assert (reopened.status, reopened.retry_index, reopened.status_reason) == (
        EventStatus.RETRY_SCHEDULED,
        0,
        RECOVERED,
    )
    assert reopened.finished_at is None and reopened.next_retry_at == dispatcher.clock.now()
    [timer] = timers(dispatcher)[before:]
    assert timer.payload.due_at == dispatcher.clock.now() and timer.payload.timer_id.startswith(
        f"webhook:{failed.event_id}:recover"
    )
    # The retry the timer brings goes out as any retry, with the event's webhook-id; the endpoint answers now.
    dispatcher.sender.statuses.clear()
    await dispatcher.send(DELIVER, deliver(timer.payload.message))
    delivered = dispatcher.events.records[failed.key]
    assert (delivered.status, delivered.delivered, delivered.attempts) == (EventStatus.DELIVERED, True, 3)
    assert dispatcher.sender.requests[-1].headers["webhook-id"] == failed.event_id


async def test_a_recovered_event_failing_again_uses_its_whole_schedule_again(dispatcher: Dispatcher) -> None:
    failed = await failed_event(dispatcher)
    await recover(dispatcher)
    dispatcher.sender.answer(500, 500, 500)
    await dispatcher.send(DELIVER, deliver(timers(dispatcher)[-1].payload.message))

    again = dispatcher.events.records[failed.key]
    assert (again.status, again.retry_index) == (EventStatus.RETRY_SCHEDULED, 1)
    assert timers(dispatcher)[-1].payload.due_at == dispatcher.clock.now() + timedelta(seconds=60)
    # The scheduler keeps one timer per id, the fired ones of the first round included: a retry of this round under
    # the first round's id would be dropped there, and the event left waiting for ever.
    ids = [timer.payload.timer_id for timer in timers(dispatcher)]
    assert len(ids) == len(set(ids)), ids


async def test_only_the_merchants_failed_events_of_the_window_of_the_profile_asked_are_recovered(
    dispatcher: Dispatcher,
) -> None:
    old = await failed_event(dispatcher)
    dispatcher.clock.advance(timedelta(days=2))
    recent = await failed_event(dispatcher)
    dispatcher.sender.statuses.clear()
    await dispatcher.send(SUCCEEDED, succeeded())  # delivered
    other_merchant = replace(recent, event_id=recent.event_id + "1", merchant_id="merchant_other")
    other_profile = replace(recent, event_id=recent.event_id + "2", profile_id="pro_other")
    for stored in (other_merchant, other_profile):
        dispatcher.events.recorded_elsewhere(stored)

    of_profile = await recover(dispatcher, profile_id=recent.profile_id)

    # The old one is outside the day asked for; the delivered one, the other merchant's and profile's stay.
    assert of_profile.json()["event_ids"] == [recent.event_id]
    assert dispatcher.events.records[old.key].status is EventStatus.FAILED
    assert dispatcher.events.records[other_merchant.key].status is EventStatus.FAILED
    assert dispatcher.events.records[other_profile.key].status is EventStatus.FAILED
    merchant_wide = await recover(dispatcher, since=(dispatcher.clock.now() - timedelta(days=3)).isoformat())
    # Merchant-wide: the old one now; the other profile's has no endpoint to go to, and stays failed.
    assert merchant_wide.json()["event_ids"] == [old.event_id]
    assert merchant_wide.json()["refused_profiles"] == {"pro_other": "no enabled webhook endpoint on the profile"}


async def test_the_events_of_a_profile_whose_endpoint_refuses_deliveries_stay_failed_and_the_answer_says_why(
    dispatcher: Dispatcher,
) -> None:
    failed = await failed_event(dispatcher)
    elsewhere = replace(failed, event_id=failed.event_id + "1", profile_id="pro_without_endpoint")
    dispatcher.events.recorded_elsewhere(elsewhere)
    await dispatcher.endpoints.disable(failed.profile_id, "failing since monday without a successful delivery")

    answer = (await recover(dispatcher)).json()

    assert answer["event_ids"] == [] and answer["recovered_count"] == 0
    assert answer["refused_profiles"] == {
        failed.profile_id: "endpoint disabled: failing since monday without a successful delivery",
        "pro_without_endpoint": "no enabled webhook endpoint on the profile",
    }
    assert dispatcher.events.records[failed.key].status is EventStatus.FAILED
    assert dispatcher.events.records[elsewhere.key].status is EventStatus.FAILED


async def test_a_batch_a_call_oldest_first_then_the_next_from_the_cursor(dispatcher: Dispatcher) -> None:
    template = await failed_event(dispatcher)
    made = [template]
    for n in range(RECOVER_BATCH + 2):
        made.append(
            replace(template, event_id=f"{template.event_id[:-6]}{n:06x}", payment_id=f"{template.payment_id}{n}")
        )
        dispatcher.events.recorded_elsewhere(made[-1])
    oldest_first = sorted(e.event_id for e in made)

    first = (await recover(dispatcher)).json()
    rest = (await recover(dispatcher, cursor=first["next_cursor"])).json()

    assert first["recovered_count"] == RECOVER_BATCH and first["next_cursor"] == oldest_first[RECOVER_BATCH - 1]
    assert first["event_ids"] == oldest_first[:RECOVER_BATCH]
    assert rest == {
        "recovered_count": 3,
        "event_ids": oldest_first[RECOVER_BATCH:],
        "next_cursor": None,
        "refused_profiles": {},
    }


async def test_fourteen_days_reckoned_a_moment_ago_on_another_clock_are_taken(dispatcher: Dispatcher) -> None:
    answer = await recover(dispatcher, since=(dispatcher.clock.now() - timedelta(days=14, minutes=4)).isoformat())

    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("since", "until", "words"),
    [
        # 14 days, and the 5 minutes of clock skew a caller's "14 days ago" may carry.
        (timedelta(days=14, minutes=5, seconds=1), None, "since must be within the last 14 days"),
        (timedelta(hours=1), timedelta(hours=2), "until must not be before since"),
    ],
)
async def test_a_window_it_does_not_take_is_refused_in_words(
    dispatcher: Dispatcher, since: timedelta, until: timedelta | None, words: str
) -> None:
    now = dispatcher.clock.now()
    asked = {"since": (now - since).isoformat()} | ({"until": (now - until).isoformat()} if until else {})

    answer = await recover(dispatcher, **asked)

    assert answer.status_code == 422 and words in answer.text


async def test_one_recover_at_a_time_per_merchant_another_merchants_goes_on() -> None:
    """Each recover reads the merchant's records of its window: a merchant sending them in a loop waits for its
    running one (answered busy), and does not hold up another merchant's."""
    release = asyncio.Event()

    class SlowQueries:
        async def failed_since(self, merchant_id: str, *window: Any) -> list[WebhookEvent]:
            if merchant_id == MERCHANT:
                await release.wait()
            return []

    clock = FixedClock()
    recovery = FailedEventsRecovery(cast(Delivery, SimpleNamespace(clock=clock)), cast(EventQueries, SlowQueries()))
    since = clock.now() - timedelta(days=1)
    running = asyncio.create_task(recovery(MERCHANT, since, None, None, None))
    await asyncio.sleep(0)

    with pytest.raises(RecoverRunning):
        await recovery(MERCHANT, since, None, None, None)
    other = await recovery("merchant_other", since, None, None, None)
    release.set()
    first = await running

    assert other.event_ids == [] and first.event_ids == []
    again = await recovery(MERCHANT, since, None, None, None)  # the running one answered: the next may go
    assert again.next_cursor is None
