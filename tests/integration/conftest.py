"""Services and apps run in-process by integration tests (each in its own thread and event loop, real HTTP) against
the test's vhost and database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from recovery_sandbox.serving import BackgroundServer
from support.services import serving
from support.stack import Isolation


@pytest.fixture
def serve(isolation: Isolation) -> Iterator[Callable[[Any], BackgroundServer]]:
    """`serve(app_or_service)` runs it on a free loopback port until the test ends; the servers stop before the
    test's vhost goes (a service whose vhost went first kept reconnecting for the rest of the worker's run)."""
    with serving() as start:
        yield start


@pytest.fixture
def db(isolation: Isolation) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(isolation.mongodb_url, tz_aware=True)
    yield client[isolation.mongodb_database]
    client.close()


@pytest.fixture
async def adb(mongodb_url: str, mongodb_database: str) -> AsyncIterator[Any]:
    """The test's database through the async client the services use."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield client[mongodb_database]
    await client.close()
