"""A billing system's webhook event, verified, as one of the recovery paths intake already has.

Stripe Billing (https://docs.stripe.com/webhooks#verify-manually, https://docs.stripe.com/api/invoices/object):
`invoice.payment_failed` starts or updates the invoice's recovery (`schedule_failed_payment`), `invoice.paid`
stops it as paid elsewhere (`success_payment_external`), `invoice.voided` and `invoice.marked_uncollectible`
cancel it (`cancel_invoice`); any other type is acknowledged and ignored. Pure: no I/O, time is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from recovery_contracts.api.connector_accounts import ConnectorType
from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate
from recovery_contracts.recovery import RecoveryPayment

# Stripe's libraries refuse a signature older than this (their default tolerance).
STRIPE_TOLERANCE_SECONDS = 300
# What `billing_account_reference` maps the payment account to for Stripe Billing (as Hyperswitch does).
STRIPEBILLING_REFERENCE = "stripebilling"

# Stripe retries a webhook delivery for up to three days (Stripe's docs: *Webhooks, automatic retries*): a delivery
# an ingress hands on over the broker longer after receiving it is not one the billing system would still make.
HANDED_ON_MAX_AGE = timedelta(days=3)

# Billing connectors whose webhooks `POST /v2/webhooks/recovery/...` takes.
WEBHOOK_CONNECTORS = frozenset({"stripebilling", "chargebee", "recurly"})

STRIPE_ACTIONS = {
    "invoice.payment_failed": RecoveryAction.SCHEDULE_FAILED_PAYMENT,
    "invoice.paid": RecoveryAction.SUCCESS_PAYMENT_EXTERNAL,
    "invoice.voided": RecoveryAction.CANCEL_INVOICE,
    "invoice.marked_uncollectible": RecoveryAction.CANCEL_INVOICE,
}

_CARD_NETWORKS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "AmericanExpress",
    "discover": "Discover",
    "diners": "DinersClub",
    "jcb": "JCB",
    "unionpay": "UnionPay",
    "cartes_bancaires": "CartesBancaires",
    "interac": "Interac",
}


class RefusalKind(StrEnum):
    UNAUTHENTICATED = "unauthenticated"  # bad or missing signature / credentials: 401
    NOT_FOUND = "not_found"  # no such billing account of that merchant and profile: 404
    INVALID = "invalid"  # not an event of the provider, or an account that cannot take one: 400


class EventRefused(Exception):
    """The delivery is refused: nothing is stored."""

    def __init__(self, kind: RefusalKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class BillingApiError(Exception):
    """The billing system's API could not be read (the invoice, the transaction): nothing is applied, and the
    delivery is answered 5xx (or tried again over the broker) so that it comes again."""


@dataclass(frozen=True)
class BillingEvent:
    """A verified provider event: its id (what duplicates share), its type and the invoice it is about."""

    connector: str
    event_id: str
    event_type: str
    invoice_id: str | None
    action: RecoveryAction | None  # None: a type this system ignores
    # The billing system's transaction to read for the invoice, when the event names only that (Recurly's
    # `payment.failed`): as the billing system's API takes it in its path.
    transaction_id: str | None = None

    def message_id(self, account_id: str) -> str:
        """The id the event is applied under: the same for every delivery of it to that account."""
        digest = hashlib.sha256(f"{self.connector}:{account_id}:{self.event_id}".encode()).hexdigest()
        return f"billing_{digest[:40]}"


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


def verify_stripe_signature(
    header: str | None,
    payload: bytes,
    secret: str,
    now: datetime,
    tolerance_seconds: int = STRIPE_TOLERANCE_SECONDS,
) -> None:
    """Stripe's scheme: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, v1 = HMAC-SHA256(secret, "<t>.<payload>"),
    compared in constant time; a timestamp outside the tolerance is refused (a replay)."""
    if not header:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, "no Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, "Stripe-Signature lacks t= or v1=")
    age_seconds = now.timestamp() - timestamp
    check_timed_hmac("Stripe-Signature", str(timestamp), signatures, payload, secret, age_seconds, tolerance_seconds)


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
    if received_at > now + timedelta(seconds=STRIPE_TOLERANCE_SECONDS):
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


def parse_stripe_event(payload: bytes) -> BillingEvent:
    try:
        event = json.loads(payload)
        event_id, event_type = event["id"], event["type"]
        invoice = event["data"]["object"]
    except (ValueError, KeyError, TypeError) as error:
        raise EventRefused(RefusalKind.INVALID, f"not a Stripe event: {error}") from error
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(invoice, dict):
        raise EventRefused(RefusalKind.INVALID, "not a Stripe event: id, type or data.object malformed")
    action = STRIPE_ACTIONS.get(event_type)
    invoice_id = invoice.get("id") if invoice.get("object") == "invoice" else None
    if action is not None and not isinstance(invoice_id, str):
        raise EventRefused(RefusalKind.INVALID, f"{event_type} without an invoice in data.object")
    return BillingEvent("stripebilling", event_id, event_type, invoice_id, action)


def payment_account_for(billing_account: dict[str, Any], reference: str | None) -> str:
    """The payment connector account whose reference at the billing system is `reference`
    (`feature_metadata.revenue_recovery.billing_account_reference`); the only one when the map has one entry."""
    recovery = (billing_account.get("feature_metadata") or {}).get("revenue_recovery") or {}
    references: dict[str, str] = recovery.get("billing_account_reference") or {}
    matching = [account for account, value in references.items() if value == reference]
    if matching:
        return matching[0]
    if len(references) == 1:
        return next(iter(references))
    raise EventRefused(
        RefusalKind.INVALID, f"billing_account_reference names no payment connector account for {reference!r}"
    )


def gateway_references(reference: Any, field: str) -> tuple[str, str]:
    """The customer and payment method at the payment processor, as billing systems keep them for a Stripe
    gateway: `cus_.../pm_...` (Chargebee's `transaction.reference_number`, Recurly's
    `payment_method.gateway_token`; as Hyperswitch reads them). `field` names where it came from."""
    customer, _, token = str(reference or "").partition("/")
    if not customer or not token:
        raise EventRefused(RefusalKind.INVALID, f"{field} is not <customer>/<payment method>")
    return customer, token


def decline(code: Any, message: Any) -> dict[str, Any] | None:
    """The recovery request's `error` for a decline a billing system reports with a code (its message, else the
    code); None without a code."""
    if not code:
        return None
    return {"code": str(code), "message": str(message or code)}


def request_time(value: Any) -> str | None:
    """A billing system's time, Unix seconds (Stripe, Chargebee) or ISO 8601 text (Recurly; UTC when it names no
    offset), as the ISO 8601 the recovery request takes; None when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    else:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def stripe_recovery_request(
    invoice: dict[str, Any], *, billing_account_id: str, payment_account_id: str
) -> RecoveryPaymentsCreate:
    """`schedule_failed_payment` for a Stripe invoice read with `expand[]=charge` and `expand[]=customer`: the
    customer, the card the failed charge used (else the invoice's or the customer's default), the decline."""
    expanded = invoice.get("charge")
    charge: dict[str, Any] = expanded if isinstance(expanded, dict) else {}
    customer = invoice.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else customer
    settings = (customer.get("invoice_settings") or {}) if isinstance(customer, dict) else {}
    token = _id_of(charge.get("payment_method")) or _id_of(invoice.get("default_payment_method"))
    token = token or _id_of(settings.get("default_payment_method"))
    if not customer_id or not token:
        raise EventRefused(RefusalKind.INVALID, f"invoice {invoice.get('id')} has no customer or payment method")
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    outcome = charge.get("outcome") or {}
    # The decline code (`outcome.reason`, e.g. insufficient_funds) is what the retry rules classify; Stripe's
    # `failure_code` (card_declined) says less.
    code = outcome.get("reason") or charge.get("failure_code")
    return failed_payment_request(
        invoice_id=invoice["id"],
        order_amount=invoice.get("amount_remaining") or invoice.get("amount_due") or 0,
        currency=str(invoice.get("currency") or "usd"),
        connector_transaction_id=charge.get("id"),
        customer_id=customer_id,
        card=FailedCard(
            token=token,
            funding=card.get("funding"),
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
            last4=card.get("last4"),
            network=_CARD_NETWORKS.get(str(card.get("network") or card.get("brand") or "")),
            card_type=card.get("funding"),
        ),
        billing_started_at=invoice.get("created"),
        transaction_created_at=charge.get("created"),
        error=(
            {
                "code": code,
                "message": charge.get("failure_message") or code,
                "network_decline_code": outcome.get("network_decline_code"),
                "network_advice_code": outcome.get("network_advice_code"),
            }
            if code
            else None
        ),
        billing_account_id=billing_account_id,
        payment_account_id=payment_account_id,
    )


