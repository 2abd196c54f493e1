"""Record back goes through the egress policy: a real POST to an allowed loopback receiver is accepted, one to a
loopback address outside the allow-list (or spelt as a non-canonical literal) never leaves, and is blocked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from recovery_executor.adapters.billing import HttpBillingRecorder
from recovery_runtime.egress import EgressGuard, EgressPolicy, guarded_http_client


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[int, list[str]]]:
    keys: list[str] = []

    async def record(request: web.Request) -> web.Response:
        keys.append(request.headers["Idempotency-Key"])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/record-back", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1], keys  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def test_an_allowed_destination_is_recorded_back(receiver: tuple[int, list[str]]) -> None:
    port, keys = receiver
    async with guarded_http_client(EgressGuard(EgressPolicy.from_setting("127.0.0.0/8"))) as http:
        answer = await HttpBillingRecorder(http).record_back(
            f"http://localhost:{port}/record-back", {"amount": 100}, idempotency_key="record-back:pay_1"
        )
    assert (answer.accepted, answer.status_code, answer.blocked) == (True, 200, False)
    assert keys == ["record-back:pay_1"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433"])
async def test_a_refused_destination_is_blocked_without_a_connection(
    receiver: tuple[int, list[str]], host: str
) -> None:
    port, keys = receiver
    async with guarded_http_client(EgressGuard(EgressPolicy.from_setting("127.0.0.2/32"))) as http:
        answer = await HttpBillingRecorder(http).record_back(
            f"http://{host}:{port}/record-back?token=secret", {"amount": 100}, idempotency_key="record-back:pay_1"
        )
    assert (answer.accepted, answer.blocked) == (False, True)
    assert answer.error is not None and answer.error.startswith("blocked: ")
    assert keys == []
