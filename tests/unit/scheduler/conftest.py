"""The scheduler on in-memory adapters under TestRabbitBroker, its clock standing at T0, and a client of its internal
HTTP endpoints as intake calls them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from faststream.rabbit import TestRabbitBroker

from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_scheduler.settings import SchedulerSettings

from .fakes import Scheduler, in_memory_scheduler


@pytest.fixture
async def scheduler(requeues: list[int]) -> AsyncIterator[Scheduler]:
    running = in_memory_scheduler()
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        yield running


@pytest.fixture
async def operator(scheduler: Scheduler) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=scheduler.service.app)
    headers = {TOKEN_HEADER: SchedulerSettings().internal_api_token, MERCHANT_HEADER: "merchant_test"}
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler", headers=headers) as http:
        yield http