@dataclass(frozen=True)
class FailedCard:
    """The card a billing system's failed charge used, as its event describes it (`network` in Hyperswitch's
    words; `exp_month` and `exp_year` as the event gives them, a number or a string)."""

    token: str
    funding: str | None
    exp_month: Any
    exp_year: Any
    last4: str | None
    network: str | None
    # Hyperswitch's `card_type` (credit, debit, prepaid): Stripe's funding; Chargebee's events do not send it.
    card_type: str | None = None


def failed_payment_request(
    *,
    invoice_id: str,
    order_amount: int,
    currency: str,
    connector_transaction_id: str | None,
    customer_id: str,
    card: FailedCard,
    billing_started_at: Any,
    transaction_created_at: Any,
    error: dict[str, Any] | None,
    billing_account_id: str,
    payment_account_id: str,
) -> RecoveryPaymentsCreate:
    """`schedule_failed_payment` for an invoice payment a billing system reports failed, whichever system: the
    request a Hyperswitch billing connector builds from its event (times in Unix seconds or ISO 8601, as billing
    systems send them; a funding other than credit or debit goes as the `credit` sub-type)."""
    body: dict[str, Any] = {
        "amount_details": {"order_amount": order_amount, "currency": currency.upper()},
        "merchant_reference_id": invoice_id,
        "connector_transaction_id": connector_transaction_id,
        "connector_customer_id": customer_id,
        "payment_method_type": "card",
        "payment_method_sub_type": card.funding if card.funding in ("credit", "debit") else "credit",
        "payment_method_data": {
            "primary_processor_payment_method_token": card.token,
            "additional_payment_method_info": {
                "card_exp_month": str(card.exp_month) if card.exp_month else None,
                "card_exp_year": str(card.exp_year) if card.exp_year else None,
                "last_four_digits": card.last4,
                "card_network": card.network,
                "card_type": card.card_type,
            },
        },
        "billing_started_at": request_time(billing_started_at),
        "transaction_created_at": request_time(transaction_created_at),
        "attempt_status": "failure",
        "action": RecoveryAction.SCHEDULE_FAILED_PAYMENT.value,
        "billing_merchant_connector_id": billing_account_id,
        "payment_merchant_connector_id": payment_account_id,
    }
    if error is not None:
        body["error"] = error
    return RecoveryPaymentsCreate.model_validate(body)


def stop_request(snapshot: RecoveryPayment, action: RecoveryAction) -> RecoveryPaymentsCreate:
    """`success_payment_external` or `cancel_invoice` for an invoice whose recovery exists: its own snapshot
    with the action (only the action changes an existing recovery)."""
    return RecoveryPaymentsCreate.model_validate(
        {
            "amount_details": {"order_amount": snapshot.amount, "currency": snapshot.currency},
            "merchant_reference_id": snapshot.merchant_reference_id,
            "connector_customer_id": snapshot.connector_customer_id or "unknown",
            "payment_method_type": snapshot.payment_method_type,
            "payment_method_sub_type": snapshot.payment_method_subtype,
            "payment_method_data": {"primary_processor_payment_method_token": snapshot.tokens[0].token},
            "attempt_status": "charged" if action is RecoveryAction.SUCCESS_PAYMENT_EXTERNAL else "voided",
            "action": action.value,
            "billing_merchant_connector_id": snapshot.billing_connector_id,
            "payment_merchant_connector_id": snapshot.payment_connector_id,
        }
    )


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) and value else None
