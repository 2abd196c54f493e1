"""`PUT /v2/connector-accounts/{id}` and `PUT /v2/api-keys/{key_id}` on in-memory adapters: what a change stores,
answers and publishes, and what it refuses with nothing stored or published."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from recovery_cli.scenario import BILLING_CONNECTOR_ACCOUNT, PAYMENT_CONNECTOR_ACCOUNT, seed_body
from recovery_contracts.envelope import MessageType
from recovery_runtime.secrets import SecretBox, is_sealed

from .api_calls import mint, refused
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, PROFILE, SETTINGS, Intake, changed_concurrently
from .recovery_requests import recovery_body

OLD_KEY = "sk_test_old_0123456789"
NEW_KEY = "sk_test_new_9876543210"
BOX = SecretBox.from_settings(SETTINGS)


async def payment_account(client: httpx.AsyncClient) -> str:
    body = seed_body(PAYMENT_CONNECTOR_ACCOUNT, api_key=OLD_KEY, profile_id=PROFILE)
    created = await client.post("/v2/connector-accounts", json=body)
    assert created.status_code == 200, created.text
    account_id: str = created.json()["id"]
    return account_id


async def billing_account(client: httpx.AsyncClient, payment_mca: str) -> str:
    body = seed_body(BILLING_CONNECTOR_ACCOUNT, payment_mca=payment_mca, profile_id=PROFILE)
    created = await client.post("/v2/connector-accounts", json=body)
    assert created.status_code == 200, created.text
    account_id: str = created.json()["id"]
    return account_id


def account_messages(svc: Intake) -> list[Any]:
    return [e.payload for e in svc.publisher.envelopes(MessageType.CONNECTOR_ACCOUNT_UPDATED)]


# --- connector accounts ----------------------------------------------------------------------------------------


async def test_an_account_update_is_stored_sealed_answered_masked_and_reaches_the_executor(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    account_id = await payment_account(client)
    update = {
        "connector_type": "payment_processor",
        "connector_account_details": {"auth_type": "HeaderKey", "api_key": NEW_KEY},
        "connector_label": "stripe_eu",
        "merchant_id": MERCHANT,  # Hyperswitch's v2 body carries it
    }
    response = await client.put(f"/v2/connector-accounts/{account_id}", json=update)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["connector_account_details"]["api_key"] == "sk" + "*" * (len(NEW_KEY) - 4) + "10"
    assert answer["connector_label"] == "stripe_eu" and answer["disabled"] is False
    # Fields the update leaves out keep their values.
    assert answer["metadata"] == {"report_group": "Hello", "merchant_config_currency": "USD"}
    assert answer["payment_methods_enabled"][0]["payment_method_type"] == "card"
    stored = svc.connector_accounts.accounts[account_id]
    sealed = stored["body"]["connector_account_details"]["api_key"]
    assert is_sealed(sealed) and BOX.open(sealed) == NEW_KEY and NEW_KEY not in str(stored)
    assert (stored["version"], stored["connector_label"]) == (2, "stripe_eu")
    created, changed = account_messages(svc)
    # The executor applies a message whose version is newer than its own: the update's is.
    assert (created.version, changed.version) == (1, 2)
    assert is_sealed(changed.api_key) and BOX.open(changed.api_key) == NEW_KEY
    assert changed.connector_account_id == account_id and changed.disabled is False


async def test_a_payment_accounts_own_pace_reaches_the_executor_and_an_update_without_it_clears_it(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    account_id = await payment_account(client)
    paced = {"connector_type": "payment_processor", "feature_metadata": {"request_pace": {"requests_per_second": 25}}}
    response = await client.put(f"/v2/connector-accounts/{account_id}", json=paced)

    assert response.status_code == 200, response.text
    assert response.json()["feature_metadata"]["request_pace"] == {"requests_per_second": 25.0, "burst": 10}
    created, changed = account_messages(svc)
    assert (created.requests_per_second, created.request_burst) == (None, None)
    assert (changed.requests_per_second, changed.request_burst) == (25.0, 10)
    # feature_metadata is replaced whole: an update that sends it without a pace goes back to the default.
    cleared = {"connector_type": "payment_processor", "feature_metadata": {}}
    assert (await client.put(f"/v2/connector-accounts/{account_id}", json=cleared)).status_code == 200
    assert account_messages(svc)[-1].requests_per_second is None


async def test_a_pace_on_a_billing_account_is_refused_as_it_paces_nothing(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    account_id = await billing_account(client, await payment_account(client))
    before = dict(svc.connector_accounts.accounts[account_id])
    paced = {"connector_type": "billing_processor", "feature_metadata": {"request_pace": {"requests_per_second": 5}}}

    response = await client.put(f"/v2/connector-accounts/{account_id}", json=paced)

    refused(response, 400, "IR_06", "request_pace applies to payment processors only")
    assert svc.connector_accounts.accounts[account_id] == before


async def test_a_disabled_account_takes_no_new_recovery_and_tells_the_executor(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    account_id = await payment_account(client)
    disable = {"connector_type": "payment_processor", "disabled": True}
    response = await client.put(f"/v2/connector-accounts/{account_id}", json=disable)

    assert response.status_code == 200 and response.json()["disabled"] is True, response.text
    # The executor refuses to charge through an account its projection holds disabled.
    assert [(m.version, m.disabled) for m in account_messages(svc)] == [(1, False), (2, True)]
    recovery = await client.post("/v2/payments/recovery", json=recovery_body(payment_merchant_connector_id=account_id))
    refused(recovery, 400, "HE_03", account_id)
    enable = await client.put(f"/v2/connector-accounts/{account_id}", json={**disable, "disabled": False})
    assert enable.json()["disabled"] is False
    assert [(m.version, m.disabled) for m in account_messages(svc)][-1] == (3, False)


async def test_a_billing_account_update_applies_to_the_next_recovery(svc: Intake, client: httpx.AsyncClient) -> None:
    payment_mca = await payment_account(client)
    billing_mca = await billing_account(client, payment_mca)
    recovery = {
        "max_retry_count": 3,
        "billing_connector_retry_threshold": 0,
        "billing_account_reference": {payment_mca: "acct_ref"},
        "retry_ladder_seconds": [60, 120],
    }
    update = {"connector_type": "billing_processor", "feature_metadata": {"revenue_recovery": recovery}}
    response = await client.put(f"/v2/connector-accounts/{billing_mca}", json=update)

    assert response.status_code == 200, response.text
    assert account_messages(svc)[-1].revenue_recovery["retry_ladder_seconds"] == [60, 120]
    body = recovery_body(billing_merchant_connector_id=billing_mca, payment_merchant_connector_id=payment_mca)
    assert (await client.post("/v2/payments/recovery", json=body)).status_code == 200
    [scheduled] = svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)
    retry = scheduled.payload.payment.retry
    assert (retry.max_retry_count, retry.ladder_seconds) == (3, (60, 120))


@pytest.mark.parametrize(
    ("update", "status", "code", "mention"),
    [
        ({"connector_type": "billing_processor", "disabled": True}, 422, "IR_06", "connector_type"),
        ({"connector_type": "payment_processor", "connector_name": "stripe"}, 400, "IR_06", "connector_name"),
        ({"connector_type": "payment_processor", "profile_id": "pro_other"}, 400, "IR_06", "profile_id"),
        (
            {"connector_type": "payment_processor", "connector_account_details": {"auth_type": "HeaderKey"}},
            400,
            "IR_06",
            "connector_account_details",
        ),
        ({"connector_type": "payment_processor", "disabled": "yes"}, 400, "IR_06", "disabled"),
        ({"disabled": True}, 400, "IR_06", "connector_type"),
        ({"connector_type": "payment_processor", "merchant_id": "someone_else"}, 404, "HE_02", "Merchant account"),
        (
            {"connector_type": "payment_processor", "feature_metadata": {"request_pace": {"requests_per_second": 0}}},
            400,
            "IR_06",
            "requests_per_second",
        ),
        (
            {"connector_type": "payment_processor", "feature_metadata": {"request_pace": {"burst": 5}}},
            400,
            "IR_06",
            "requests_per_second",
        ),
    ],
    ids=[
        "other-type",
        "name",
        "profile",
        "credentials",
        "not-a-flag",
        "no-type",
        "other-merchant",
        "no-pace",
        "pace-without-rate",
    ],
)
async def test_a_bad_account_update_names_the_field_and_changes_nothing(
    svc: Intake, client: httpx.AsyncClient, update: dict[str, Any], status: int, code: str, mention: str
) -> None:
    account_id = await payment_account(client)
    before = dict(svc.connector_accounts.accounts[account_id])

    refused(await client.put(f"/v2/connector-accounts/{account_id}", json=update), status, code, mention)
    assert svc.connector_accounts.accounts[account_id] == before
    assert len(account_messages(svc)) == 1


async def test_a_billing_account_may_not_name_another_profiles_or_an_unknown_account(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_mca = await payment_account(client)
    billing_mca = await billing_account(client, payment_mca)
    before = dict(svc.connector_accounts.accounts[billing_mca])
    recovery = {"max_retry_count": 3, "billing_connector_retry_threshold": 0}
    for named in ("mca_unknown", billing_mca):
        references = {**recovery, "billing_account_reference": {named: "acct_ref"}}
        update = {"connector_type": "billing_processor", "feature_metadata": {"revenue_recovery": references}}
        response = await client.put(f"/v2/connector-accounts/{billing_mca}", json=update)
        refused(response, 422, "IR_06", "billing_account_reference", named)
    outside = {**recovery, "billing_account_reference": {}, "record_back_url": "http://10.0.0.1/record"}
    update = {"connector_type": "billing_processor", "feature_metadata": {"revenue_recovery": outside}}
    refused(await client.put(f"/v2/connector-accounts/{billing_mca}", json=update), 422, "IR_06", "record_back_url")
    assert svc.connector_accounts.accounts[billing_mca] == before
    assert len(account_messages(svc)) == 2


async def test_an_account_of_another_merchant_or_profile_reads_as_an_unknown_one(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    account_id = await payment_account(client)
    svc.connector_accounts.accounts[account_id]["merchant_id"] = "merchant_2"
    update = {"connector_type": "payment_processor", "disabled": True}
    foreign = await client.put(f"/v2/connector-accounts/{account_id}", json=update)
    unknown = await client.put("/v2/connector-accounts/mca_unknown", json=update)
    refused(foreign, 404, "HE_02")
    assert foreign.json() == unknown.json()
    # Of the merchant, but not of the `x-profile-id` profile: as for the account's retrieval.
    svc.connector_accounts.accounts[account_id].update(merchant_id=MERCHANT, profile_id="pro_2")
    refused(await client.put(f"/v2/connector-accounts/{account_id}", json=update), 404, "HE_02")
    assert svc.connector_accounts.accounts[account_id]["disabled"] is False
    assert len(account_messages(svc)) == 1


async def test_a_concurrent_account_change_wins_and_this_one_is_busy(svc: Intake, client: httpx.AsyncClient) -> None:
    account_id = await payment_account(client)
    changed_concurrently(svc.connector_accounts.accounts, account_id, svc.connector_accounts)
    busy = await client.put(f"/v2/connector-accounts/{account_id}", json={"connector_type": "payment_processor"})
    refused(busy, 422, "HE_00", "busy")
    assert len(account_messages(svc)) == 1


async def test_a_key_without_management_cannot_change_an_account(svc: Intake, client: httpx.AsyncClient) -> None:
    account_id = await payment_account(client)
    reader = await mint(client, API_KEY, ["read_only", "payments"])
    response = await client.put(
        f"/v2/connector-accounts/{account_id}",
        json={"connector_type": "payment_processor", "disabled": True},
        headers={"api-key": reader["api_key"]},
    )
    refused(response, 403, "IR_22", "`management`")
    assert len(account_messages(svc)) == 1


# --- API keys --------------------------------------------------------------------------------------------------


async def test_a_key_is_renamed_and_described_and_keeps_its_scopes(svc: Intake, client: httpx.AsyncClient) -> None:
    key = await mint(client, API_KEY, ["payments"])
    update = {"name": "billing integration", "description": "used by the billing system's ingress"}
    response = await client.put(f"/v2/api-keys/{key['key_id']}", json=update)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert {k: answer[k] for k in ("name", "description", "scopes", "expiration")} == {
        **update,
        "scopes": ["payments"],
        "expiration": "never",
    }
    assert answer["prefix"] == key["api_key"][:12] and "api_key" not in answer
    assert svc.api_keys.keys[key["key_id"]]["name"] == "billing integration"
    # Still the same key: it keeps working.
    assert (await client.get("/v2/payments/12345_pay_x", headers={"api-key": key["api_key"]})).status_code == 404


async def test_a_key_update_cannot_change_scopes_and_a_bad_one_changes_nothing(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    key = await mint(client, API_KEY, ["read_only"])
    before = dict(svc.api_keys.keys[key["key_id"]])
    for update, mention in [
        ({"scopes": ["management"]}, "scopes"),
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"expiration": "tomorrow"}, "expiration"),
    ]:
        refused(await client.put(f"/v2/api-keys/{key['key_id']}", json=update), 400, "IR_06", mention)
    past = (svc.clock.now() - timedelta(days=1)).isoformat()
    response = await client.put(f"/v2/api-keys/{key['key_id']}", json={"name": "late", "expiration": past})
    refused(response, 400, "IR_07", "expiration", "future")
    assert svc.api_keys.keys[key["key_id"]] == before


async def test_a_new_expiration_is_one_the_changing_key_could_mint(svc: Intake, client: httpx.AsyncClient) -> None:
    expiry = svc.clock.now() + timedelta(days=1)
    short = await mint(client, API_KEY, ["management"], expiration=expiry.isoformat())
    target = await mint(client, short["api_key"], expiration=(expiry - timedelta(hours=2)).isoformat())
    as_short = {"api-key": short["api_key"]}
    path = f"/v2/api-keys/{target['key_id']}"

    refused(await client.put(path, json={"expiration": "never"}, headers=as_short), 400, "IR_07", "must not be later")
    later = (expiry + timedelta(hours=1)).isoformat()
    refused(await client.put(path, json={"expiration": later}, headers=as_short), 400, "IR_07", "must not be later")
    sooner = expiry - timedelta(hours=1)
    moved = await client.put(path, json={"expiration": sooner.isoformat()}, headers=as_short)
    assert moved.status_code == 200, moved.text
    assert svc.api_keys.keys[target["key_id"]]["expires_at"] == sooner
    # Prolonging a key gives its scopes for longer: only a key holding all of them may.
    payments = await mint(client, API_KEY, ["payments"], expiration=sooner.isoformat())
    prolong = await client.put(
        f"/v2/api-keys/{payments['key_id']}", json={"expiration": sooner.isoformat()}, headers=as_short
    )
    refused(prolong, 403, "IR_22", "lacks `payments`")
    admin = {"api-key": ADMIN_KEY, "x-merchant-id": MERCHANT}
    assert (await client.put(path, json={"expiration": "never"}, headers=admin)).json()["expiration"] == "never"


async def test_a_shortened_expiry_ends_the_key_then(svc: Intake, client: httpx.AsyncClient) -> None:
    key = await mint(client, API_KEY, ["read_only"])
    soon = svc.clock.now() + timedelta(minutes=5)
    assert (await client.put(f"/v2/api-keys/{key['key_id']}", json={"expiration": soon.isoformat()})).status_code == 200
    as_key = {"api-key": key["api_key"]}
    assert (await client.get("/v2/api-keys/list", headers=as_key)).status_code == 200
    svc.clock.advance(timedelta(minutes=6))
    refused(await client.get("/v2/api-keys/list", headers=as_key), 401, "IR_01", "expired")


async def test_a_revoked_or_another_merchants_key_reads_as_an_unknown_one(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    revoked = await mint(client, API_KEY)
    await client.delete(f"/v2/api-keys/{revoked['key_id']}")
    foreign = await mint(client, API_KEY)
    svc.api_keys.keys[foreign["key_id"]]["merchant_id"] = "merchant_2"
    unknown = await client.put("/v2/api-keys/key_unknown", json={"name": "x"})
    refused(unknown, 404, "HE_02")
    for key in (revoked, foreign):
        response = await client.put(f"/v2/api-keys/{key['key_id']}", json={"name": "taken over"})
        assert response.json() == unknown.json()
        assert svc.api_keys.keys[key["key_id"]]["name"] == "minted"


async def test_only_a_management_key_changes_keys(svc: Intake, client: httpx.AsyncClient) -> None:
    reader = await mint(client, API_KEY, ["read_only", "payments"])
    response = await client.put("/v2/api-keys/key_1", json={"name": "mine now"}, headers={"api-key": reader["api_key"]})
    refused(response, 403, "IR_22", "`management`")
    assert svc.api_keys.keys["key_1"]["name"] == "first"


async def test_the_key_list_pages_by_its_constraints_and_refuses_others(svc: Intake, client: httpx.AsyncClient) -> None:
    """`GET /v2/api-keys/list` takes Hyperswitch's `ListApiKeyConstraints` (`limit` 1 to 100, `skip`), nothing else."""
    for _ in range(3):
        await mint(client, API_KEY)
    everything = (await client.get("/v2/api-keys/list")).json()

    first = await client.get("/v2/api-keys/list", params={"limit": 2})
    rest = await client.get("/v2/api-keys/list", params={"limit": 2, "skip": 2})
    assert [k["key_id"] for k in first.json() + rest.json()] == [k["key_id"] for k in everything]
    assert len(first.json()) == 2
    for params, named in (({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"skip": -1}, "skip")):
        answer = await client.get("/v2/api-keys/list", params=params)
        assert answer.status_code == 400 and named in answer.text, (params, answer.text)
    unknown = await client.get("/v2/api-keys/list", params={"offset": 1})
    assert unknown.status_code == 400 and "offset" in unknown.text, unknown.text
