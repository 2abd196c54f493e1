"""A provider's webhook delivery (a billing system's, the payment connector's): whether the account its URL names
may take it, how it is authenticated, and how it is refused. Pure: no I/O, time is an argument.

The schemes themselves are the providers': Stripe's signature (domain/stripe_events.py), Chargebee's basic auth
(domain/chargebee_events.py), Recurly's signature (domain/recurly_events.py); Stripe's and Recurly's share
`check_timed_hmac`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from recovery_contracts.api.connector_accounts import ConnectorType

# Stripe retries a webhook delivery for up to three days (Stripe's docs: *Webhooks, automatic retries*): a delivery
# an ingress hands on over the broker longer after receiving it is not one the billing system would still make.
HANDED_ON_MAX_AGE = timedelta(days=3)
# How far a signature's timestamp may be from receipt before it is taken as a replay: Stripe's libraries' default
# tolerance, which Recurly's check keeps too; also how far ahead of now an ingress may say it received a delivery.
SIGNATURE_TOLERANCE_SECONDS = 300


class RefusalKind(StrEnum):
    UNAUTHENTICATED = "unauthenticated"  # bad or missing signature / credentials: 401
    NOT_FOUND = "not_found"  # no such account of that merchant and profile: 404
    INVALID = "invalid"  # not an event of the provider, or an account that cannot take one: 400


class EventRefused(Exception):
    """The delivery is refused: nothing is stored."""

    def __init__(self, kind: RefusalKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class ProviderApiError(Exception):
    """The provider's API could not be read (a billing system's invoice or transaction, the payment connector's
    PaymentIntent): nothing is applied, and the delivery is answered 503 (or tried again over the broker) so that it
    comes again."""


def check_webhook_account(
    account: dict[str, Any] | None, account_id: str, profile_id: str, connector: str, kind: ConnectorType
) -> dict[str, Any]:
    """The connector account a webhook's URL names, if it is the profile's enabled `connector` account of `kind`
    (a billing processor's for billing systems' webhooks, a payment processor's for the payment connector's)."""
    if account is None or account.get("profile_id") != profile_id:
        what = kind.value.split("_")[0]
        raise EventRefused(RefusalKind.NOT_FOUND, f"no {what} connector account {account_id} in profile {profile_id}")
    if account.get("connector_type") != kind.value:
        kind_words = kind.value.replace("_", " ")
        raise EventRefused(RefusalKind.INVALID, f"connector account {account_id} is not a {kind_words}")
    if account.get("connector_name") != connector:
        raise EventRefused(RefusalKind.INVALID, f"connector account {account_id} is not a {connector} account")
    if account.get("disabled"):
        raise EventRefused(RefusalKind.INVALID, f"connector account {account_id} is disabled")
    return account


def sealed_webhook_secret(account: dict[str, Any]) -> str:
    """`connector_webhook_details.merchant_secret` as stored (sealed, in the account's body)."""
    secret = ((account.get("body") or {}).get("connector_webhook_details") or {}).get("merchant_secret")
    if not isinstance(secret, str) or not secret:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, "the account has no connector_webhook_details.merchant_secret")
    return secret


def check_timed_hmac(
    header: str,
    stamp: str,
    signatures: Sequence[str],
    payload: bytes,
    secret: str,
    age_seconds: float,
    tolerance_seconds: int,
) -> None:
    """The scheme Stripe's and Recurly's signatures share: hex HMAC-SHA256(secret, "<stamp>.<payload>"), valid
    when any of the signatures given matches (several while a secret is rotated; compared in constant time) and
    it was made at most `tolerance_seconds` from receipt (a replay otherwise)."""
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, given) for given in signatures):
        raise EventRefused(RefusalKind.UNAUTHENTICATED, f"no {header} signature matches the payload")
    if abs(age_seconds) > tolerance_seconds:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, f"the {header} timestamp is outside the tolerance")


def check_handed_on(received_at: datetime, now: datetime) -> None:
    """A delivery an ingress handed on (`billing.event`) was received at most HANDED_ON_MAX_AGE ago and not later
    than now (give or take Stripe's tolerance for clock skew): the signature's own tolerance is measured from
    `received_at`, which the publisher states, so this bounds how old an event a publisher can make count."""
    if received_at < now - HANDED_ON_MAX_AGE:
        raise EventRefused(RefusalKind.INVALID, f"received_at {received_at.isoformat()} is more than 3 days ago")
    if received_at > now + timedelta(seconds=SIGNATURE_TOLERANCE_SECONDS):
        raise EventRefused(RefusalKind.INVALID, f"received_at {received_at.isoformat()} is in the future")


def sealed_basic_auth(account: dict[str, Any]) -> tuple[str, str]:
    """The basic auth configured on a Chargebee webhook, as stored (sealed): `merchant_secret` is the user name,
    `additional_secret` the password."""
    details = (account.get("body") or {}).get("connector_webhook_details") or {}
    username, password = details.get("merchant_secret"), details.get("additional_secret")
    if not isinstance(username, str) or not username or not isinstance(password, str) or not password:
        raise EventRefused(
            RefusalKind.UNAUTHENTICATED,
            "the account has no connector_webhook_details.merchant_secret and additional_secret (basic auth)",
        )
    return username, password


def sealed_api_key(account: dict[str, Any]) -> str:
    """`connector_account_details.api_key` as stored (sealed): the key the billing system's API is read with."""
    key = ((account.get("body") or {}).get("connector_account_details") or {}).get("api_key")
    if not isinstance(key, str) or not key:
        raise EventRefused(RefusalKind.INVALID, "the account has no connector_account_details.api_key to read with")
    return key
