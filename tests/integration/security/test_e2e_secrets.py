"""The seed flow end to end (four service processes), its profile with a credential in a custom webhook header,
then: no secret it created is in any service's log, and no raw MongoDB document of any service holds one in
plaintext."""

from __future__ import annotations

import json
from typing import Any

from pymongo import MongoClient

from recovery_cli.seed_scenario import SANDBOX_SECRET_KEY, Endpoints, SeedScenario
from recovery_cli.stack import Stack
from support.stack import Isolation

SERVICES = ("intake", "scheduler", "executor", "webhook-dispatcher")
ENDPOINT_TOKEN = "Bearer merchant-endpoint-credential-7f3a"


def service_logs(stack: Stack) -> dict[str, str]:
    logs = {}
    for name in stack.names:
        if name.startswith(SERVICES):
            path = stack.log_path(name)
            logs[name] = path.read_text(errors="replace") if path.exists() else ""
    return logs


def raw_documents(isolation: Isolation) -> str:
    client: MongoClient[dict[str, Any]] = MongoClient(isolation.mongodb_url)
    try:
        db = client[isolation.mongodb_database]
        return "\n".join(
            json.dumps(doc, default=lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
            for name in db.list_collection_names()
            for doc in db[name].find()
        )
    finally:
        client.close()


def test_the_seed_flow_leaves_no_secret_in_logs_or_documents(stack: Stack, isolation: Isolation) -> None:
    scenario = SeedScenario(Endpoints.of(stack), say=lambda _: None)
    # The seed's flow (`SeedScenario.run`), its profile given a custom header carrying a credential.
    setup = scenario.bootstrap()
    custom = {"outgoing_webhook_custom_http_headers": {"Authorization": ENDPOINT_TOKEN}}
    profile = f"{stack.intake_url}/v2/profiles/{setup.profile_id}"
    assert scenario.http.put(profile, headers=setup.headers(), json=custom).status_code == 200
    recovery = scenario.request_recovery(setup, *scenario.customer_with_card())
    webhook = scenario.wait_for_webhook(str(recovery["id"]), timeout=90)
    assert webhook.signature_verified
    assert ["authorization", ENDPOINT_TOKEN] in webhook.headers  # opened by the dispatcher, for the request only
    rotated = scenario.http.post(
        f"{stack.intake_url}/v2/profiles/{setup.profile_id}/webhook-secret/rotate",
        headers=setup.headers(),
        json={},
    ).json()["standard_webhooks_secret"]
    secrets = {
        "admin API key": stack.admin_api_key,
        "merchant API key": setup.api_key,
        "payment_response_hash_key": setup.payment_response_hash_key,
        "Standard Webhooks secret": setup.standard_webhooks_secret or "",
        "rotated Standard Webhooks secret": rotated,
        "connector API key": SANDBOX_SECRET_KEY,
        "custom webhook header value": ENDPOINT_TOKEN,
    }
    logs = service_logs(stack)
    assert len(logs) >= 4 and all(logs.values()), list(logs)
    documents = raw_documents(isolation)
    for what, secret in secrets.items():
        assert secret, what
        for name, text in logs.items():
            assert secret not in text, f"the {what} is in the {name} log"
        assert secret not in documents, f"the {what} is stored in plaintext"
        if secret.startswith("whsec_"):
            assert secret.removeprefix("whsec_") not in documents, what
