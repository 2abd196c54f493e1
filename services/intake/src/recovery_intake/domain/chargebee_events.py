"""Chargebee's webhook events as recovery paths (https://apidocs.chargebee.com/docs/api/events,
https://www.chargebee.com/docs/2.0/webhook_settings.html): authenticated by the basic auth configured on the
webhook; `payment_failed` starts or updates the invoice's recovery from `content.transaction` and
`content.invoice`, `payment_succeeded` stops it as paid elsewhere, `invoice_deleted` cancels it, and
`invoice_updated` acts on the invoice's new status (voided: cancelled; paid: paid elsewhere). Pure.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate

from .billing_events import BillingEvent, FailedCard, decline, failed_payment_request, gateway_references
from .deliveries import EventRefused, RefusalKind

CHARGEBEE_ACTIONS = {
    "payment_failed": RecoveryAction.SCHEDULE_FAILED_PAYMENT,
    "payment_succeeded": RecoveryAction.SUCCESS_PAYMENT_EXTERNAL,
    "invoice_deleted": RecoveryAction.CANCEL_INVOICE,
}
# `invoice_updated` comes with any change to an invoice, a void among them (Chargebee's *Void an invoice*: "Invoice
# Updated event will be triggered"); it acts on the invoice's status only. Voided: nothing may be collected for it
# any more, the recovery is cancelled. Paid (a payment or a write-off recorded at Chargebee): paid elsewhere. Any
# other change (an address, a credit applied, still `payment_due`) is ignored.
INVOICE_UPDATED = "invoice_updated"
INVOICE_STATUS_ACTIONS = {
    "voided": RecoveryAction.CANCEL_INVOICE,
    "paid": RecoveryAction.SUCCESS_PAYMENT_EXTERNAL,
}

# Chargebee's invoice statuses that still await payment: `payment_due` (its payment attempts are going on) and
# `not_paid` (they are over, the invoice still open). `paid`, `voided`, and the not-yet-due `posted` and `pending`
# start no recovery.
OWED_STATUSES = frozenset({"payment_due", "not_paid"})

_CARD_NETWORKS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "american_express": "AmericanExpress",
    "discover": "Discover",
    "diners_club": "DinersClub",
    "jcb": "JCB",
}


def chargebee_site(account: dict[str, Any]) -> str | None:
    """The account's Chargebee site, where `/api/v2/...` is served: `feature_metadata.revenue_recovery.
    record_back_url` (the record back's base too); None when it has none."""
    recovery = (account.get("feature_metadata") or {}).get("revenue_recovery") or {}
    site = recovery.get("record_back_url")
    return site if isinstance(site, str) and site else None


def chargebee_invoice_owed(invoice: dict[str, Any] | None) -> bool:
    """Whether the invoice as read still awaits payment (`OWED_STATUSES`; None: Chargebee has no such invoice). A
    `payment_failed` delivered after the invoice was paid or voided (Chargebee retries a webhook it got no 2xx for,
    possibly after a later event) finds it so when it is read, and starts nothing: the stop event that came first
    found no recovery to end."""
    return invoice is not None and invoice.get("status") in OWED_STATUSES and not invoice.get("deleted")


def verify_basic_auth(header: str | None, username: str, password: str) -> None:
    """`Authorization: Basic base64(username:password)` as configured on the Chargebee webhook (the account's
    `connector_webhook_details.merchant_secret` is the user name, `additional_secret` the password)."""
    scheme, _, credential = (header or "").partition(" ")
    if scheme.lower() != "basic" or not credential:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, "no basic auth credentials")
    try:
        given = base64.b64decode(credential.strip(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise EventRefused(RefusalKind.UNAUTHENTICATED, "malformed basic auth credentials") from error
    if not hmac.compare_digest(given, f"{username}:{password}".encode()):
        raise EventRefused(RefusalKind.UNAUTHENTICATED, "basic auth credentials do not match the account's")


def parse_chargebee_event(payload: bytes) -> tuple[BillingEvent, dict[str, Any]]:
    """The event and its `content`."""
    try:
        event = json.loads(payload)
        event_id, event_type, content = event["id"], event["event_type"], event["content"]
    except (ValueError, KeyError, TypeError) as error:
        raise EventRefused(RefusalKind.INVALID, f"not a Chargebee event: {error}") from error
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not isinstance(content, dict):
        raise EventRefused(RefusalKind.INVALID, "not a Chargebee event: id, event_type or content malformed")
    invoice = _object(content, "invoice")
    action = (
        INVOICE_STATUS_ACTIONS.get(str(invoice.get("status")))
        if event_type == INVOICE_UPDATED
        else CHARGEBEE_ACTIONS.get(event_type)
    )
    invoice_id = invoice.get("id") if isinstance(invoice.get("id"), str) else None
    if invoice_id is None:
        # A transaction names its invoice in `linked_invoices` when the event carries no invoice.
        transaction = _object(content, "transaction")
        linked = transaction.get("linked_invoices") or []
        if linked and isinstance(linked[0], dict) and isinstance(linked[0].get("invoice_id"), str):
            invoice_id = linked[0]["invoice_id"]
    if action is not None and invoice_id is None:
        raise EventRefused(RefusalKind.INVALID, f"{event_type} without an invoice")
    return BillingEvent("chargebee", event_id, event_type, invoice_id, action), content


def chargebee_recovery_request(
    content: dict[str, Any], *, billing_account_id: str, payment_account_id: str
) -> RecoveryPaymentsCreate:
    transaction: dict[str, Any] = content.get("transaction") or {}
    invoice: dict[str, Any] = content.get("invoice") or {}
    card: dict[str, Any] = content.get("card") or {}
    customer, token = gateway_references(transaction.get("reference_number"), "transaction.reference_number")
    return failed_payment_request(
        invoice_id=invoice.get("id") or transaction["linked_invoices"][0]["invoice_id"],
        order_amount=transaction.get("amount") or invoice.get("amount_due") or 0,
        currency=str(transaction.get("currency_code") or invoice.get("currency_code") or "USD"),
        connector_transaction_id=transaction.get("id_at_gateway"),
        customer_id=customer,
        card=FailedCard(
            token=token,
            funding=card.get("funding_type"),
            exp_month=card.get("expiry_month"),
            exp_year=card.get("expiry_year"),
            last4=card.get("last4"),
            network=_CARD_NETWORKS.get(str(card.get("card_type") or "")),
        ),
        billing_started_at=invoice.get("date"),
        transaction_created_at=transaction.get("date"),
        error=decline(transaction.get("error_code"), transaction.get("error_text")),
        billing_account_id=billing_account_id,
        payment_account_id=payment_account_id,
    )


def _object(content: dict[str, Any], name: str) -> dict[str, Any]:
    found = content.get(name)
    return found if isinstance(found, dict) else {}
