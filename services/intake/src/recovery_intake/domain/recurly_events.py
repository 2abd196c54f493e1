"""Recurly's webhook notifications as recovery paths (JSON notifications of API v2021-02-25, as Hyperswitch's
Recurly connector reads them): signed with `recurly-signature`; `payment.failed` starts or updates the invoice's
recovery from the transaction it names (read at Recurly), `charge_invoice.paid` stops it as paid elsewhere,
`charge_invoice.failed` cancels it (Recurly will take no payment for the invoice any more). Pure.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from recovery_contracts.api.currency import minor_units
from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate
from recovery_runtime.connector_apis import RECURLY_API_BASE

from .billing_events import BillingEvent, FailedCard, decline, failed_payment_request, gateway_references
from .deliveries import SIGNATURE_TOLERANCE_SECONDS, EventRefused, RefusalKind, check_timed_hmac

SIGNATURE_HEADER = "recurly-signature"

RECURLY_ACTIONS = {
    "payment.failed": RecoveryAction.SCHEDULE_FAILED_PAYMENT,
    "charge_invoice.paid": RecoveryAction.SUCCESS_PAYMENT_EXTERNAL,
    "charge_invoice.failed": RecoveryAction.CANCEL_INVOICE,
}

# Recurly's `payment_method.card_type` as Hyperswitch's card network.
_CARD_NETWORKS = {
    "Visa": "Visa",
    "MasterCard": "Mastercard",
    "American Express": "AmericanExpress",
    "Discover": "Discover",
    "JCB": "JCB",
    "Diners Club": "DinersClub",
}


def recurly_api_base(account: dict[str, Any]) -> str:
    """Where the account's Recurly API is served: `feature_metadata.revenue_recovery.record_back_url` for a
    `recurly` account (as it is the site URL for `chargebee`), else Recurly's own."""
    recovery = (account.get("feature_metadata") or {}).get("revenue_recovery") or {}
    base = recovery.get("record_back_url")
    return base if isinstance(base, str) and base else RECURLY_API_BASE


def verify_recurly_signature(
    header: str | None,
    payload: bytes,
    secret: str,
    received_at: datetime,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
) -> None:
    """`recurly-signature: <unix time in milliseconds>,<hex>[,<hex>...]`, each hex an HMAC-SHA256 keyed with the
    account's secret over "<milliseconds>.<payload>"; any may match (several while Recurly rotates the secret)."""
    if not header:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, f"no {SIGNATURE_HEADER} header")
    stamp, *signatures = (part.strip() for part in header.split(","))
    if not (stamp.isascii() and stamp.isdigit()) or not signatures or not all(signatures):
        raise EventRefused(
            RefusalKind.UNAUTHENTICATED, f"{SIGNATURE_HEADER} is not <milliseconds>,<signature>[,<signature>...]"
        )
    age_seconds = received_at.timestamp() - int(stamp) / 1000
    check_timed_hmac(SIGNATURE_HEADER, stamp, signatures, payload, secret, age_seconds, tolerance_seconds)


def parse_recurly_event(payload: bytes) -> BillingEvent:
    """The event, keyed `<object_type>.<event_type>`: a `charge_invoice` event names its invoice (`id`); a
    `payment` event names only its transaction (`transaction_id`, `uuid-<uuid>` as Recurly's API takes it), whose
    invoice the handler reads."""
    try:
        event = json.loads(payload)
        object_type, event_type = event["object_type"], event["event_type"]
    except (ValueError, KeyError, TypeError) as error:
        raise EventRefused(RefusalKind.INVALID, f"not a Recurly notification: {error}") from error
    object_id, uuid = _text(event.get("id")), _text(event.get("uuid"))
    if not isinstance(object_type, str) or not isinstance(event_type, str) or not (uuid or object_id):
        raise EventRefused(
            RefusalKind.INVALID, "not a Recurly notification: object_type, event_type or uuid and id malformed"
        )
    kind = f"{object_type}.{event_type}"
    action = RECURLY_ACTIONS.get(kind)
    invoice_id = object_id if object_type == "charge_invoice" else None
    transaction_id = (f"uuid-{uuid}" if uuid else object_id) if object_type == "payment" else None
    if action is not None and invoice_id is None and transaction_id is None:
        raise EventRefused(RefusalKind.INVALID, f"{kind} without the invoice's id")
    event_id = f"{kind}:{uuid or object_id}"
    return BillingEvent("recurly", event_id, kind, invoice_id, action, transaction_id=transaction_id)


# The states of an invoice Recurly still collects (its `InvoiceMini.state` in the transaction read); `paid`,
# `failed` (its collection ended: `charge_invoice.failed` cancels a recovery) and `voided` have nothing to recover.
OWED_INVOICE_STATES = frozenset({"pending", "processing", "past_due"})


def declined_invoice_id(transaction: dict[str, Any]) -> str | None:
    """The invoice a declined transaction was charged for; None when the transaction is not a failure to recover
    (any other status, no invoice, or an invoice no longer owed: a `payment.failed` delivered after the invoice was
    paid or closed, whose transaction stays `declined` for good, starts nothing)."""
    invoice = transaction.get("invoice")
    invoice_id = invoice.get("id") if isinstance(invoice, dict) else None
    if transaction.get("status") != "declined" or not isinstance(invoice_id, str) or not invoice_id:
        return None
    state = invoice.get("state") if isinstance(invoice, dict) else None
    if state is not None and state not in OWED_INVOICE_STATES:
        return None
    return invoice_id


def recurly_recovery_request(
    transaction: dict[str, Any], *, billing_account_id: str, payment_account_id: str
) -> RecoveryPaymentsCreate | None:
    """`schedule_failed_payment` for a declined Recurly transaction (`GET /transactions/{id}`); None when it is
    not a failure to recover. Recurly writes amounts in major units (`22.5` USD, `1000` JPY): taken in the
    currency's minor units (2250, 1000), as every amount here is."""
    invoice_id = declined_invoice_id(transaction)
    if invoice_id is None:
        return None
    amount = transaction.get("amount")
    if not isinstance(amount, int | float) or isinstance(amount, bool):
        raise EventRefused(RefusalKind.INVALID, f"transaction {transaction.get('id')} has no amount")
    method = transaction.get("payment_method")
    card: dict[str, Any] = method if isinstance(method, dict) else {}
    customer, token = gateway_references(card.get("gateway_token"), "payment_method.gateway_token")
    currency = str(transaction.get("currency") or "USD")
    return failed_payment_request(
        invoice_id=invoice_id,
        order_amount=minor_units(amount, currency),
        currency=currency,
        connector_transaction_id=transaction.get("gateway_reference"),
        customer_id=customer,
        card=FailedCard(
            token=token,
            funding=card.get("funding_source"),
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
            last4=card.get("last_four"),
            network=_CARD_NETWORKS.get(str(card.get("card_type") or "")),
            card_type=card.get("funding_source"),
        ),
        billing_started_at=transaction.get("created_at"),
        transaction_created_at=transaction.get("created_at"),
        error=decline(transaction.get("status_code"), transaction.get("status_message")),
        billing_account_id=billing_account_id,
        payment_account_id=payment_account_id,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
