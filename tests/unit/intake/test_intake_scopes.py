"""API-key scopes, minting, revocation of minted keys and the per-merchant caps, through intake's HTTP API on
in-memory adapters. The tenant's key (`key_1`) was stored before scopes existed: it has all of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from recovery_contracts.api.api_keys import ApiKeyScope
from recovery_intake.domain.access import (
    READ_CONFIGURATION,
    READ_PAYMENTS,
    SECRETS,
    WRITE_CONFIGURATION,
    WRITE_PAYMENTS,
    Access,
    permits,
)

from .api_calls import mint, refused
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, PROFILE, Intake, http_client, intake
from .recovery_requests import recovery_body

P, R, M = ApiKeyScope.PAYMENTS, ApiKeyScope.READ_ONLY, ApiKeyScope.MANAGEMENT


@pytest.mark.parametrize(
    ("access", "allowed"),
    # Ids from the access alone: a set's order varies between processes (pytest-xdist's workers must agree).
    [
        pytest.param(access, allowed, id=str(access))
        for access, allowed in [
            (READ_PAYMENTS, {P, R}),
            (WRITE_PAYMENTS, {P}),
            (READ_CONFIGURATION, {R, M}),
            (WRITE_CONFIGURATION, {M}),
            (SECRETS, {M}),
        ]
    ],
)
def test_what_each_scope_permits(access: Access, allowed: set[ApiKeyScope]) -> None:
    assert {s for s in ApiKeyScope if permits({s}, access)} == allowed


@pytest.fixture
def svc() -> Intake:
    return intake()


@pytest.fixture
async def client(svc: Intake) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(svc) as http:
        yield http


def as_key(key: str) -> dict[str, str]:
    return {"api-key": key, "x-profile-id": PROFILE}


async def test_a_payments_key_recovers_but_cannot_read_secrets_or_manage(client: httpx.AsyncClient) -> None:
    created = await mint(client, ADMIN_KEY, ["payments"])
    assert created["scopes"] == ["payments"]
    key = as_key(created["api_key"])
    recovered = await client.post("/v2/payments/recovery", json=recovery_body(), headers=key)
    assert recovered.status_code == 200, recovered.text
    assert (await client.get(f"/v2/payments/{recovered.json()['id']}", headers=key)).status_code == 200
    for method, path, body in [
        ("GET", f"/v2/profiles/{PROFILE}", None),
        ("PUT", f"/v2/profiles/{PROFILE}", {"webhook_details": {"webhook_url": "https://attacker.example/"}}),
        ("POST", f"/v2/profiles/{PROFILE}/webhook-secret/rotate", {}),
        ("POST", "/v2/api-keys", {"name": "more", "expiration": "never"}),
        ("DELETE", "/v2/api-keys/key_1", None),
        ("GET", "/v2/api-keys/list", None),
    ]:
        response = await client.request(method, path, json=body, headers=key)
        refused(response, 403, "IR_22", "`management`", "`payments`")


async def test_a_read_only_key_reads_everything_but_secrets_and_writes_nothing(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment = (await client.post("/v2/payments/recovery", json=recovery_body(), headers=as_key(API_KEY))).json()
    key = as_key((await mint(client, API_KEY, ["read_only"]))["api_key"])
    for path in (f"/v2/payments/{payment['id']}", "/v2/api-keys/list", f"/v2/merchant-accounts/{MERCHANT}"):
        assert (await client.get(path, headers=key)).status_code == 200, path
    refused(await client.get(f"/v2/profiles/{PROFILE}", headers=key), 403, "IR_22", "`management`")
    recovery = await client.post(
        "/v2/payments/recovery", json=recovery_body(merchant_reference_id="inv_2"), headers=key
    )
    refused(recovery, 403, "IR_22", "write payments", "`payments`", "`read_only`")
    assert len(svc.intents.intents) == 1


async def test_a_key_grants_only_scopes_it_has_and_by_default_its_own(svc: Intake, client: httpx.AsyncClient) -> None:
    manager = await mint(client, API_KEY, ["management"])
    response = await client.post(
        "/v2/api-keys",
        json={"name": "escalate", "expiration": "never", "scopes": ["management", "payments"]},
        headers={"api-key": manager["api_key"]},
    )
    refused(response, 403, "IR_22", "lacks `payments`")
    inherited = await mint(client, manager["api_key"])
    assert inherited["scopes"] == ["management"]
    stored = svc.api_keys.keys[inherited["key_id"]]
    assert stored["created_by_key"] == manager["key_id"] and stored["scopes"] == ["management"]
    # A key stored before scopes existed keeps its power: all three, shown as such.
    listed = await client.get("/v2/api-keys/key_1", headers={"api-key": API_KEY})
    assert listed.json()["scopes"] == ["management", "payments", "read_only"]
    assert (await mint(client, ADMIN_KEY))["scopes"] == ["management", "payments", "read_only"]


async def test_revoking_a_key_revokes_the_keys_it_minted_and_theirs(svc: Intake, client: httpx.AsyncClient) -> None:
    leaked = await mint(client, API_KEY, ["management", "payments"])
    child = await mint(client, leaked["api_key"])
    grandchild = await mint(client, child["api_key"])
    unrelated = await mint(client, API_KEY, ["read_only"])
    admin = {"api-key": ADMIN_KEY, "x-merchant-id": MERCHANT}
    grandchild_via_child = svc.api_keys.keys[grandchild["key_id"]]["created_by_key"]
    assert grandchild_via_child == child["key_id"]

    revoked = await client.delete(f"/v2/api-keys/{leaked['key_id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    for key in (leaked, child, grandchild):
        refused(await client.get(f"/v2/payments/{'12345_pay_x'}", headers=as_key(key["api_key"])), 401, "IR_01")
    assert (await client.get("/v2/api-keys/list", headers={"api-key": unrelated["api_key"]})).status_code == 200
    assert (await client.get("/v2/api-keys/list", headers={"api-key": API_KEY})).status_code == 200
    assert svc.api_keys.keys[child["key_id"]]["revoked_with"] == leaked["key_id"]


async def test_a_key_minted_while_its_minter_is_revoked_is_revoked_too(svc: Intake, client: httpx.AsyncClient) -> None:
    minter = await mint(client, API_KEY, ["management"])
    add = svc.api_keys.add

    async def add_then_lose_the_race(doc: dict[str, Any]) -> None:
        await add(doc)
        # The minter's revocation ran between the insert and the check, and looked for minted keys too early.
        svc.api_keys.keys[minter["key_id"]]["revoked"] = True

    svc.api_keys.add = add_then_lose_the_race  # type: ignore[method-assign]
    response = await client.post(
        "/v2/api-keys", json={"name": "late", "expiration": "never"}, headers={"api-key": minter["api_key"]}
    )
    refused(response, 401, "IR_01", "revoked")
    late = [k for k in svc.api_keys.keys.values() if k["name"] == "late"]
    assert len(late) == 1 and late[0]["revoked"] is True


async def test_a_key_cannot_mint_one_that_outlives_it(svc: Intake, client: httpx.AsyncClient) -> None:
    expiry = svc.clock.now() + timedelta(days=1)
    short = await mint(client, API_KEY, ["management"], expiration=expiry.isoformat())
    forever = await client.post(
        "/v2/api-keys", json={"name": "forever", "expiration": "never"}, headers={"api-key": short["api_key"]}
    )
    refused(forever, 400, "IR_07", "expiration", "must not be later")
    sooner = (expiry - timedelta(hours=1)).isoformat()
    assert (await mint(client, short["api_key"], expiration=sooner))["scopes"] == ["management"]


async def test_keys_and_profiles_are_capped_per_merchant() -> None:
    svc = intake(max_api_keys_per_merchant=3, max_profiles_per_merchant=2)
    async with http_client(svc) as client:
        expiring = (svc.clock.now() + timedelta(hours=1)).isoformat()
        await mint(client, API_KEY, expiration=expiring)
        third = await mint(client, API_KEY)

        async def one_more() -> httpx.Response:
            body = {"name": "one more", "expiration": "never"}
            return await client.post("/v2/api-keys", json=body, headers={"api-key": API_KEY})

        refused(await one_more(), 400, "IR_16", "3 active API keys", "MAX_API_KEYS_PER_MERCHANT=3")
        # An expired key does not count, nor does a revoked one.
        svc.clock.advance(timedelta(hours=2))
        assert (await one_more()).status_code == 200
        await client.delete(f"/v2/api-keys/{third['key_id']}", headers={"api-key": API_KEY})
        assert (await one_more()).status_code == 200
        refused(await one_more(), 400, "IR_16")

        profile = {"profile_name": "second"}
        assert (await client.post("/v2/profiles", json=profile, headers={"api-key": API_KEY})).status_code == 200
        over_profiles = await client.post("/v2/profiles", json=profile, headers={"api-key": API_KEY})
        refused(over_profiles, 400, "IR_16", "2 profiles", "MAX_PROFILES_PER_MERCHANT=2")
        assert len(svc.profiles.profiles) == 2
