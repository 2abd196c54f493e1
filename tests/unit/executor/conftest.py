"""The executor on in-memory adapters under TestRabbitBroker, with its payment connector account known."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.rabbit import TestRabbitBroker

from .builders import connector_account
from .fakes import Executor, in_memory_executor


@pytest.fixture
async def executor(requeues: list[int]) -> AsyncIterator[Executor]:
    running = in_memory_executor()
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        await running.send("executor.connector-account-updated", connector_account())
        yield running
