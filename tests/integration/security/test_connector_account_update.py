"""A connector account's update reaches the executor as its creation does (`connector-account.updated` with a newer
version): the new credential sealed all the way, a disabled account held disabled where charges are decided."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pymongo.database import Database
from security_system import eventually

from recovery_cli.seed_scenario import Endpoints, SeedScenario
from recovery_executor.app import build_service as build_executor
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.secrets import SecretBox, is_sealed
from support.services import settings_for
from support.stack import Isolation

NEW_KEY = "sk_test_rotated_4242424242424242"


@pytest.fixture(scope="module")
def executor(serve: Any, module_isolation: Isolation) -> Any:
    return serve(build_executor(settings_for(ExecutorSettings, module_isolation)))


def test_an_update_reaches_the_executor_sealed_and_a_disabled_account_is_held_disabled(
    services: Endpoints, executor: Any, module_isolation: Isolation, db: Database[dict[str, Any]]
) -> None:
    setup = SeedScenario(services, say=lambda _: None).bootstrap()

    def projected() -> dict[str, Any]:
        return db.connector_credentials.find_one({"_id": setup.payment_mca}) or {}

    assert eventually(lambda: projected().get("version") == 1), projected()
    created_key = projected()["api_key"]
    update = {
        "connector_type": "payment_processor",
        "connector_account_details": {"auth_type": "HeaderKey", "api_key": NEW_KEY},
        "disabled": True,
        "merchant_id": setup.merchant_id,
    }
    url = f"{services.intake_url}/v2/connector-accounts/{setup.payment_mca}"
    answer = httpx.put(url, json=update, headers=setup.headers(), timeout=30)

    assert answer.status_code == 200, answer.text
    assert answer.json()["disabled"] is True and NEW_KEY not in answer.text
    assert eventually(lambda: projected().get("version") == 2), projected()
    held = projected()
    box = SecretBox.from_settings(settings_for(ExecutorSettings, module_isolation))
    assert held["disabled"] is True and is_sealed(held["api_key"]) and held["api_key"] != created_key
    assert box.open(held["api_key"]) == NEW_KEY
    stored = db.connector_accounts.find_one({"_id": setup.payment_mca})
    assert stored is not None and stored["version"] == 2 and NEW_KEY not in str(stored)
    # Read back through the API: the new credential, masked.
    shown = httpx.get(url, headers=setup.headers(), timeout=30).json()["connector_account_details"]["api_key"]
    assert shown == NEW_KEY[:2] + "*" * (len(NEW_KEY) - 4) + NEW_KEY[-2:]
