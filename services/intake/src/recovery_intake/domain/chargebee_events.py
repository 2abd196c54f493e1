"""Chargebee's webhook events as recovery paths (https://apidocs.chargebee.com/docs/api/events,
https://www.chargebee.com/docs/2.0/webhook_settings.html): authenticated by the basic auth configured on the
webhook; `payment_failed` starts or updates the invoice's recovery from `content.transaction` and
`content.invoice`, `payment_succeeded` stops it as paid elsewhere, `invoice_deleted` cancels it. Pure.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate

from .billing_events import BillingEvent, EventRefused, RefusalKind, epoch_text

CHARGEBEE_ACTIONS = {
    "payment_failed": RecoveryAction.SCHEDULE_FAILED_PAYMENT,
    "payment_succeeded": RecoveryAction.SUCCESS_PAYMENT_EXTERNAL,
    "invoice_deleted": RecoveryAction.CANCEL_INVOICE,
}

_CARD_NETWORKS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "american_express": "AmericanExpress",
    "discover": "Discover",
    "diners_club": "DinersClub",
    "jcb": "JCB",
}


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
    action = CHARGEBEE_ACTIONS.get(event_type)
    invoice = _object(content, "invoice")
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


def gateway_references(transaction: dict[str, Any]) -> tuple[str, str]:
    """The customer and payment method at the payment processor: Chargebee's `transaction.reference_number`
    for a Stripe gateway is `cus_.../pm_...` (as Hyperswitch reads it)."""
    reference = str(transaction.get("reference_number") or "")
    customer, _, token = reference.partition("/")
    if not customer or not token:
        raise EventRefused(RefusalKind.INVALID, "transaction.reference_number is not <customer>/<payment method>")
    return customer, token


def chargebee_recovery_request(
    content: dict[str, Any], *, billing_account_id: str, payment_account_id: str
) -> RecoveryPaymentsCreate:
    transaction: dict[str, Any] = content.get("transaction") or {}
    invoice: dict[str, Any] = content.get("invoice") or {}
    card: dict[str, Any] = content.get("card") or {}
    customer, token = gateway_references(transaction)
    funding = card.get("funding_type")
    body: dict[str, Any] = {
        "amount_details": {
            "order_amount": transaction.get("amount") or invoice.get("amount_due") or 0,
            "currency": str(transaction.get("currency_code") or invoice.get("currency_code") or "USD").upper(),
        },
        "merchant_reference_id": invoice.get("id") or transaction["linked_invoices"][0]["invoice_id"],
        "connector_transaction_id": transaction.get("id_at_gateway"),
        "connector_customer_id": customer,
        "payment_method_type": "card",
        "payment_method_sub_type": funding if funding in ("credit", "debit") else "credit",
        "payment_method_data": {
            "primary_processor_payment_method_token": token,
            "additional_payment_method_info": {
                "card_exp_month": str(card["expiry_month"]) if card.get("expiry_month") else None,
                "card_exp_year": str(card["expiry_year"]) if card.get("expiry_year") else None,
                "last_four_digits": card.get("last4"),
                "card_network": _CARD_NETWORKS.get(str(card.get("card_type") or "")),
            },
        },
        "billing_started_at": epoch_text(invoice.get("date")),
        "transaction_created_at": epoch_text(transaction.get("date")),
        "attempt_status": "failure",
        "action": RecoveryAction.SCHEDULE_FAILED_PAYMENT.value,
        "billing_merchant_connector_id": billing_account_id,
        "payment_merchant_connector_id": payment_account_id,
    }
    if transaction.get("error_code"):
        body["error"] = {
            "code": str(transaction["error_code"]),
            "message": str(transaction.get("error_text") or transaction["error_code"]),
        }
    return RecoveryPaymentsCreate.model_validate(body)


def _object(content: dict[str, Any], name: str) -> dict[str, Any]:
    found = content.get(name)
    return found if isinstance(found, dict) else {}
