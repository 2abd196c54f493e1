"""The one consumer pipeline, driven through FastStream's in-memory broker: what happens to a message that is
applied, a duplicate, one that can never apply, an invalid one, one that fails for a while, and lanes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faststream.message import AckStatus
from faststream.rabbit import TestRabbitBroker
from pymongo.errors import AutoReconnect

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import DeliverWebhook, ProfileUpdated
from recovery_runtime import bus
from recovery_runtime.bus import AlreadyApplied, MessageRejected, RetryLater
from recovery_runtime.service import Service
from recovery_runtime.settings import ServiceSettings
from recovery_runtime.testing import InMemoryUnitOfWork, RecordingPublisher, consumed, publish
from recovery_runtime.topology import ConsumerQueue

QUEUE = "dispatcher.deliver-webhook"
OTHER_QUEUE = "dispatcher.profile-updated"


def deliver(payment: str = "pay_1", retry: int = 1) -> Envelope[DeliverWebhook]:
    return envelope_for(
        MessageType.DELIVER_WEBHOOK,
        DeliverWebhook(initial_attempt_id=f"evt_{payment}", retry_index=retry),
        correlation_id=payment,
        merchant_id="m1",
    )


def service(publisher: RecordingPublisher) -> Service:
    return Service("dispatcher", ServiceSettings(), publisher=publisher, unit_of_work=InMemoryUnitOfWork(publisher))


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus, "OUTAGE_PAUSE_CAP_SECONDS", 0.0)
    monkeypatch.setattr("recovery_runtime.consumer.requeue_pause", lambda error, deliveries: 0.0)


async def test_an_applied_message_is_acknowledged_and_handled_once() -> None:
    recorder = RecordingPublisher()
    svc = service(recorder)
    seen: list[tuple[str, str]] = []

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        seen.append((envelope.payload.initial_attempt_id, queue.name))

    svc.consume(QUEUE, handle)
    async with TestRabbitBroker(svc.broker) as broker:
        await publish(broker, QUEUE, deliver())
    assert seen == [("evt_pay_1", QUEUE)]
    assert recorder.dead_letters == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid message: (root): Invalid JSON"),
        (b'{"type": "webhook.deliver", "payload": {"retry_index": -1}}', "payload.initial_attempt_id: Field required"),
    ],
)
async def test_an_invalid_message_is_dead_lettered_with_what_is_wrong(body: bytes, reason: str) -> None:
    recorder = RecordingPublisher()
    svc = service(recorder)
    handled: list[object] = []

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        handled.append(envelope)

    svc.consume(QUEUE, handle)
    async with TestRabbitBroker(svc.broker) as broker:
        await publish(broker, QUEUE, body)
    assert handled == []
    [letter] = recorder.dead_letters
    assert letter.queue == QUEUE and reason in letter.reason and letter.body == body


async def test_a_message_that_can_never_apply_is_dead_lettered_and_a_duplicate_acknowledged() -> None:
    recorder = RecordingPublisher()
    svc = service(recorder)

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        if envelope.correlation_id == "pay_dup":
            raise AlreadyApplied(envelope.message_id)
        raise MessageRejected("refers to no payment")

    svc.consume(QUEUE, handle)
    async with TestRabbitBroker(svc.broker) as broker:
        await publish(broker, QUEUE, deliver("pay_dup"))
        await publish(broker, QUEUE, deliver("pay_unknown"))
    assert [(d.queue, d.reason) for d in recorder.dead_letters] == [(QUEUE, "refers to no payment")]


async def test_a_database_outage_holds_the_message_and_runs_the_handler_again() -> None:
    recorder = RecordingPublisher()
    svc = service(recorder)
    calls = 0

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise AutoReconnect("database restarting")

    svc.consume(QUEUE, handle)
    async with TestRabbitBroker(svc.broker) as broker:
        await publish(broker, QUEUE, deliver())
    assert calls == 3
    assert recorder.dead_letters == []


async def test_a_failing_handler_rejects_the_message_for_a_redelivery_and_the_rest_are_acknowledged() -> None:
    recorder = RecordingPublisher()
    svc = service(recorder)
    messages: dict[str, Any] = {}

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        messages[str(envelope.correlation_id)] = svc.broker.context.get_local("message")
        if envelope.correlation_id == "pay_bug":
            raise RuntimeError("a bug")
        if envelope.correlation_id == "pay_dup":
            raise AlreadyApplied(envelope.message_id)

    svc.consume(QUEUE, handle)
    async with TestRabbitBroker(svc.broker) as broker:
        for payment in ("pay_bug", "pay_dup", "pay_ok"):
            await publish(broker, QUEUE, deliver(payment))
    assert {payment: message.committed for payment, message in messages.items()} == {
        "pay_bug": AckStatus.REJECTED,
        "pay_dup": AckStatus.ACKED,
        "pay_ok": AckStatus.ACKED,
    }
    assert recorder.dead_letters == []


async def test_a_message_that_must_wait_comes_back_after_the_wait_it_names_without_counting_as_a_failure(
    requeues: Any,
) -> None:
    svc = service(RecordingPublisher())
    messages: list[Any] = []

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        messages.append(svc.broker.context.get_local("message"))
        raise RetryLater("another holder's lease runs 3 more seconds", after_seconds=3.0)

    svc.consume(QUEUE, handle)
    failed, waited = consumed(QUEUE, "failed"), consumed(QUEUE, "retry_later")
    async with TestRabbitBroker(svc.broker) as broker:
        await publish(broker, QUEUE, deliver())
    assert [message.committed for message in messages] == [AckStatus.REJECTED]  # handed back for a redelivery
    assert requeues.waits == [3.0]
    assert consumed(QUEUE, "retry_later") == waited + 1 and consumed(QUEUE, "failed") == failed


@pytest.mark.parametrize(
    ("after", "deliveries", "pause"),
    [
        (3.0, 0, 0.25),  # the usual first pause: a holder that settles early is seen early
        (3.0, 4, 3.0),  # the fourth pause would be 4 s: cut at the moment named (a dead holder's lease ends)
        (600.0, 9, bus.MAX_RETRY_PAUSE_SECONDS),
        (-1.0, 3, 0.0),
    ],
)
def test_a_named_wait_cuts_the_growing_pause_short(after: float, deliveries: int, pause: float) -> None:
    assert bus.requeue_pause(RetryLater("wait", after), deliveries) == pause


def test_other_failures_wait_longer_with_each_delivery_up_to_the_longest_pause() -> None:
    pauses = [bus.requeue_pause(RuntimeError("a bug"), n) for n in range(8)]
    assert pauses == sorted(pauses) and pauses[0] == 0.25 and pauses[-1] == bus.MAX_RETRY_PAUSE_SECONDS


async def test_lanes_keep_one_key_in_order_while_other_keys_run_beside_it() -> None:
    recorder = RecordingPublisher()
    svc = service(recorder)
    release_first = asyncio.Event()
    order: list[str] = []

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        name = f"{envelope.correlation_id}#{envelope.payload.retry_index}"
        if name == "pay_a#1":
            await release_first.wait()
        order.append(name)

    svc.consume(QUEUE, handle, lane_of=lambda envelope: envelope.correlation_id)
    async with TestRabbitBroker(svc.broker) as broker:
        first = asyncio.create_task(publish(broker, QUEUE, deliver("pay_a", 1)))
        await asyncio.sleep(0)
        second = asyncio.create_task(publish(broker, QUEUE, deliver("pay_a", 2)))
        other = asyncio.create_task(publish(broker, QUEUE, deliver("pay_b", 1)))
        await other
        assert order == ["pay_b#1"]  # pay_a#2 waits behind pay_a#1, pay_b does not
        release_first.set()
        await asyncio.gather(first, second)
    assert order == ["pay_b#1", "pay_a#1", "pay_a#2"]


async def test_queues_sharing_lanes_keep_one_key_in_order_across_them_within_one_bound() -> None:
    from recovery_runtime.consumer import Lanes

    recorder = RecordingPublisher()
    svc = service(recorder)
    release = asyncio.Event()
    order: list[str] = []
    inside = 0
    most_inside = 0

    async def handle(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        nonlocal inside, most_inside
        inside += 1
        most_inside = max(most_inside, inside)
        if envelope.correlation_id == "pay_a" and queue.name == QUEUE:
            await release.wait()
        order.append(f"{envelope.correlation_id}@{queue.name}")
        inside -= 1

    shared = Lanes(max_in_flight=2)
    svc.consume(QUEUE, handle, lane_of=lambda e: e.correlation_id, lanes=shared)
    svc.consume(OTHER_QUEUE, handle, lane_of=lambda e: e.correlation_id, lanes=shared)
    async with TestRabbitBroker(svc.broker) as broker:
        first = asyncio.create_task(publish(broker, QUEUE, deliver("pay_a")))
        await asyncio.sleep(0)
        update = envelope_for(
            MessageType.PROFILE_UPDATED,
            ProfileUpdated(profile_id="p1", merchant_id="m1", version=1),
            correlation_id="pay_a",
        )
        second = asyncio.create_task(publish(broker, OTHER_QUEUE, update))
        others = [asyncio.create_task(publish(broker, QUEUE, deliver(f"pay_{n}"))) for n in range(3)]
        await asyncio.sleep(0.05)
        assert not any(o.startswith("pay_a") for o in order)  # the second waits behind the first, across queues
        release.set()
        await asyncio.gather(first, second, *others)
    assert order.index(f"pay_a@{QUEUE}") < order.index(f"pay_a@{OTHER_QUEUE}")
    assert most_inside <= 2
    assert len(order) == 5
