"""The seed flow end to end (four service processes), then: no secret it created is in any service's log, and
no raw MongoDB document of any service holds one in plaintext."""

from __future__ import annotations

import json
from typing import Any

from pymongo import MongoClient

from recovery_cli.demo import SANDBOX_SECRET_KEY, Endpoints, SeedScenario
from recovery_cli.stack import Stack
from support.stack import Isolation

SERVICES = ("intake", "scheduler", "executor", "webhook-dispatcher")


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
    outcome = scenario.run(timeout=90)
    assert outcome.webhook.signature_verified
    setup = outcome.setup
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
