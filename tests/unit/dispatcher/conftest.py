"""The dispatcher on in-memory adapters under FastStream's TestRabbitBroker, its profile's endpoint known."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.rabbit import TestRabbitBroker

from .fakes import Dispatcher, in_memory_dispatcher
from .messages import endpoint_update


@pytest.fixture
def settings() -> dict[str, Any]:
    """Overrides of the dispatcher's settings (a test module may override this fixture)."""
    return {"webhook_retry_schedule_seconds": "60,300"}


@pytest.fixture
async def dispatcher(requeues: list[int], settings: dict[str, Any]) -> AsyncIterator[Dispatcher]:
    running = in_memory_dispatcher(**settings)
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        await running.send("dispatcher.profile-updated", endpoint_update())
        yield running
