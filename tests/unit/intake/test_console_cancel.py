"""The Payment page's cancel (`POST /console/payments/{id}/cancel`): the API's cancel by reference, for a signed-in
merchant key with the payments scope, behind the session's CSRF token. The page itself reads other services and
is driven in a browser (tests/e2e/test_console.py)."""

from __future__ import annotations

import httpx

from recovery_contracts.envelope import MessageType
from recovery_contracts.payments import IntentStatus

from .api_calls import mint
from .fakes import ADMIN_KEY, API_KEY, Intake, http_client, intake
from .recovery_requests import recovery_body
from .test_console_routes import session_token, signed_in, signed_in_on_merchant
from .test_intake_cancel_fence import charging, fences


async def open_recovery(svc: Intake) -> str:
    async with http_client(svc, headers=svc.headers()) as api:
        created = await api.post("/v2/payments/recovery", json=recovery_body())
    assert created.status_code == 200, created.text
    payment_id: str = created.json()["id"]
    return payment_id


async def cancel(svc: Intake, client: httpx.AsyncClient, payment_id: str, token: str | None = None) -> httpx.Response:
    token = token if token is not None else session_token(svc, client)
    return await client.post(f"/console/payments/{payment_id}/cancel", data={"csrf_token": token})


def status_of(svc: Intake, payment_id: str) -> IntentStatus:
    return svc.intents.intents[payment_id].status


async def test_a_merchant_cancels_a_recovery_from_its_payment_page() -> None:
    svc = intake()
    payment_id = await open_recovery(svc)
    async with signed_in(svc) as client:
        answer = await cancel(svc, client, payment_id)

    assert answer.status_code == 303 and answer.headers["location"] == f"/console/payments/{payment_id}"
    assert status_of(svc, payment_id) is IntentStatus.CANCELLED
    [update] = svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)
    assert update.payload.action == "cancel_invoice"
    assert fences(svc).fences[payment_id].cancelled_at == svc.clock.now()


async def test_without_the_sessions_token_nothing_is_cancelled() -> None:
    svc = intake()
    payment_id = await open_recovery(svc)
    async with signed_in(svc) as client:
        answer = await cancel(svc, client, payment_id, token="forged")

    assert answer.status_code == 403
    assert status_of(svc, payment_id) is IntentStatus.FAILED
    assert svc.publisher.envelopes(MessageType.RECOVERY_UPDATED) == []


async def test_a_read_only_key_and_the_admin_key_may_not_cancel() -> None:
    svc = intake()
    payment_id = await open_recovery(svc)
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
    for key in (reader["api_key"], ADMIN_KEY):
        async with signed_in_on_merchant(svc, key) as client:
            answer = await cancel(svc, client, payment_id)
        assert answer.status_code == 403, key
        assert "payments scope" in answer.text
    assert status_of(svc, payment_id) is IntentStatus.FAILED


async def test_an_unknown_payment_is_not_found_and_a_charge_in_flight_is_waited_for() -> None:
    svc = intake()
    payment_id = await open_recovery(svc)
    await charging(svc, payment_id)
    async with signed_in(svc) as client:
        unknown = await cancel(svc, client, "12345_pay_" + "0" * 32)
        in_flight = await cancel(svc, client, payment_id)

    assert unknown.status_code == 404
    assert in_flight.status_code == 409 and "being charged" in in_flight.text
    assert status_of(svc, payment_id) is IntentStatus.FAILED
