"""Servers for the sandbox tests: the Stripe sandbox and the merchant receiver on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from recovery_sandbox import receiver, stripe
from recovery_sandbox.serving import BackgroundServer

TEST_KEY = "sk_test_sandbox_tests_0001"


@pytest.fixture
def api_key() -> str:
    return TEST_KEY


@pytest.fixture
def stripe_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(stripe.create_app()) as server:
        yield server


@pytest.fixture
def stripe_api(stripe_server: BackgroundServer) -> Iterator[httpx.Client]:
    """A client that talks to the sandbox as a Stripe SDK would: Bearer key, form-encoded bodies."""
    with httpx.Client(
        base_url=stripe_server.url, headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
def receiver_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(receiver.create_app()) as server:
        yield server
