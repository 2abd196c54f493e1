"""The scheduler on in-memory adapters under TestRabbitBroker, its clock standing at T0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.rabbit import TestRabbitBroker

from .fakes import Scheduler, in_memory_scheduler


@pytest.fixture
def requeues(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Messages the pipeline handed back for a redelivery (no pause: the tests run in milliseconds)."""
    paused: list[int] = []

    def pause(deliveries: int) -> float:
        paused.append(deliveries)
        return 0.0

    monkeypatch.setattr("recovery_runtime.consumer.retry_pause", pause)
    return paused


@pytest.fixture
async def scheduler(requeues: list[int]) -> AsyncIterator[Scheduler]:
    running = in_memory_scheduler()
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        yield running
