"""Which fields of intake's documents are secrets, sealed at rest: profiles' signing keys, webhook password and
custom webhook header values, and connector credentials.

Pure: the sealing itself (`recovery_runtime.secrets.SecretBox`) is passed in as two functions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from recovery_runtime.secrets import is_sealed

Transform = Callable[[str], str]

# connector_account_details (every ConnectorAuthType variant) and connector_webhook_details.
CONNECTOR_SECRET_FIELDS = {
    "connector_account_details": ("api_key", "key1", "api_secret", "key2", "certificate", "private_key"),
    "connector_webhook_details": ("merchant_secret", "additional_secret"),
}


def _transform_connector_body(body: dict[str, Any], transform: Transform) -> dict[str, Any]:
    result = copy.deepcopy(body)
    for block, fields in CONNECTOR_SECRET_FIELDS.items():
        section = result.get(block)
        if not isinstance(section, dict):
            continue
        for field in fields:
            if isinstance(section.get(field), str):
                section[field] = transform(section[field])
    return result


def seal_connector_body(body: dict[str, Any], seal: Transform) -> dict[str, Any]:
    return _transform_connector_body(body, seal)


def open_connector_body(body: dict[str, Any], open_: Transform) -> dict[str, Any]:
    return _transform_connector_body(body, open_)


def sealed_connector_api_key(body: dict[str, Any]) -> str | None:
    """The account's API key as stored (sealed): what `connector-account.updated` carries."""
    details = body.get("connector_account_details") or {}
    return details.get("api_key")


# Merchants put their endpoint's credentials there (`Authorization: Bearer ...`): each value is a secret, the names
# are not. Profiles stored before the values were sealed hold them in plaintext until their next change.
CUSTOM_HEADERS = "outgoing_webhook_custom_http_headers"


def seal_profile_secrets(changes: dict[str, Any], seal: Transform) -> dict[str, Any]:
    """A profile body (create or update keys) with its secrets sealed: the hash key, the webhook password, each
    custom header value. Every value sent is sealed, one that looks sealed too: the dispatcher opens what the
    profile holds, and must never open a sealed value a merchant chose for it."""
    return _transform_profile_secrets(changes, seal, seal)


def open_profile_secrets(doc: dict[str, Any], open_: Transform) -> dict[str, Any]:
    """The stored profile with its secrets readable (for the response, which shows them as Hyperswitch does)."""
    result = _transform_profile_secrets(doc, open_, lambda value: open_(value) if is_sealed(value) else value)
    result["standard_webhooks_secrets"] = [open_(s) for s in result.get("standard_webhooks_secrets") or ()]
    return result


def seal_plaintext_headers(doc: dict[str, Any], seal: Transform) -> dict[str, Any]:
    """`doc` with the custom header values it holds in plaintext sealed (a profile stored before they were
    sealed), the sealed ones as they are."""
    headers = doc.get(CUSTOM_HEADERS)
    if not isinstance(headers, dict):
        return doc
    sealed = {name: value if is_sealed(value) else seal(value) for name, value in headers.items()}
    return {**doc, CUSTOM_HEADERS: sealed}


def _transform_profile_secrets(doc: dict[str, Any], transform: Transform, header_value: Transform) -> dict[str, Any]:
    result = copy.deepcopy(doc)
    if isinstance(result.get("payment_response_hash_key"), str):
        result["payment_response_hash_key"] = transform(result["payment_response_hash_key"])
    details = result.get("webhook_details")
    if isinstance(details, dict) and isinstance(details.get("webhook_password"), str):
        details["webhook_password"] = transform(details["webhook_password"])
    headers = result.get(CUSTOM_HEADERS)
    if isinstance(headers, dict):
        result[CUSTOM_HEADERS] = {name: header_value(value) for name, value in headers.items()}
    return result
