"""A bare `Service` of the runtime, in this test's process, against the real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from recovery_runtime.service import Service
from recovery_runtime.settings import ServiceSettings
from support.services import settings_for
from support.stack import Isolation

ServiceFactory = Callable[..., Any]


@pytest.fixture
def runtime_service(isolation: Isolation) -> ServiceFactory:
    """`async with runtime_service(consume={queue: handler}, **settings) as service:` a started Service."""

    @asynccontextmanager
    async def started(
        consume: dict[str, Callable[..., Awaitable[None]]], name: str = "probe", **overrides: Any
    ) -> AsyncIterator[Service]:
        settings = settings_for(ServiceSettings, isolation, **{"consumer_watchdog_seconds": 0.5, **overrides})
        service = Service(name, settings)
        for queue, handler in consume.items():
            service.consume(queue, handler)
        await service.start()
        try:
            yield service
        finally:
            await service.stop()

    return started
