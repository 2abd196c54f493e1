"""The seed's scenario end to end: four service processes, HTTP in, a verified webhook out."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from recovery_cli.scenario import WEBHOOK_SAMPLE, seed_body
from recovery_cli.seed_scenario import Endpoints, SeedScenario
from recovery_cli.stack import Stack
from recovery_contracts import schemas


def shape(value: Any) -> Any:
    """Keys, nesting and order of a JSON value, without its leaf values."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    return None


def sample_shape() -> Any:
    sample = seed_body(WEBHOOK_SAMPLE)
    return shape(sample)


def test_seed_scenario_delivers_one_signed_payment_succeeded_webhook(stack: Stack) -> None:
    scenario = SeedScenario(Endpoints.of(stack), say=lambda _: None)
    setup = scenario.bootstrap()
    customer, payment_method = scenario.customer_with_card("pm_card_visa")
    accepted = scenario.request_recovery(setup, customer, payment_method)
    assert accepted["intent_status"] == "failed"
    assert accepted["merchant_reference_id"] == "test_ffhgfewf3476f5"
    payment_id = accepted["id"]

    received = scenario.wait_for_webhook(payment_id, timeout=60)
    deliveries = httpx.get(f"{stack.receiver_url}/received").json()
    assert len(deliveries) == 1
    delivery = deliveries[0]
    body = delivery["body"].encode()
    headers = {name.lower(): value for name, value in delivery["headers"]}

    # Verified here with hashlib/hmac, independently of the code that signed it.
    expected = hmac.new(setup.payment_response_hash_key.encode(), body, hashlib.sha512).hexdigest()
    assert headers["x-webhook-signature-512"] == expected
    assert received.signature_verified

    webhook = json.loads(body)
    assert shape(webhook) == sample_shape()
    assert webhook["merchant_id"] == setup.merchant_id
    assert webhook["event_type"] == "payment_succeeded"
    assert webhook["event_id"].startswith("evt_") and len(webhook["event_id"]) == 36
    payment = webhook["content"]["object"]
    assert payment["id"] == payment_id
    assert payment["status"] == "succeeded"
    assert payment["amount"]["order_amount"] == 2250 and payment["amount"]["amount_captured"] == 2250
    assert payment["merchant_connector_id"] == setup.payment_mca
    assert payment["merchant_reference_id"] == "test_ffhgfewf3476f5"
    assert payment["connector_token_details"]["token"] == payment_method
    recovery = payment["feature_metadata"]["revenue_recovery"]
    assert recovery["total_retry_count"] == 2
    assert recovery["billing_connector_id"] == setup.billing_mca
    assert recovery["active_attempt_payment_connector_id"] == setup.payment_mca
    assert recovery["billing_connector_payment_details"] == {
        "payment_processor_token": payment_method,
        "connector_customer_id": customer,
    }
    assert recovery["first_payment_attempt_pg_error_code"] == "110"

    charges = scenario.charges(customer)
    assert len(charges) == 1 and charges[0]["status"] == "succeeded"
    assert payment["connector_transaction_id"] == charges[0]["payment_intent"]
    retrieved = scenario.wait_for_payment_status(setup, payment_id, "succeeded")
    assert retrieved["status"] == "succeeded"
    # `GET /v2/payments/{id}` answers the object as the outcome stored it: what the checked-in schema describes.
    jsonschema.validate(retrieved, json.loads((schemas.DEFAULT_DIR / "http/PaymentObject.json").read_text()))
    assert retrieved["connector_transaction_id"] == payment["connector_transaction_id"]


def test_demo_command_runs_the_scenario_and_shows_the_verified_webhook(tmp_path: Path, isolation: Any) -> None:
    """`recovery demo` as `make demo` runs it (against this test's vhost and database)."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "recovery_cli", "demo", "--run-dir", str(tmp_path / "run")],
        env={**__import__("os").environ, **isolation.service_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "signature verified" in result.stdout
