"""Credentials read once for the rate limit and the authentication: a credential header sent twice is refused,
and failed authentications are throttled per client address without asking the database each time."""

from __future__ import annotations

import uuid

import httpx
import pytest

from recovery_intake.adapters.cached_reads import CachedReads

from .fakes import API_KEY, MERCHANT, PROFILE, http_client, intake
from .recovery_requests import recovery_body

KEYS = "/v2/api-keys/list"


def assert_error(response: httpx.Response, status: int, code: str, *mentions: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    text = f"{error['message']} {error.get('reason') or ''}"
    for mention in mentions:
        assert mention in text, text
    return text


async def test_a_second_api_key_header_buys_no_fresh_rate_limit_bucket() -> None:
    """The bypass: the limiter counted the last `api-key`, the authentication the first, so a valid key plus a
    random second one got a new bucket per request. Now such a request is refused, whatever its second key."""
    svc = intake(rate_limit_per_second=0.001, rate_limit_burst=3)
    async with http_client(svc) as client:
        answers = [
            await client.get(KEYS, headers=[("api-key", API_KEY), ("api-key", f"snd_{uuid.uuid4().hex}")])
            for _ in range(10)
        ]
        assert {r.status_code for r in answers} == {400}
        assert_error(answers[0], 400, "IR_07", "api-key (header)", "more than once")
        # The key alone gets its burst, then 429: one bucket per key, whoever reads the headers.
        alone = [(await client.get(KEYS, headers={"api-key": API_KEY})).status_code for _ in range(5)]
        assert alone == [200, 200, 200, 429, 429]
        assert svc.api_keys.lookups == [svc.api_keys.keys["key_1"]["digest"]] * 3


OWN = [("api-key", API_KEY), ("x-profile-id", PROFILE)]


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ([("api-key", API_KEY), ("api-key", API_KEY), ("x-profile-id", PROFILE)], "api-key (header)"),
        ([*OWN, ("x-merchant-id", MERCHANT), ("x-merchant-id", "merchant_other")], "x-merchant-id (header)"),
        ([*OWN, ("x-profile-id", PROFILE)], "x-profile-id (header)"),
        ([*OWN, ("authorization", "Bearer a"), ("authorization", "Bearer b")], "authorization (header)"),
        ([*OWN, ("authorization", f"api-key={API_KEY}")], "api-key (header)"),
    ],
    ids=["key-twice", "merchant-twice", "profile-twice", "authorization-twice", "both-key-forms"],
)
async def test_every_credential_header_sent_twice_is_refused_before_anything_is_done(
    headers: list[tuple[str, str]], named: str
) -> None:
    svc = intake()
    async with http_client(svc) as client:
        response = await client.post("/v2/payments/recovery", json=recovery_body(), headers=headers)
    assert_error(response, 400, "IR_07", named)
    assert svc.intents.intents == {} and svc.publisher.published == [] and svc.api_keys.lookups == []


async def test_the_authorization_form_alone_authenticates() -> None:
    svc = intake()
    async with http_client(svc) as client:
        response = await client.get(KEYS, headers={"authorization": f"api-key={API_KEY}"})
        assert response.status_code == 200, response.text
        # Another scheme is not ours: ignored, so the request carries no key.
        bearer = await client.get(KEYS, headers={"authorization": "Bearer something"})
        assert_error(bearer, 401, "IR_01", "api-key")


async def test_failed_authentications_are_throttled_per_address_before_any_lookup() -> None:
    svc = intake(auth_failure_per_second=0.001, auth_failure_burst=3)
    async with http_client(svc, address="10.0.0.66") as attacker, http_client(svc, address="10.0.0.7") as merchant:
        guesses = [await attacker.get(KEYS, headers={"api-key": f"snd_{uuid.uuid4().hex}"}) for _ in range(8)]
        assert [r.status_code for r in guesses] == [401, 401, 401, 429, 429, 429, 429, 429]
        assert_error(guesses[3], 429, "RR_01", "failed authentications")
        assert int(guesses[3].headers["retry-after"]) >= 1
        # Only the first three reached the key store; while throttled, the address's keys are not looked at.
        assert len(svc.api_keys.lookups) == 3
        assert (await attacker.get(KEYS, headers={"api-key": API_KEY})).status_code == 429
        # Another address is not affected, and a request without a key is no failed authentication.
        assert (await merchant.get(KEYS, headers={"api-key": API_KEY})).status_code == 200
        assert_error(await merchant.get(KEYS), 401, "IR_01", "api-key")
        assert (await merchant.get(KEYS, headers={"api-key": API_KEY})).status_code == 200


async def test_a_wrong_admin_key_is_a_failed_authentication_too() -> None:
    svc = intake(auth_failure_per_second=0.001, auth_failure_burst=2)
    async with http_client(svc) as client:
        body = {"merchant_name": "probe"}
        answers = [
            await client.post("/v2/merchant-accounts", json=body, headers={"api-key": "guess"}) for _ in range(3)
        ]
    assert [r.status_code for r in answers] == [401, 401, 429]


async def test_an_unknown_key_presented_again_is_answered_from_memory_until_a_write_or_expiry() -> None:
    cache = CachedReads(60, absent_seconds=60)
    reads = 0
    stored: dict[str, str] | None = None

    async def load() -> dict[str, str] | None:
        nonlocal reads
        reads += 1
        return stored

    for _ in range(5):
        assert await cache.read("digest_unknown", load) is None
    assert reads == 1
    stored = {"_id": "key_new"}
    cache.invalidate("digest_unknown")  # the key was created through this process
    assert await cache.read("digest_unknown", load) == {"_id": "key_new"} and reads == 2
    # Without `absent_seconds` (profiles, connector accounts) absence is never kept.
    plain = CachedReads(60)
    stored, reads = None, 0
    assert await plain.read("x", load) is None and await plain.read("x", load) is None and reads == 2
