"""`profile.updated`: the state transfer of a stored profile to the dispatcher, secrets as stored (sealed)."""

from __future__ import annotations

from typing import Any

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import ProfileUpdated
from recovery_contracts.recovery import RetryAlgorithm


def profile_updated(doc: dict[str, Any]) -> Envelope[ProfileUpdated]:
    """`doc` is the profile as stored: the hash key and Standard Webhooks secrets are sealed, and stay so."""
    webhook = doc.get("webhook_details") or {}
    return Envelope[ProfileUpdated](
        type=MessageType.PROFILE_UPDATED,
        merchant_id=doc["merchant_id"],
        profile_id=doc["_id"],
        payload=ProfileUpdated(
            profile_id=doc["_id"],
            merchant_id=doc["merchant_id"],
            version=doc["version"],
            webhook_url=webhook.get("webhook_url"),
            payment_response_hash_key=(
                doc.get("payment_response_hash_key") if doc.get("enable_payment_response_hash", True) else None
            ),
            standard_webhooks_secrets=tuple(doc.get("standard_webhooks_secrets") or ()),
            custom_headers=doc.get("outgoing_webhook_custom_http_headers") or {},
            retry_algorithm=RetryAlgorithm(doc.get("revenue_recovery_retry_algorithm_type", "monitoring")),
        ),
    )
