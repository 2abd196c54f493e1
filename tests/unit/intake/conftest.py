"""Intake on in-memory adapters (`svc`) and an HTTP client of its API as the tenant's key (`client`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer

from .fakes import Intake, http_client, intake


@pytest.fixture
def svc() -> Intake:
    return intake()


@pytest.fixture
async def client(svc: Intake) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(svc, headers=svc.headers()) as http:
        yield http


@pytest.fixture(scope="module")
def sandbox() -> Iterator[BackgroundServer]:
    """A Stripe sandbox on loopback, one per module (the webhook doors' tests read Stripe's API there)."""
    with BackgroundServer(stripe.create_app()) as server:
        yield server
