"""The console's sign-in, session and CSRF checks through intake's app on in-memory adapters (no page that
reads another service: those are driven in a browser, tests/e2e/test_console.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx

from recovery_intake.console.operator_pages import replay_notice
from recovery_intake.console.session import SESSION_COOKIE, SessionSigner

from .fakes import ADMIN_KEY, API_KEY, MERCHANT, SETTINGS, Intake, http_client, intake

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


async def token_of(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    found = _TOKEN.search(page.text)
    assert found, page.text
    return found.group(1)


@asynccontextmanager
async def signed_in(
    svc: Intake, api_key: str = API_KEY, merchant_id: str = MERCHANT
) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(svc) as client:
        await _sign_in(client, api_key, merchant_id)
        yield client


async def _sign_in(client: httpx.AsyncClient, api_key: str, merchant_id: str) -> None:
    token = await token_of(client, "/console/sign-in")
    answer = await client.post(
        "/console/sign-in", data={"api_key": api_key, "merchant_id": merchant_id, "csrf_token": token}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/overview"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; https sets it


async def test_a_merchant_key_signs_in_and_the_session_cookie_is_set() -> None:
    svc = intake()
    async with signed_in(svc) as client:
        assert client.cookies.get(SESSION_COOKIE)
        assert API_KEY not in client.cookies.get(SESSION_COOKIE, "")


async def test_a_wrong_key_or_another_merchant_is_refused_on_the_form() -> None:
    svc = intake()
    async with http_client(svc) as client:
        for key, merchant, status in (("snd_wrong", MERCHANT, 401), (API_KEY, "merchant_2", 401), ("", "", 400)):
            token = await token_of(client, "/console/sign-in")
            answer = await client.post(
                "/console/sign-in", data={"api_key": key, "merchant_id": merchant, "csrf_token": token}
            )
            assert answer.status_code == status
            assert 'role="alert"' in answer.text
            assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_sign_in_needs_the_forms_token() -> None:
    svc = intake()
    async with http_client(svc) as client:
        await client.get("/console/sign-in")
        answer = await client.post("/console/sign-in", data={"api_key": API_KEY, "merchant_id": MERCHANT})
        assert answer.status_code == 403
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


async def test_pages_need_a_session() -> None:
    svc = intake()
    async with http_client(svc) as client:
        answer = await client.get("/console/recoveries")
        assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
        client.cookies.set(SESSION_COOKIE, "forged.value", path="/console")
        assert (await client.get("/console/webhooks")).status_code == 303


async def test_a_state_change_needs_the_sessions_csrf_token_and_its_origin() -> None:
    svc = intake()
    async with signed_in(svc) as client:
        # Without a token, with another session's token, from another site: refused, still signed in.
        assert (await client.post("/console/sign-out")).status_code == 403
        async with signed_in(svc) as other:
            other_token = session_token(svc, other)
        assert (await client.post("/console/sign-out", data={"csrf_token": other_token})).status_code == 403
        mine = session_token(svc, client)
        answer = await client.post(
            "/console/sign-out", data={"csrf_token": mine}, headers={"origin": "https://evil.example"}
        )
        assert answer.status_code == 403
        # The htmx header form is accepted as well as the form field.
        answer = await client.post("/console/sign-out", headers={"x-csrf-token": mine})
        assert answer.status_code == 303
        assert 'console_session=""' in answer.headers["set-cookie"]


async def test_a_revoked_key_ends_the_session() -> None:
    svc = intake()
    async with signed_in(svc) as client:
        assert (await client.get("/console/")).headers["location"] == "/console/overview"
        svc.api_keys.keys["key_1"]["revoked"] = True
        assert (await client.get("/console/")).headers["location"] == "/console/sign-in"


async def test_an_expired_session_ends() -> None:
    svc = intake()
    async with signed_in(svc) as client:
        svc.clock.advance(timedelta(hours=8, seconds=1))
        assert (await client.get("/console/")).headers["location"] == "/console/sign-in"


async def test_the_admin_key_signs_in_without_a_merchant_and_picks_one() -> None:
    svc = intake()
    async with signed_in(svc, ADMIN_KEY, "") as client:
        overview = await client.get("/console/overview")
        assert overview.status_code == 200 and "Operator view" in overview.text
        token = session_token(svc, client)
        unknown = await client.post("/console/merchant", data={"merchant_id": "nobody", "csrf_token": token})
        assert unknown.status_code == 404
        chosen = await client.post("/console/merchant", data={"merchant_id": MERCHANT, "csrf_token": token})
        assert chosen.status_code == 303


def test_the_dead_letters_notice_names_only_a_known_queue_and_counts() -> None:
    """Rebuilt from the replay's redirect: a crafted link's own words never reach the page's notice."""
    crafted = {"queue": "Call us now on +1 555 0100", "replayed": "1", "failed": "0"}
    counts = {"queue": "scheduler.attempt-failed", "replayed": "3 (and call us)", "failed": "0"}
    replayed = {"queue": "scheduler.attempt-failed", "replayed": "3", "failed": "0"}

    assert replay_notice(crafted) == {} and replay_notice(counts) == {}
    assert replay_notice(replayed) == replayed


async def test_a_merchant_key_cannot_reach_the_operator_pages() -> None:
    svc = intake()
    async with signed_in(svc) as client:
        assert (await client.get("/console/dead-letters")).status_code == 403
        assert (await client.get("/console/services")).status_code == 403


@asynccontextmanager
async def signed_in_on_merchant(svc: Intake, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in with `api_key` on MERCHANT's pages: a merchant key names it at sign-in, the admin key chooses it."""
    async with signed_in(svc, api_key, "" if api_key == ADMIN_KEY else MERCHANT) as client:
        if api_key == ADMIN_KEY:
            token = session_token(svc, client)
            chosen = await client.post("/console/merchant", data={"merchant_id": MERCHANT, "csrf_token": token})
            assert chosen.status_code == 303
        yield client


def session_token(svc: Intake, client: httpx.AsyncClient) -> str:
    """The CSRF token of the client's session, as the pages embed it."""
    signer = SessionSigner(SETTINGS.api_key_hash_secret)
    session = signer.decode(client.cookies.get(SESSION_COOKIE), svc.clock.now())
    assert session is not None
    return signer.csrf_token(session.nonce)
