"""Both guarded clients against a real server on loopback: an allowed destination is reached with its host name
kept, a refused one never sees a connection, redirects are not followed and environment proxies are ignored.
(Blocking is shown with loopback addresses outside the allow-list: no test points anywhere else.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web

from recovery_runtime.egress import (
    DestinationBlocked,
    EgressGuard,
    EgressPolicy,
    GuardedResolver,
    blocked_reason,
    guarded_http_client,
)


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hosts.append(request.headers.get("Host", ""))
        if request.path == "/redirect":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, hosts
    finally:
        await runner.cleanup()


ALLOWED = EgressGuard(EgressPolicy.from_setting("127.0.0.0/8"))
ELSEWHERE = EgressGuard(EgressPolicy.from_setting("127.0.0.2/32"))


async def test_httpx_reaches_an_allowed_name_at_a_pinned_address_with_its_host_header(
    server: tuple[int, list[str]],
) -> None:
    port, hosts = server
    async with guarded_http_client(ALLOWED) as client:
        answer = await client.post(f"http://localhost:{port}/record-back", json={"a": 1})
    assert answer.status_code == 200
    assert hosts == [f"localhost:{port}"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "2130706433", "127.1"])
async def test_httpx_refuses_a_destination_outside_the_policy_before_connecting(
    server: tuple[int, list[str]], host: str
) -> None:
    port, hosts = server
    async with guarded_http_client(ELSEWHERE) as client:
        with pytest.raises(DestinationBlocked):
            await client.post(f"http://{host}:{port}/record-back", json={})
    assert hosts == []


async def test_httpx_does_not_follow_redirects_nor_take_proxies_from_the_environment(
    server: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hosts = server
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.9:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.9:9")
    async with guarded_http_client(ALLOWED) as client:
        answer = await client.get(f"http://127.0.0.1:{port}/redirect")
    assert answer.status_code == 302
    assert hosts == [f"127.0.0.1:{port}"]


async def test_aiohttp_resolves_only_to_checked_addresses(server: tuple[int, list[str]]) -> None:
    port, hosts = server
    for guard, expect_blocked in ((ALLOWED, False), (ELSEWHERE, True)):
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard))
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            try:
                async with session.post(f"http://localhost:{port}/hook", json={}) as answer:
                    status = answer.status
            except aiohttp.ClientError as error:
                assert expect_blocked and blocked_reason(error) is not None
            else:
                assert not expect_blocked and status == 200
    assert hosts == [f"localhost:{port}"]


async def test_a_client_error_of_httpx_keeps_the_refusal_findable() -> None:
    async with guarded_http_client(ELSEWHERE) as client:
        try:
            await client.get("http://127.0.0.1:1/")
        except (DestinationBlocked, httpx.HTTPError) as error:
            assert blocked_reason(error) == "blocked: 127.0.0.1 is a loopback address (not in OUTBOUND_ALLOWED_CIDRS)"
        else:
            raise AssertionError("the request went out")
