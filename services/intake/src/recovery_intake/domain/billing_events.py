"""A billing system's webhook event, verified, as one of the recovery paths intake already has.

Stripe Billing (https://docs.stripe.com/api/invoices/object; its envelope and signature: domain/stripe_events.py):
`invoice.payment_failed` starts or updates the invoice's recovery (`schedule_failed_payment`), `invoice.paid`
stops it as paid elsewhere (`success_payment_external`), `invoice.voided` and `invoice.marked_uncollectible`
cancel it (`cancel_invoice`); any other type is acknowledged and ignored. Pure: no I/O, time is an argument.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recovery_contracts.api.recovery import RecoveryAction, RecoveryPaymentsCreate
from recovery_contracts.recovery import RecoveryPayment

from .deliveries import EventRefused, RefusalKind
from .stripe_events import StripeEvent

# What `billing_account_reference` maps the payment account to for Stripe Billing (as Hyperswitch does).
STRIPEBILLING_REFERENCE = "stripebilling"

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


def stripe_billing_event(event: StripeEvent) -> BillingEvent:
    """What a Stripe Billing event is to recoveries: the action its type stands for, on the invoice it carries."""
    action = STRIPE_ACTIONS.get(event.event_type)
    invoice = event.data_object
    invoice_id = invoice.get("id") if invoice.get("object") == "invoice" else None
    if action is not None and not isinstance(invoice_id, str):
        raise EventRefused(RefusalKind.INVALID, f"{event.event_type} without an invoice in data.object")
    return BillingEvent("stripebilling", event.event_id, event.event_type, invoice_id, action)


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


def stripe_invoice_owed(invoice: dict[str, Any]) -> bool:
    """Whether the invoice as read still awaits payment: only an `open` one does. A `payment_failed` delivered after
    the invoice was paid, voided or marked uncollectible (Stripe redelivers an event it got no 2xx for, and may send
    it after a later one) finds it so when it is read, and starts nothing: there is nothing left to recover, and the
    stop event that came first found no recovery to end."""
    return invoice.get("status") == "open"


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
    remaining = invoice.get("amount_remaining")
    return failed_payment_request(
        invoice_id=invoice["id"],
        # What is left to pay (`amount_due` less what was paid); `amount_due` only where the field is absent.
        order_amount=remaining if remaining is not None else invoice.get("amount_due") or 0,
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
