"""A connector account as stored (credentials sealed), the rules for creating and changing one, and
`connector-account.updated`.

Credentials (`connector_account_details`, `connector_webhook_details`) are stored sealed and travel sealed. Every
change raises the version by one (the repository saves it by compare-and-set on the previous one) and emits
`connector-account.updated`, the state transfer the executor applies when its version is newer than its own.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from recovery_contracts.api.connector_accounts import ConnectorAccountCreate, ConnectorAccountUpdate, ConnectorType
from recovery_contracts.api.errors import ApiError, describe_validation_errors
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import ConnectorAccountUpdated

from .outbound_urls import outbound_url_problem
from .rejection import Rejection
from .sealed_fields import Transform, open_connector_body, seal_connector_body, sealed_connector_api_key

Document = dict[str, Any]


@dataclass(frozen=True)
class ConnectorAccountChange:
    account: Document
    # The version the change replaces (0: a new account).
    expected_version: int
    message: Envelope[ConnectorAccountUpdated]


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
) -> ConnectorAccountChange:
    doc = {
        "_id": account_id,
        "merchant_id": merchant_id,
        **_account_fields(body, seal),
        "version": 1,
        "created_at": now,
    }
    return ConnectorAccountChange(doc, 0, connector_account_updated(doc))


def updated_body(stored: Document, update: ConnectorAccountUpdate, open_: Transform) -> ConnectorAccountCreate:
    """The account as `update` leaves it, credentials readable: each field sent replaces the stored one whole
    (as Hyperswitch's update does), fields left out or null keep theirs; type, name and profile never change."""
    if update.connector_type.value != stored["connector_type"]:
        raise Rejection(
            ApiError.INVALID_REQUEST_DATA,
            message=(
                f"connector_type {update.connector_type.value!r} is not the account's ({stored['connector_type']}): "
                "the type is fixed when the account is created"
            ),
        )
    changes = update.model_dump(mode="json", exclude_none=True, exclude={"merchant_id"})
    try:
        return ConnectorAccountCreate.model_validate({**open_connector_body(stored["body"], open_), **changes})
    except ValidationError as error:
        raise Rejection(ApiError.INVALID_REQUEST_BODY, detail=describe_validation_errors(error.errors())) from error


def changed_connector_account(
    stored: Document, body: ConnectorAccountCreate, *, seal: Transform, now: datetime
) -> ConnectorAccountChange:
    """`body`: the whole account after the change (`updated_body`), sealed afresh as on creation."""
    expected: int = stored["version"]
    doc = {**stored, **_account_fields(body, seal), "version": expected + 1, "modified_at": now}
    return ConnectorAccountChange(doc, expected, connector_account_updated(doc))


def _account_fields(body: ConnectorAccountCreate, seal: Transform) -> Document:
    return {
        "profile_id": body.profile_id,
        "connector_type": body.connector_type.value,
        "connector_name": body.connector_name.value,
        "connector_label": body.connector_label or f"{body.connector_name.value}_{body.profile_id}",
        "disabled": bool(body.disabled),
        "feature_metadata": body.feature_metadata.model_dump(mode="json") if body.feature_metadata else None,
        "body": seal_connector_body(body.model_dump(mode="json", exclude_none=True), seal),
    }


def connector_account_updated(doc: Document) -> Envelope[ConnectorAccountUpdated]:
    """`doc` as stored: `api_key` goes out sealed, as it is stored."""
    body = doc["body"]
    pace = (body.get("feature_metadata") or {}).get("request_pace") or {}
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
            requests_per_second=pace.get("requests_per_second"),
            request_burst=pace.get("burst"),
        ),
        merchant_id=doc["merchant_id"],
        profile_id=doc["profile_id"],
    )
