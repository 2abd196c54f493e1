"""The Stripe sandbox on a loopback port, and a StripeConnector pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from recovery_executor.adapters.stripe import StripeConnector
from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer

API_KEY = "sk_test_executor_connector_tests"


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def stripe_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(stripe.create_app()) as server:
        yield server


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def connector(stripe_server: BackgroundServer, http_client: httpx.AsyncClient) -> StripeConnector:
    return StripeConnector(stripe_server.url, API_KEY, http_client, timeout=5.0)
