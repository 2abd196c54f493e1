"""`BackgroundServer`, which the tests and the demo run apps in: a server that does not start within its time is
stopped as soon as its start-up ends, and one whose stop does not end within its time is cancelled whole; neither is
left running in the process after its caller gave up on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from recovery_sandbox.serving import BackgroundServer


def slow_app(events: list[str], startup_seconds: float) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.sleep(startup_seconds)  # a service still connecting to its broker
        events.append("started")
        yield
        events.append("stopped")

    return FastAPI(lifespan=lifespan)


def test_a_server_that_starts_in_time_serves_until_stopped() -> None:
    events: list[str] = []
    server = BackgroundServer(slow_app(events, 0.0)).start(timeout=10.0)
    assert httpx.get(f"{server.url}/openapi.json", timeout=5).status_code == 200
    server.stop()
    assert events == ["started", "stopped"]


def test_a_server_that_does_not_start_in_time_stops_once_its_start_up_ends() -> None:
    events: list[str] = []
    server = BackgroundServer(slow_app(events, 1.5))
    with pytest.raises(TimeoutError, match=r"did not start within 0\.2 s"):
        server.start(timeout=0.2)

    deadline = time.monotonic() + 15
    while events != ["started", "stopped"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events == ["started", "stopped"], "the server went on after its start timed out"


def stuck_app(ticks: list[float]) -> FastAPI:
    """A service whose stop never ends (waiting on a connection that will not answer), with a task that keeps going
    meanwhile (a broker connection reconnecting to a virtual host the test deleted)."""

    async def reconnecting() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.05)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(reconnecting())
        yield
        await asyncio.Event().wait()  # the stop that never ends
        task.cancel()

    return FastAPI(lifespan=lifespan)


def test_a_server_whose_stop_outlives_the_wait_is_cancelled_whole_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ticks: list[float] = []
    server = BackgroundServer(stuck_app(ticks)).start(timeout=10.0)
    started = time.monotonic()
    server.stop(timeout=1.0)

    assert time.monotonic() - started < 5
    assert not server.running
    stopped = time.monotonic()
    time.sleep(0.3)
    assert not [tick for tick in ticks if tick > stopped], "a task of the server went on after its stop"
    assert f"the server on {server.url} did not stop within 1.0 s: its tasks were cancelled" in capsys.readouterr().err
