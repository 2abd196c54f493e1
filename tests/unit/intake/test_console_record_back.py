"""The Payment page's "Start the record back again" (`POST /console/payments/{id}/record-back/restart`): the API's
`PSYNC_WORKFLOW` resume, for a signed-in merchant key with the payments scope, behind the session's CSRF token,
sent to the executor's internal route (a scripted executor on loopback here; the whole path runs in
tests/e2e/test_billing_recurly.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_sandbox.serving import BackgroundServer

from .api_calls import mint
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, SETTINGS, http_client, intake
from .test_console_routes import session_token, signed_in, signed_in_on_merchant

PAYMENT = "12345_pay_" + "1" * 32
RESTART = f"/console/payments/{PAYMENT}/record-back/restart"


@dataclass
class ScriptedOwner:
    """One internal route of a service the console calls: records each call (its path, headers and JSON body, `{}`
    for none; its query in `queries`), answers from `answers` (else `usual`)."""

    route: str
    method: str
    usual: dict[str, Any]
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    received: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    base: str = ""  # where it listens, once started

    @contextmanager
    def serving(self) -> Iterator[ScriptedOwner]:
        with BackgroundServer(Starlette(routes=[Route(self.route, self._answer, methods=[self.method])])) as server:
            self.base = server.url
            yield self

    async def _answer(self, request: Request) -> JSONResponse:
        body = await request.body()
        self.received.append((request.url.path, dict(request.headers), json.loads(body) if body else {}))
        self.queries.append(dict(request.query_params))
        status, body = self.answers.pop(0) if self.answers else (200, self.usual)
        return JSONResponse(body, status_code=status)


@pytest.fixture
def executor() -> Iterator[ScriptedOwner]:
    restart = ScriptedOwner("/internal/record-backs/{merchant}/{payment}/restart", "POST", {"status": "retrying"})
    with restart.serving() as scripted:
        yield scripted


async def restart(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(RESTART, data={"csrf_token": token})


async def test_a_merchant_starts_an_abandoned_record_back_again_from_the_payment_page(
    executor: ScriptedOwner,
) -> None:
    svc = intake(executor_internal_url=executor.base)
    async with signed_in(svc) as client:
        answer = await restart(client, session_token(svc, client))

    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/payments/{PAYMENT}?done=record-back"
    [(path, headers, body)] = executor.received
    assert path == f"/internal/record-backs/{MERCHANT}/{PAYMENT}/restart"
    assert (headers[TOKEN_HEADER], headers[MERCHANT_HEADER]) == (SETTINGS.internal_api_token, MERCHANT)
    assert (body["revenue_recovery_task"], body["status"], body["business_status"]) == (
        "PSYNC_WORKFLOW",
        "finish",
        "COMPLETED_PSYNC_TASK",
    )


async def test_the_executors_refusal_and_an_unknown_record_back_are_shown(executor: ScriptedOwner) -> None:
    refusal = {
        "error": {
            "type": "invalid_request",
            "message": "the record back was accepted: nothing is left to record",
            "code": "IR_16",
        }
    }
    executor.answers.extend(
        [(400, refusal), (404, {"error": {"type": "invalid_request", "message": "no", "code": "HE_02"}})]
    )
    svc = intake(executor_internal_url=executor.base)
    async with signed_in(svc) as client:
        refused = await restart(client, session_token(svc, client))
        unknown = await restart(client, session_token(svc, client))

    assert refused.status_code == 409 and "Not started again: the record back was accepted" in refused.text
    assert unknown.status_code == 404 and "No record back" in unknown.text


async def test_no_token_a_read_only_key_and_the_admin_key_start_nothing(executor: ScriptedOwner) -> None:
    svc = intake(executor_internal_url=executor.base)
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
    async with signed_in(svc) as client:
        forged = await restart(client, "forged")
    assert forged.status_code == 403
    for key in (reader["api_key"], ADMIN_KEY):
        async with signed_in_on_merchant(svc, key) as client:
            answer = await restart(client, session_token(svc, client))
        assert answer.status_code == 403 and "payments scope" in answer.text, key
    assert executor.received == []


async def test_without_the_executors_address_the_page_says_so() -> None:
    svc = intake(executor_internal_url=None)
    async with signed_in(svc) as client:
        answer = await restart(client, session_token(svc, client))

    assert answer.status_code == 503 and "EXECUTOR_INTERNAL_URL is not set" in answer.text
