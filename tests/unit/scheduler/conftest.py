"""The scheduler on in-memory adapters under TestRabbitBroker, its clock standing at T0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.rabbit import TestRabbitBroker

from .fakes import Scheduler, in_memory_scheduler


@pytest.fixture
async def scheduler(requeues: list[int]) -> AsyncIterator[Scheduler]:
    running = in_memory_scheduler()
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        yield running
