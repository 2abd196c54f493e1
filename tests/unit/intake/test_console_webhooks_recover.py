"""The Webhooks page's "Deliver failed events again": the window chosen becomes the events API's recover
(`POST /internal/events/{merchant_id}/recover`, served here by a scripted dispatcher on loopback: the path, token,
merchant and `since` it was sent), and the page says how many go again and whether more are left; refused without
the session's token, for a key that may only read, for a window not offered, and shown as the dispatcher's refusal
or absence when it refuses or does not answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_sandbox.serving import BackgroundServer

from .api_calls import mint
from .fakes import API_KEY, MERCHANT, SETTINGS, http_client, intake
from .test_console_routes import session_token, signed_in

RECOVER = "/console/webhooks/recover"


@dataclass
class ScriptedDispatcher:
    answer: dict[str, Any]
    status: int = 200
    received: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    base: str = ""

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/internal/events/{merchant}/recover", self._recover, methods=["POST"]),
                Route("/internal/events/{merchant}/list", self._empty_list, methods=["POST"]),
                Route("/internal/endpoints/{merchant}", self._no_endpoints),
            ]
        )

    async def _recover(self, request: Request) -> JSONResponse:
        self.received.append((request.url.path, dict(request.headers), json.loads(await request.body())))
        return JSONResponse(self.answer, status_code=self.status)

    async def _empty_list(self, request: Request) -> JSONResponse:
        return JSONResponse({"events": [], "total_count": 0})

    async def _no_endpoints(self, request: Request) -> JSONResponse:
        return JSONResponse({"merchant_id": MERCHANT, "endpoints": []})


@pytest.fixture
def dispatcher() -> Iterator[ScriptedDispatcher]:
    scripted = ScriptedDispatcher({"recovered_count": 200, "event_ids": ["evt_1"] * 200, "next_cursor": "evt_1"})
    with BackgroundServer(scripted.app) as server:
        scripted.base = server.url
        yield scripted


async def test_the_window_chosen_is_recovered_and_the_page_says_how_many_and_that_more_are_left(
    dispatcher: ScriptedDispatcher,
) -> None:
    svc = intake(dispatcher_internal_url=dispatcher.base)
    async with signed_in(svc) as console:
        page = await console.get("/console/webhooks")
        answer = await console.post(RECOVER, data={"within": "72", "csrf_token": session_token(svc, console)})
        after = await console.get(answer.headers["location"])

    assert 'id="recover-form"' in page.text and '<option value="24" selected>the last day</option>' in page.text
    assert answer.status_code == 303 and answer.headers["location"] == "/console/webhooks?recovered=200&more=1"
    [(path, headers, body)] = dispatcher.received
    assert path == f"/internal/events/{MERCHANT}/recover"
    assert (headers[TOKEN_HEADER], headers[MERCHANT_HEADER]) == (SETTINGS.internal_api_token, MERCHANT)
    assert datetime.fromisoformat(body["since"]) == svc.clock.now() - timedelta(days=3)
    assert "200 failed events will be delivered again (more are left: deliver again for the next ones)." in after.text


@pytest.mark.parametrize(
    ("count", "more", "words"),
    [
        (0, False, "No failed event to deliver again."),
        (1, False, "1 failed event will be delivered again."),
    ],
)
async def test_the_page_says_when_there_was_none_or_one(
    dispatcher: ScriptedDispatcher, count: int, more: bool, words: str
) -> None:
    dispatcher.answer = {"recovered_count": count, "event_ids": ["evt_1"] * count, "next_cursor": None}
    svc = intake(dispatcher_internal_url=dispatcher.base)
    async with signed_in(svc) as console:
        answer = await console.post(RECOVER, data={"within": "1", "csrf_token": session_token(svc, console)})
        after = await console.get(answer.headers["location"])

    assert words in after.text and "more are left" not in after.text


async def test_the_page_names_the_profiles_whose_endpoint_refused_their_events(dispatcher: ScriptedDispatcher) -> None:
    dispatcher.answer = {
        "recovered_count": 2,
        "event_ids": ["evt_1", "evt_2"],
        "next_cursor": None,
        "refused_profiles": {"pro_b": "endpoint disabled: gone", "pro_a": "the profile has no webhook endpoint"},
    }
    svc = intake(dispatcher_internal_url=dispatcher.base)
    async with signed_in(svc) as console:
        answer = await console.post(RECOVER, data={"within": "24", "csrf_token": session_token(svc, console)})
        after = await console.get(answer.headers["location"])

    assert answer.headers["location"] == "/console/webhooks?recovered=2&refused=pro_a%2Cpro_b"
    assert (
        "2 failed events will be delivered again. Not sent: the failed events of pro_a, pro_b, whose endpoint "
        "refuses deliveries now" in after.text
    )


async def test_a_crafted_link_puts_no_words_of_its_own_in_the_pages_notice(dispatcher: ScriptedDispatcher) -> None:
    """The notice after a recover is rebuilt from its redirect's query: only profile ids are named, so a link with
    other text there shows the count alone."""
    svc = intake(dispatcher_internal_url=dispatcher.base)
    async with signed_in(svc) as console:
        crafted = await console.get(
            "/console/webhooks", params={"recovered": "0", "refused": "Your account is locked, call +1 555 0100"}
        )
        named = await console.get("/console/webhooks", params={"recovered": "0", "refused": "pro_a"})

    assert "No failed event to deliver again." in crafted.text and "locked" not in crafted.text
    assert "the failed events of pro_a" in named.text


async def test_refused_without_the_token_for_a_reading_key_and_for_a_window_not_offered(
    dispatcher: ScriptedDispatcher,
) -> None:
    svc = intake(dispatcher_internal_url=dispatcher.base)
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
    async with signed_in(svc) as console:
        no_token = await console.post(RECOVER, data={"within": "24"})
        odd_window = await console.post(RECOVER, data={"within": "999", "csrf_token": session_token(svc, console)})
    async with signed_in(svc, reader["api_key"]) as console:
        page = await console.get("/console/webhooks")
        read_only = await console.post(RECOVER, data={"within": "24", "csrf_token": session_token(svc, console)})

    assert no_token.status_code == 403
    assert odd_window.status_code == 400 and "Choose how far back" in odd_window.text
    assert 'id="recover-form"' not in page.text
    assert read_only.status_code == 403 and "payments scope" in read_only.text
    assert dispatcher.received == []


@pytest.mark.parametrize(("status", "shown"), [(422, 400), (503, 503)])
async def test_the_dispatchers_refusal_or_absence_is_the_pages(
    dispatcher: ScriptedDispatcher, status: int, shown: int
) -> None:
    dispatcher.status = status
    dispatcher.answer = {"error": {"type": "invalid_request", "code": "IR_06", "message": "since must be within"}}
    svc = intake(dispatcher_internal_url=dispatcher.base)
    async with signed_in(svc) as console:
        answer = await console.post(RECOVER, data={"within": "24", "csrf_token": session_token(svc, console)})

    assert answer.status_code == shown, answer.text
