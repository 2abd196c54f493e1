"""Services and apps run in-process by integration tests (each in its own thread and event loop, real HTTP) against
the test's vhost and database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from recovery_runtime.service import Service
from recovery_sandbox.serving import BackgroundServer
from support.stack import Isolation


@pytest.fixture
def serve() -> Iterator[Callable[[Any], BackgroundServer]]:
    """`serve(app_or_service)` runs it on a free loopback port until the test ends."""
    servers: list[BackgroundServer] = []

    def start(target: Any) -> BackgroundServer:
        app = target.app if isinstance(target, Service) else target
        server = BackgroundServer(app, graceful_seconds=5.0).start(timeout=60.0)
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def db(isolation: Isolation) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(isolation.mongodb_url, tz_aware=True)
    yield client[isolation.mongodb_database]
    client.close()
