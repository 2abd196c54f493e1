"""Receivers can parse the webhook body, and it re-serialises with Hyperswitch's keys, nesting and order."""

from __future__ import annotations

import json

import pytest
from contracts_seed import SEED_DIR

from recovery_contracts.disputes import DisputeObject
from recovery_contracts.webhooks import OutgoingWebhook

pytestmark = pytest.mark.unit


def _keys_in_order(value):
    if isinstance(value, dict):
        return [(k, _keys_in_order(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_keys_in_order(v) for v in value]
    return None


def test_sample_parses_and_reserialises_identically():
    raw = (SEED_DIR / "webhook-sample.json").read_text()
    sample = json.loads(raw)

    webhook = OutgoingWebhook.model_validate_json(raw)
    dumped = json.loads(webhook.model_dump_json())

    assert _keys_in_order(dumped) == _keys_in_order(sample)
    assert dumped == sample
    assert webhook.content.object.feature_metadata.revenue_recovery.total_retry_count == 2


def test_top_level_key_order():
    webhook = OutgoingWebhook.model_validate_json((SEED_DIR / "webhook-sample.json").read_text())
    assert list(json.loads(webhook.model_dump_json())) == [
        "merchant_id",
        "event_id",
        "event_type",
        "content",
        "timestamp",
    ]
    assert list(json.loads(webhook.model_dump_json())["content"]) == ["type", "object"]


def test_a_dispute_lost_body_parses_as_the_dispute_object_in_hyperswitchs_order():
    body = {
        "merchant_id": "cloth_seller_I7nS4iwZnxRDJtGfiNTy",
        "event_id": "evt_019925c838c877c282d3eaf5b86e9036",
        "event_type": "dispute_lost",
        "content": {
            "type": "dispute_details",
            "object": {
                "dispute_id": "dsp_4f1c2a9b7e3d5a60",
                "payment_id": "12345_pay_0199",
                "attempt_id": "12345_att_0199",
                "amount": "2250",
                "currency": "USD",
                "dispute_stage": "dispute",
                "dispute_status": "dispute_lost",
                "connector": "stripe",
                "connector_status": "lost",
                "connector_dispute_id": "dp_1Q2w3E4r5T6y",
                "connector_reason": "fraudulent",
                "connector_reason_code": None,
                "challenge_required_by": None,
                "connector_created_at": "2026-11-02T10:00:00.000Z",
                "connector_updated_at": None,
                "created_at": "2026-12-05T11:00:00.000Z",
                "profile_id": "pro_3mR8Jq2LxYp7TzWc0KdN",
                "merchant_connector_id": "mca_MbQwWzi4tFItmgYAmshC",
            },
        },
        "timestamp": "2026-12-05T11:00:00.000Z",
    }

    webhook = OutgoingWebhook.model_validate(body)

    assert isinstance(webhook.content.object, DisputeObject)
    assert _keys_in_order(json.loads(webhook.model_dump_json())) == _keys_in_order(body)
    assert json.loads(webhook.model_dump_json()) == body
