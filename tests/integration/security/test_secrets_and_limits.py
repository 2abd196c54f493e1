"""Secrets at rest (raw documents), secret rotation, body and rate limits, keys and profiles capped per merchant,
https-only webhook URLs."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from security_system import System, eventually

from recovery_cli.seed_scenario import SANDBOX_SECRET_KEY
from recovery_runtime.secrets import is_sealed


@pytest.fixture(scope="module")
def intake_settings() -> dict[str, Any]:
    return {
        "rate_limit_per_second": 2.0,
        "rate_limit_burst": 40,
        "max_body_bytes": 8192,
        "secret_retirement_interval_seconds": 0.2,
        "max_api_keys_per_merchant": 4,
        "max_profiles_per_merchant": 3,
    }


def raw_dump(db: Any) -> str:
    """Every document of every collection, as text (bytes bodies of outbox records decoded)."""
    parts = []
    for name in db.list_collection_names():
        for doc in db[name].find():
            parts.append(
                json.dumps(doc, default=lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
            )
    return "\n".join(parts)


def test_no_secret_is_readable_in_the_database(system: System, db: Any) -> None:
    a, b = system.a, system.b
    assert eventually(lambda: db.webhook_endpoints.count_documents({}) >= 2)
    dump = raw_dump(db)
    secrets = {
        "admin key": system.scenario.endpoints.admin_api_key,
        "connector api key": SANDBOX_SECRET_KEY,
        **{f"{t} api key": x.setup.api_key for t, x in (("a", a), ("b", b))},
        **{f"{t} hash key": x.setup.payment_response_hash_key for t, x in (("a", a), ("b", b))},
        **{f"{t} whsec": x.setup.standard_webhooks_secret or "" for t, x in (("a", a), ("b", b))},
    }
    for what, secret in secrets.items():
        assert secret and secret not in dump, f"{what} is stored in plaintext"
        # base64 of the whsec key bytes too
        assert secret.removeprefix("whsec_") not in dump, what
    endpoint = db.webhook_endpoints.find_one({"_id": a.setup.profile_id})
    assert is_sealed(endpoint["hash_key"]) and all(is_sealed(s) for s in endpoint["whsec_secrets"])
    stored = db.connector_accounts.find_one({"_id": a.setup.payment_mca})
    assert is_sealed(stored["body"]["connector_account_details"]["api_key"])


def test_responses_show_secrets_only_where_hyperswitch_does(system: System) -> None:
    a = system.a
    profile = system.call("GET", f"/v2/profiles/{a.setup.profile_id}", a.headers()).json()
    assert profile["payment_response_hash_key"] == a.setup.payment_response_hash_key
    account = system.call("GET", f"/v2/connector-accounts/{a.setup.payment_mca}", a.headers()).json()
    shown = account["connector_account_details"]["api_key"]
    assert shown != SANDBOX_SECRET_KEY and "*" in shown and len(shown) == len(SANDBOX_SECRET_KEY)


def test_rotating_the_webhook_secret_signs_with_both_until_the_overlap_ends(system: System, db: Any) -> None:
    b = system.b
    before = db.profiles.find_one({"_id": b.setup.profile_id})["version"]
    rotated = system.call("POST", f"/v2/profiles/{b.setup.profile_id}/webhook-secret/rotate", b.headers(), {})
    assert rotated.status_code == 200, rotated.text
    answer = rotated.json()
    assert answer["standard_webhooks_secret"].startswith("whsec_")
    assert answer["standard_webhooks_secret"] != b.setup.standard_webhooks_secret
    assert answer["active_secrets"] == 2 and answer["previous_secrets_expire_at"]
    profile = system.call("GET", f"/v2/profiles/{b.setup.profile_id}", b.headers()).json()
    assert profile["standard_webhooks_secret"] == answer["standard_webhooks_secret"]
    # The dispatcher's projection gets both (sealed): it signs with every secret in the list.
    assert eventually(
        lambda: len((db.webhook_endpoints.find_one({"_id": b.setup.profile_id}) or {}).get("whsec_secrets", [])) == 2
    )
    short = system.call(
        "POST", f"/v2/profiles/{b.setup.profile_id}/webhook-secret/rotate", b.headers(), {"overlap_seconds": 1}
    ).json()
    assert short["active_secrets"] == 3
    # Intake retires the previous secrets when the overlap ends, and tells the dispatcher.
    assert eventually(lambda: len(db.profiles.find_one({"_id": b.setup.profile_id})["standard_webhooks_secrets"]) == 1)
    assert eventually(lambda: len(db.webhook_endpoints.find_one({"_id": b.setup.profile_id})["whsec_secrets"]) == 1)
    assert db.profiles.find_one({"_id": b.setup.profile_id})["version"] >= before + 3


def test_a_body_over_the_limit_is_refused_with_413(system: System) -> None:
    a = system.a
    big = {"profile_name": "x", "metadata": {"blob": "y" * 10_000}}
    response = system.call("POST", "/v2/profiles", a.headers(), big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "RR_02"

    def chunks() -> Any:
        for _ in range(20):
            yield b" " * 1000

    chunked = httpx.post(f"{system.intake_url}/v2/profiles", content=chunks(), headers=a.headers(), timeout=30)
    assert chunked.status_code == 413


def test_webhook_urls_must_be_https_outside_the_development_allow_list(system: System) -> None:
    a = system.a
    body = {"profile_name": "p", "webhook_details": {"webhook_url": "http://merchant.example/hooks"}}
    refused = system.call("POST", "/v2/profiles", a.headers(), body)
    assert refused.status_code == 422 and "https" in refused.json()["error"]["message"]
    body["webhook_details"]["webhook_url"] = "https://merchant.example/hooks"
    assert system.call("POST", "/v2/profiles", a.headers(), body).status_code == 200


def test_keys_and_profiles_are_capped_per_merchant(system: System) -> None:
    b = system.b

    def create_key() -> httpx.Response:
        return system.call("POST", "/v2/api-keys", b.headers(), {"name": "more", "expiration": "never"})

    # B has the key and the profile the set-up made: 3 more keys, 2 more profiles reach the caps.
    created = [create_key() for _ in range(3)]
    assert [r.status_code for r in created] == [200, 200, 200], created[-1].text
    over = create_key()
    assert over.status_code == 400 and over.json()["error"]["code"] == "IR_16"
    assert "MAX_API_KEYS_PER_MERCHANT=4" in over.json()["error"]["message"]
    assert system.call("DELETE", f"/v2/api-keys/{created[0].json()['key_id']}", b.headers()).status_code == 200
    assert create_key().status_code == 200

    profiles = [system.call("POST", "/v2/profiles", b.headers(), {"profile_name": f"p{n}"}) for n in range(3)]
    assert [r.status_code for r in profiles] == [200, 200, 400]
    assert "MAX_PROFILES_PER_MERCHANT=3" in profiles[-1].json()["error"]["message"]
    # A's own count is A's: the caps are per merchant.
    assert system.call("POST", "/v2/api-keys", system.a.headers(), {"name": "a", "expiration": "never"}).is_success


def test_a_second_api_key_header_buys_no_fresh_rate_limit_bucket(system: System) -> None:
    """Reproduced before: a valid key plus a random second `api-key` got a new bucket per request (the limiter
    read the last header, the authentication the first), so none of 60 requests was limited."""
    a = system.a
    answers = [
        httpx.get(
            f"{system.intake_url}/v2/api-keys/list",
            headers=[*a.headers().items(), ("api-key", f"snd_{uuid.uuid4().hex}")],
            timeout=30,
        )
        for _ in range(60)
    ]
    assert {r.status_code for r in answers} == {400}, {r.status_code for r in answers}
    assert "api-key (header)" in answers[0].json()["error"]["message"]


def test_a_key_over_its_rate_gets_429_with_retry_after(system: System) -> None:
    a = system.a
    # Eight at a time until one is limited: the burst (40) goes faster than the refill (2 per second) brings
    # tokens back, however slowly a loaded machine answers each request.
    limited: list[httpx.Response] = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(40):
            batch = pool.map(lambda _: system.call("GET", "/v2/api-keys/list", a.headers()), range(8))
            limited = [r for r in batch if r.status_code == 429]
            if limited:
                break
    assert limited, "no request was rate limited"
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"]["code"] == "RR_01"
    # Another key has its own bucket.
    assert system.call("GET", "/v2/api-keys/list", system.b.headers()).status_code == 200
