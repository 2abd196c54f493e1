"""A connector account as stored (credentials sealed), the rules for creating one, and `connector-account.updated`.

Credentials (`connector_account_details`, `connector_webhook_details`) are stored sealed and travel sealed.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from recovery_contracts.api.connector_accounts import ConnectorAccountCreate, ConnectorType
from recovery_contracts.api.errors import ApiError
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import ConnectorAccountUpdated

from .outbound_urls import outbound_url_problem
from .rejection import Rejection
from .sealed_fields import Transform, seal_connector_body, sealed_connector_api_key

Document = dict[str, Any]


def check_record_back_url(body: ConnectorAccountCreate, http_allowed_hosts: Collection[str]) -> None:
    recovery = body.feature_metadata.revenue_recovery if body.feature_metadata else None
    if recovery is None or recovery.record_back_url is None:
        return
    problem = outbound_url_problem(recovery.record_back_url, http_allowed_hosts)
    if problem:
        raise Rejection(
            ApiError.INVALID_REQUEST_DATA, message=f"feature_metadata.revenue_recovery.record_back_url {problem}"
        )


def billing_references(body: ConnectorAccountCreate) -> tuple[str, ...]:
    """The payment processor accounts a billing processor account names (none for a payment processor)."""
    recovery = body.feature_metadata.revenue_recovery if body.feature_metadata else None
    if body.connector_type is not ConnectorType.BILLING_PROCESSOR or recovery is None:
        return ()
    return tuple(recovery.billing_account_reference)


def check_billing_reference(referenced: str, account: Document | None, profile_id: str) -> None:
    if (
        account is None
        or account["profile_id"] != profile_id
        or (account["connector_type"] != ConnectorType.PAYMENT_PROCESSOR.value)
    ):
        raise Rejection(
            ApiError.INVALID_REQUEST_DATA,
            message=(
                "feature_metadata.revenue_recovery.billing_account_reference names "
                f"{referenced!r}, which is not a payment processor account of profile {profile_id}"
            ),
        )


def new_connector_account(
    body: ConnectorAccountCreate, *, account_id: str, merchant_id: str, seal: Transform, now: datetime
) -> tuple[Document, Envelope[ConnectorAccountUpdated]]:
    doc = {
        "_id": account_id,
        "merchant_id": merchant_id,
        "profile_id": body.profile_id,
        "connector_type": body.connector_type.value,
        "connector_name": body.connector_name.value,
        "connector_label": body.connector_label or f"{body.connector_name.value}_{body.profile_id}",
        "disabled": bool(body.disabled),
        "feature_metadata": body.feature_metadata.model_dump(mode="json") if body.feature_metadata else None,
        "body": seal_connector_body(body.model_dump(mode="json", exclude_none=True), seal),
        "version": 1,
        "created_at": now,
    }
    return doc, connector_account_updated(doc)


def connector_account_updated(doc: Document) -> Envelope[ConnectorAccountUpdated]:
    """`doc` as stored: `api_key` goes out sealed, as it is stored."""
    body = doc["body"]
    return envelope_for(
        MessageType.CONNECTOR_ACCOUNT_UPDATED,
        ConnectorAccountUpdated(
            connector_account_id=doc["_id"],
            merchant_id=doc["merchant_id"],
            profile_id=doc["profile_id"],
            version=doc["version"],
            connector_type=doc["connector_type"],
            connector_name=doc["connector_name"],
            api_key=sealed_connector_api_key(body),
            disabled=bool(doc.get("disabled")),
            revenue_recovery=(body.get("feature_metadata") or {}).get("revenue_recovery"),
        ),
        merchant_id=doc["merchant_id"],
        profile_id=doc["profile_id"],
    )
