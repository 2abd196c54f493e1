"""A business profile as stored (signing keys, webhook password and custom header values sealed), its changes, and
`profile.updated`.

Every change raises the version by one (the repository saves it by compare-and-set on the previous one) and
emits `profile.updated`, the state transfer to the dispatcher, with the secrets sealed as stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import ProfileUpdated
from recovery_contracts.recovery import RetryAlgorithm

from .api_keys import generate_hash_key
from .sealed_fields import Transform, seal_plaintext_headers, seal_profile_secrets
from .webhook_secrets import SecretSet

Document = dict[str, Any]


@dataclass(frozen=True)
class ProfileChange:
    profile: Document
    # The version the change replaces (0: a new profile).
    expected_version: int
    message: Envelope[ProfileUpdated]


def new_profile(
    fields: Document,
    *,
    profile_id: str,
    merchant_id: str,
    webhook_secret: str,
    seal: Transform,
    now: datetime,
) -> ProfileChange:
    """`fields`: the create request's; without a hash key one is generated, as Hyperswitch does."""
    fields = {**fields}
    fields.setdefault("payment_response_hash_key", generate_hash_key())
    doc: Document = {
        "_id": profile_id,
        "merchant_id": merchant_id,
        **seal_profile_secrets(fields, seal),
        "standard_webhooks_secrets": [seal(webhook_secret)],
        "standard_webhooks_retire_at": None,
        "version": 1,
        "created_at": now,
        "modified_at": now,
    }
    _note_monitoring_choice(None, doc, now)
    return ProfileChange(doc, 0, profile_updated(doc))


def changed_profile(stored: Document, changes: Document, *, seal: Transform, now: datetime) -> ProfileChange:
    """`changes`: the update request's fields as sent (a null removes the field), secrets sealed already. Custom
    header values the profile still holds in plaintext (stored before they were sealed) are sealed now."""
    doc = seal_plaintext_headers({**stored}, seal)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    if not doc.get("payment_response_hash_key"):
        doc["payment_response_hash_key"] = seal(generate_hash_key())
    _note_monitoring_choice(stored, doc, now)
    return _next_version(stored, doc, now)


def retry_algorithm(profile: Document) -> RetryAlgorithm:
    """The profile's retry algorithm (monitoring when unset, as in Hyperswitch)."""
    return RetryAlgorithm(profile.get("revenue_recovery_retry_algorithm_type", RetryAlgorithm.MONITORING.value))


def monitoring_configured_at(profile: Document) -> datetime | None:
    """When the profile chose monitoring, the moment its threshold counts from (Hyperswitch's
    `monitoring_configured_timestamp`); None when it is not in monitoring. A profile stored before the moment was
    kept has been in monitoring since its creation, or its switch to monitoring went unrecorded: its creation."""
    if retry_algorithm(profile) is not RetryAlgorithm.MONITORING:
        return None
    at: datetime | None = profile.get("monitoring_configured_at") or profile.get("created_at")
    return at


def _note_monitoring_choice(stored: Document | None, doc: Document, now: datetime) -> None:
    """Keep when `doc` chose monitoring: now when it turns to monitoring, as before when it stays, nothing when it
    leaves it."""
    if retry_algorithm(doc) is not RetryAlgorithm.MONITORING:
        doc.pop("monitoring_configured_at", None)
    elif stored is None or retry_algorithm(stored) is not RetryAlgorithm.MONITORING:
        doc["monitoring_configured_at"] = now
    else:
        doc["monitoring_configured_at"] = monitoring_configured_at(stored)


def with_secrets(stored: Document, secret_set: SecretSet, now: datetime) -> ProfileChange:
    doc = {
        **stored,
        "standard_webhooks_secrets": list(secret_set.secrets),
        "standard_webhooks_retire_at": secret_set.retire_at,
    }
    return _next_version(stored, doc, now)


def secrets_of(stored: Document) -> SecretSet:
    return SecretSet(tuple(stored.get("standard_webhooks_secrets") or ()), stored.get("standard_webhooks_retire_at"))


def _next_version(stored: Document, doc: Document, now: datetime) -> ProfileChange:
    expected: int = stored["version"]
    doc["version"] = expected + 1
    doc["modified_at"] = now
    return ProfileChange(doc, expected, profile_updated(doc))


def profile_updated(doc: Document) -> Envelope[ProfileUpdated]:
    """`doc` is the profile as stored: the hash key, Standard Webhooks secrets and custom header values are sealed,
    and stay so."""
    webhook = doc.get("webhook_details") or {}
    return envelope_for(
        MessageType.PROFILE_UPDATED,
        ProfileUpdated(
            profile_id=doc["_id"],
            merchant_id=doc["merchant_id"],
            version=doc["version"],
            webhook_url=webhook.get("webhook_url"),
            payment_response_hash_key=(
                doc.get("payment_response_hash_key") if doc.get("enable_payment_response_hash", True) else None
            ),
            standard_webhooks_secrets=tuple(doc.get("standard_webhooks_secrets") or ()),
            custom_headers=doc.get("outgoing_webhook_custom_http_headers") or {},
            retry_algorithm=retry_algorithm(doc),
            payment_created_enabled=webhook.get("payment_created_enabled"),
            payment_succeeded_enabled=webhook.get("payment_succeeded_enabled"),
            payment_failed_enabled=webhook.get("payment_failed_enabled"),
            webhook_max_deliveries_per_second=webhook.get("max_deliveries_per_second"),
            webhook_retry_schedule_seconds=webhook.get("retry_schedule_seconds"),
        ),
        merchant_id=doc["merchant_id"],
        profile_id=doc["_id"],
    )
