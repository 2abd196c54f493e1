"""Receivers can parse the webhook body, and it re-serialises with Hyperswitch's keys, nesting and order."""

from __future__ import annotations

import json

import pytest
from contracts_seed import SEED_DIR

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
