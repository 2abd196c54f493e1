"""The profile's webhook event toggles (`webhook_details.payment_*_enabled`) through the real consumer pipeline on
in-memory adapters: a type switched off raises no event at all (no claim, no record, no request: Hyperswitch
decides before it creates the event), unset means on, a newer profile version switches it on again, and an event
raised before the switch-off still finishes its delivery."""

from __future__ import annotations

from recovery_contracts.envelope import MessageType
from recovery_dispatcher.domain.status import EventStatus

from .fakes import Dispatcher
from .messages import deliver, endpoint_update, failed, succeeded

SUCCEEDED, FAILED, DELIVER, PROFILE_UPDATED = (
    "dispatcher.payment-succeeded",
    "dispatcher.payment-failed",
    "dispatcher.deliver-webhook",
    "dispatcher.profile-updated",
)


async def test_a_type_switched_off_raises_nothing_and_the_others_are_delivered(
    dispatcher: Dispatcher, requeues: list[int]
) -> None:
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=2, payment_failed_enabled=False))
    endpoint = await dispatcher.endpoints.get("pro_test")
    assert endpoint is not None and endpoint.disabled_event_types == frozenset({"payment_failed"})

    await dispatcher.send(FAILED, failed())
    assert dispatcher.sender.requests == [] and dispatcher.events.claims == {} and dispatcher.events.records == {}
    # Acknowledged: neither dead-lettered nor handed back.
    assert dispatcher.published.dead_letters == [] and requeues == []

    await dispatcher.send(SUCCEEDED, succeeded())
    [event] = dispatcher.events.initial_events()
    assert event.event_type == "payment_succeeded" and event.status is EventStatus.DELIVERED


async def test_explicitly_on_or_unset_sends_and_a_newer_version_switches_a_type_on_again(
    dispatcher: Dispatcher,
) -> None:
    await dispatcher.send(
        PROFILE_UPDATED, endpoint_update(version=2, payment_succeeded_enabled=False, payment_failed_enabled=True)
    )
    await dispatcher.send(SUCCEEDED, succeeded())
    await dispatcher.send(FAILED, failed())
    assert [e.event_type for e in dispatcher.events.initial_events()] == ["payment_failed"]

    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=3, payment_created_enabled=False))
    await dispatcher.send(SUCCEEDED, succeeded())
    assert sorted(e.event_type for e in dispatcher.events.initial_events()) == ["payment_failed", "payment_succeeded"]


async def test_an_event_raised_before_its_type_was_switched_off_still_finishes_its_delivery(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.sender.answer(500)
    await dispatcher.send(SUCCEEDED, succeeded())
    [timer] = dispatcher.published.envelopes(MessageType.SCHEDULE_TIMER)
    await dispatcher.send(PROFILE_UPDATED, endpoint_update(version=2, payment_succeeded_enabled=False))
    await dispatcher.send(DELIVER, deliver(timer.payload.message))
    [event] = dispatcher.events.initial_events()
    assert event.status is EventStatus.DELIVERED and len(dispatcher.sender.requests) == 2
