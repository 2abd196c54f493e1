"""What the billing systems' end-to-end tests check alike of the merchant's webhook for a recovered invoice."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from recovery_cli.billing_demo import BillingAccount
from recovery_cli.seed_scenario import ReceivedWebhook


def recovered_payment(webhook: ReceivedWebhook, setup: BillingAccount, invoice_id: str) -> dict[str, Any]:
    """The payment object of the merchant's `payment_succeeded` for the invoice, once its
    `X-Webhook-Signature-512` is checked here (HMAC-SHA512 of the body with the merchant's key) and it names the
    invoice, succeeded, through the billing connector account of `setup`."""
    key = setup.merchant.payment_response_hash_key.encode()
    expected = hmac.new(key, webhook.body_text.encode(), hashlib.sha512).hexdigest()
    assert {name.lower(): value for name, value in webhook.headers}["x-webhook-signature-512"] == expected
    payment: dict[str, Any] = webhook.body["content"]["object"]
    assert (payment["merchant_reference_id"], payment["status"]) == (invoice_id, "succeeded")
    assert payment["feature_metadata"]["revenue_recovery"]["billing_connector_id"] == setup.billing_mca
    return payment
