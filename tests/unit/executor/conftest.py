"""The executor on in-memory adapters under TestRabbitBroker, with its payment connector account known; what it sends
to a billing system's API in the tests that record over HTTP (billing_apis.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from faststream.rabbit import TestRabbitBroker

from recovery_sandbox.serving import BackgroundServer

from .builders import connector_account
from .fakes import Executor, in_memory_executor


@pytest.fixture
async def executor(requeues: list[int]) -> AsyncIterator[Executor]:
    running = in_memory_executor()
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        await running.send("executor.connector-account-updated", connector_account())
        yield running


@pytest.fixture
def sent() -> list[httpx.Request]:
    """Every request the executor made to the billing system's API (billing_apis.executor_at_billing_api)."""
    return []


@pytest.fixture
def lost_answers() -> list[str]:
    """Paths whose next answer from the billing system never reaches the executor (it acted; the executor timed out)."""
    return []


@pytest.fixture(scope="module")
def sandbox(sandbox_app: FastAPI) -> Iterator[BackgroundServer]:
    """The billing system's sandbox a module names (its `sandbox_app` fixture), served on loopback."""
    with BackgroundServer(sandbox_app) as server:
        yield server
