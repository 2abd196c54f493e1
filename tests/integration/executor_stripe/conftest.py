"""The Stripe sandbox on a loopback port, a StripeConnector pointed at it, and the executor (with the scheduler
that keeps its PSYNC timers) running against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from recovery_executor.adapters.stripe import StripeConnector
from recovery_executor.app import build_service as build_executor
from recovery_executor.settings import ExecutorSettings
from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer
from recovery_scheduler.app import build_service as build_scheduler
from recovery_scheduler.settings import SchedulerSettings
from support.services import settings_for
from support.stack import Isolation

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


@pytest.fixture
def card_on_file(stripe_server: BackgroundServer) -> Callable[[str], tuple[str, str]]:
    """`card_on_file(alias)`: a customer with that test card attached at the sandbox, as the seed makes at Stripe;
    returns (customer id, payment method id)."""

    def attach(alias: str) -> tuple[str, str]:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        customer = httpx.post(stripe_server.url + "/v1/customers", headers=auth).json()["id"]
        pm = httpx.post(
            stripe_server.url + f"/v1/payment_methods/{alias}/attach", data={"customer": customer}, headers=auth
        )
        return customer, pm.json()["id"]

    return attach


@pytest.fixture
def sandbox_ledger(stripe_server: BackgroundServer) -> Callable[[], list[dict[str, Any]]]:
    """Every charge the sandbox made, in order."""
    return lambda: httpx.get(stripe_server.url + "/_sandbox/ledger").json()


@pytest.fixture
def running_executor(isolation: Isolation, stripe_server: BackgroundServer) -> Iterator[None]:
    """The executor on the test's vhost and database, charging at the sandbox, and the scheduler that fires its
    PSYNC timers (30 s of business time is 30 ms at the tests' time scale)."""
    executor = build_executor(settings_for(ExecutorSettings, isolation, stripe_api_base=stripe_server.url))
    scheduler = build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05))
    with ExitStack() as running:
        for service in (executor, scheduler):
            server = BackgroundServer(service.app, graceful_seconds=5).start(timeout=60.0)
            running.callback(server.stop)
        yield
