"""A profile's custom webhook headers (`outgoing_webhook_custom_http_headers`), whose values are secrets (merchants
put their endpoint's credentials there): each value stored sealed, masked in responses, carried sealed in
`profile.updated`; a profile stored before values were sealed still answers, and is sealed on its next change."""

from __future__ import annotations

import httpx

from recovery_contracts.api.masking import mask_secret
from recovery_contracts.envelope import MessageType
from recovery_runtime.secrets import SecretBox, is_sealed

from .fakes import MERCHANT, PROFILE, SETTINGS, Intake

BOX = SecretBox.from_settings(SETTINGS)
TOKEN = "Bearer merchant-endpoint-token-1234"
HEADERS = "outgoing_webhook_custom_http_headers"


async def test_values_are_stored_and_carried_sealed_and_answered_masked(svc: Intake, client: httpx.AsyncClient) -> None:
    client.headers["x-merchant-id"] = MERCHANT
    sent = {"Authorization": TOKEN, "X-Tenant": "tenant-7"}
    response = await client.put(f"/v2/profiles/{PROFILE}", json={HEADERS: sent})
    assert response.status_code == 200, response.text
    assert response.json()[HEADERS] == {"Authorization": mask_secret(TOKEN), "X-Tenant": mask_secret("tenant-7")}

    stored = svc.profiles.profiles[PROFILE][HEADERS]
    assert list(stored) == ["Authorization", "X-Tenant"] and all(is_sealed(v) for v in stored.values())
    assert {name: BOX.open(value) for name, value in stored.items()} == sent
    [updated] = svc.publisher.envelopes(MessageType.PROFILE_UPDATED)
    assert updated.payload.custom_headers == stored
    assert TOKEN not in str(svc.profiles.profiles[PROFILE]) and TOKEN not in updated.model_dump_json()

    shown = await client.get(f"/v2/profiles/{PROFILE}")
    assert shown.json()[HEADERS] == response.json()[HEADERS]


async def test_a_new_profile_stores_its_values_sealed(svc: Intake, client: httpx.AsyncClient) -> None:
    client.headers["x-merchant-id"] = MERCHANT
    body = {"profile_name": "second", HEADERS: {"Authorization": TOKEN}}
    response = await client.post("/v2/profiles", json=body)
    assert response.status_code == 200, response.text
    assert response.json()[HEADERS] == {"Authorization": mask_secret(TOKEN)}
    stored = svc.profiles.profiles[response.json()["id"]][HEADERS]
    assert BOX.open(stored["Authorization"]) == TOKEN
    [created] = svc.publisher.envelopes(MessageType.PROFILE_UPDATED)
    assert created.payload.custom_headers == stored


async def test_a_value_that_looks_sealed_is_sealed_again_so_the_dispatcher_never_opens_a_chosen_one(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    someone_elses = BOX.seal("a secret of another field")
    client.headers["x-merchant-id"] = MERCHANT
    response = await client.put(f"/v2/profiles/{PROFILE}", json={HEADERS: {"X-Copied": someone_elses}})
    assert response.status_code == 200, response.text
    stored = svc.profiles.profiles[PROFILE][HEADERS]["X-Copied"]
    assert stored != someone_elses and BOX.open(stored) == someone_elses


async def test_a_profile_stored_with_plaintext_values_answers_masked_and_is_sealed_on_its_next_change(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    svc.profiles.profiles[PROFILE][HEADERS] = {"Authorization": TOKEN}  # stored before values were sealed
    client.headers["x-merchant-id"] = MERCHANT
    shown = await client.get(f"/v2/profiles/{PROFILE}")
    assert shown.status_code == 200, shown.text
    assert shown.json()[HEADERS] == {"Authorization": mask_secret(TOKEN)}

    renamed = await client.put(f"/v2/profiles/{PROFILE}", json={"profile_name": "renamed"})
    assert renamed.status_code == 200, renamed.text
    stored = svc.profiles.profiles[PROFILE][HEADERS]["Authorization"]
    assert is_sealed(stored) and BOX.open(stored) == TOKEN
    [updated] = svc.publisher.envelopes(MessageType.PROFILE_UPDATED)
    assert updated.payload.custom_headers == {"Authorization": stored}
    assert renamed.json()[HEADERS] == {"Authorization": mask_secret(TOKEN)}
