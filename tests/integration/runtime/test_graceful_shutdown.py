"""SIGTERM's path (`Service.stop`): consuming stops first, a handler in flight finishes within the grace period
and its message is acknowledged; one that outlives the grace period is requeued, not lost."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import uvicorn

from recovery_cli.stack.readiness import free_port
from recovery_contracts.envelope import Envelope
from recovery_runtime.bus import OutgoingMessage
from recovery_runtime.service import Service
from recovery_runtime.serving import DrainingServer
from recovery_runtime.settings import ServiceSettings
from recovery_runtime.topology import QUEUES, ConsumerQueue
from support.broker import broker_probe, eventually
from support.payments import stripe_account
from support.services import settings_for
from support.stack import Isolation

QUEUE = "executor.connector-account-updated"


async def started_service(isolation: Isolation, handler: Any, grace: float) -> Service:
    settings = settings_for(ServiceSettings, isolation, shutdown_grace_seconds=grace, consumer_watchdog_seconds=0.5)
    service = Service("probe", settings)
    service.consume(QUEUE, handler)
    await service.start()
    return service


async def test_a_handler_in_flight_finishes_and_its_message_is_acknowledged(isolation: Isolation) -> None:
    began = asyncio.Event()
    finished: list[str] = []

    async def slow(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        began.set()
        await asyncio.sleep(1.5)
        finished.append(envelope.message_id)

    service = await started_service(isolation, slow, grace=10.0)
    message = stripe_account("mca_in_flight")
    await service.publisher.publish_many([OutgoingMessage.of(message)])
    await asyncio.wait_for(began.wait(), 20.0)
    await service.stop()  # what uvicorn's SIGTERM handler ends in
    assert finished == [message.message_id], "the handler in flight was cut short"

    # Acknowledged, not requeued: nothing comes back to a new consumer.
    again: list[str] = []

    async def record(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        again.append(envelope.message_id)

    successor = await started_service(isolation, record, grace=10.0)
    try:
        async with broker_probe(isolation.rabbitmq_url) as probe:
            await asyncio.sleep(1.0)
            assert await probe.depth(QUEUES[QUEUE].rabbit_queue().name) == 0
        assert again == []
    finally:
        await successor.stop()


async def test_a_handler_outliving_the_grace_period_leaves_its_message_to_a_successor(isolation: Isolation) -> None:
    began = asyncio.Event()

    async def stuck(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        began.set()
        await asyncio.sleep(60)

    service = await started_service(isolation, stuck, grace=1.0)
    message = stripe_account("mca_stuck")
    await service.publisher.publish_many([OutgoingMessage.of(message)])
    await asyncio.wait_for(began.wait(), 20.0)
    await asyncio.wait_for(service.stop(), 15.0)  # bounded by the grace period, not by the handler

    redelivered: list[str] = []

    async def record(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        redelivered.append(envelope.message_id)

    successor = await started_service(isolation, record, grace=10.0)
    try:
        await eventually(lambda: redelivered == [message.message_id], timeout=20.0)
    finally:
        await successor.stop()


async def test_sigterm_stops_consuming_at_once_while_open_http_requests_finish(isolation: Isolation) -> None:
    """uvicorn waits for open HTTP requests before its lifespan stops the service; `DrainingServer` stops the
    consumers as that wait begins, so no message is taken during it and a drain lasts one grace period, not two."""
    taken: list[str] = []

    async def record(envelope: Envelope[Any], queue: ConsumerQueue) -> None:
        taken.append(envelope.message_id)

    settings = settings_for(ServiceSettings, isolation, shutdown_grace_seconds=5.0, consumer_watchdog_seconds=0.5)
    service = Service("probe", settings)
    service.consume(QUEUE, record)
    request_began = asyncio.Event()

    @service.app.get("/slow")
    async def slow() -> dict[str, bool]:
        request_began.set()
        await asyncio.sleep(2.5)
        return {"done": True}

    port = free_port()
    config = uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = DrainingServer(config, service)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, timeout=20.0)
    async with httpx.AsyncClient(timeout=10.0) as client:
        request = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.wait_for(request_began.wait(), 5.0)
        server.should_exit = True  # what uvicorn's SIGTERM handler does
        await asyncio.sleep(0.5)
        # Published while the open request is still being answered: nobody here takes it.
        message = stripe_account("mca_during_http_drain")
        await service.publisher.publish_many([OutgoingMessage.of(message)])
        response = await request
    assert response.status_code == 200 and response.json() == {"done": True}
    await asyncio.wait_for(serving, 15.0)
    assert taken == [], "a message was consumed after SIGTERM"

    # Left in the queue for a successor.
    successor = await started_service(isolation, record, grace=10.0)
    try:
        await eventually(lambda: taken == [message.message_id], timeout=20.0)
    finally:
        await successor.stop()
