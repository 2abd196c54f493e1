"""The analytics service on in-memory stores under FastStream's TestRabbitBroker, and an HTTP client on its
internal API acting for the history's merchant."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from faststream.rabbit import TestRabbitBroker

from recovery_analytics.settings import AnalyticsSettings
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from support.recovery_history import MERCHANT

from .fakes import Analytics, in_memory_analytics


@pytest.fixture
async def analytics(requeues: list[int]) -> AsyncIterator[Analytics]:
    running = in_memory_analytics()
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        yield running


@pytest.fixture
async def internal(analytics: Analytics) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=analytics.service.app)
    headers = {TOKEN_HEADER: AnalyticsSettings().internal_api_token, MERCHANT_HEADER: MERCHANT}
    async with httpx.AsyncClient(transport=transport, base_url="http://analytics", headers=headers) as http:
        yield http
