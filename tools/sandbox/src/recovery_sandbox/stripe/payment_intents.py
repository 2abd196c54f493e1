"""PaymentIntents, created and confirmed as Stripe does, and the charge each confirmation makes: kept with the
account's ledger of every charge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recovery_sandbox.stripe.customers import CustomerState
from recovery_sandbox.stripe.errors import invalid_request, missing_param, no_such
from recovery_sandbox.stripe.params import check_params, new_id, parse_bool, parse_int, parse_metadata
from recovery_sandbox.stripe.state import IdempotencySlot, Response
from recovery_sandbox.stripe.test_cards import ChargeBehaviour, Decline, TestCard

# Stripe's minimum charge amounts in minor units (docs.stripe.com/currencies, minimum and maximum amounts).
_MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50, "inr": 50}
_MAXIMUM_AMOUNT = 99_999_999

PAYMENT_INTENT_PARAMS = {
    "amount",
    "currency",
    "customer",
    "payment_method",
    "confirm",
    "off_session",
    "metadata",
    "description",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "capture_method",
    "payment_method_types",
    "receipt_email",
    "setup_future_usage",
    "expand",
    "error_on_requires_action",
    "confirmation_method",
    "automatic_payment_methods",
    "return_url",
    "use_stripe_sdk",
    "payment_method_options",
    "mandate",
}
CONFIRM_PARAMS = {
    "payment_method",
    "off_session",
    "return_url",
    "expand",
    "error_on_requires_action",
    "payment_method_options",
    "use_stripe_sdk",
    "mandate",
    "receipt_email",
}


class PaymentIntentState(CustomerState):
    """The account's PaymentIntents, charges and ledger."""

    # ----- payment intents ---------------------------------------------------------------------------

    def create_payment_intent(
        self,
        params: Mapping[str, Any],
        slot: IdempotencySlot | None,
        forced_decline: Decline | None = None,
    ) -> Response:
        check_params(params, PAYMENT_INTENT_PARAMS)
        amount = parse_int(params, "amount")
        if amount is None:
            raise missing_param("amount")
        currency = params.get("currency")
        if not currency:
            raise missing_param("currency")
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise invalid_request(f"Invalid currency: {currency}.", code="invalid_currency", param="currency")
        currency = currency.lower()
        minimum = _MINIMUM_AMOUNT.get(currency, 1)
        if amount < minimum:
            raise invalid_request(
                f"Amount must be at least {minimum} in the currency's minor unit ({currency}).",
                code="amount_too_small",
                param="amount",
            )
        if amount > _MAXIMUM_AMOUNT:
            raise invalid_request("Amount must be no more than 99999999.", code="amount_too_large", param="amount")
        confirm = parse_bool(params, "confirm")
        off_session = parse_bool(params, "off_session")
        if off_session and not confirm:
            raise invalid_request("You can only use `off_session` when `confirm=true`.", param="off_session")
        if params.get("capture_method") not in (None, "automatic", "automatic_async"):
            raise invalid_request("The sandbox supports only automatic capture.", param="capture_method")
        metadata = parse_metadata(params)
        with self._lock:
            customer_id = params.get("customer") or None
            if customer_id is not None and customer_id not in self.customers:
                raise no_such("customer", str(customer_id), param="customer")
            pm_ref = params.get("payment_method") or None
            pm_id = self._usable_payment_method(pm_ref, customer_id) if pm_ref else None
            if confirm and pm_id is None:
                raise invalid_request(
                    "You cannot confirm this PaymentIntent because it's missing a payment method. You can "
                    "either update the PaymentIntent with a payment method and then confirm it again, or "
                    "confirm it again directly with a payment method.",
                    code="payment_intent_unexpected_state",
                )
            pi_id = new_id("pi_")
            intent: dict[str, Any] = {
                "id": pi_id,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_details": {"tip": {}},
                "amount_received": 0,
                "application": None,
                "application_fee_amount": None,
                "automatic_payment_methods": None,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": params.get("capture_method") or "automatic_async",
                "client_secret": f"{pi_id}_secret_{new_id('', 25)}",
                "confirmation_method": params.get("confirmation_method") or "automatic",
                "created": int(self._clock()),
                "currency": currency,
                "customer": customer_id,
                "description": params.get("description"),
                "invoice": None,
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": metadata,
                "next_action": None,
                "on_behalf_of": None,
                "payment_method": pm_id,
                "payment_method_configuration_details": None,
                "payment_method_options": {
                    "card": {
                        "installments": None,
                        "mandate_options": None,
                        "network": None,
                        "request_three_d_secure": "automatic",
                    }
                },
                "payment_method_types": ["card"],
                "processing": None,
                "receipt_email": params.get("receipt_email"),
                "review": None,
                "setup_future_usage": params.get("setup_future_usage"),
                "shipping": None,
                "source": None,
                "statement_descriptor": params.get("statement_descriptor"),
                "statement_descriptor_suffix": params.get("statement_descriptor_suffix"),
                "status": "requires_confirmation" if pm_id else "requires_payment_method",
                "transfer_data": None,
                "transfer_group": None,
            }
            self.payment_intents[pi_id] = intent
            if not confirm:
                return self._commit(200, intent, slot)
            return self._confirm(intent, off_session, slot, forced_decline)

    def confirm_payment_intent(
        self,
        pi_id: str,
        params: Mapping[str, Any],
        slot: IdempotencySlot | None,
        forced_decline: Decline | None = None,
    ) -> Response:
        check_params(params, CONFIRM_PARAMS)
        off_session = parse_bool(params, "off_session")
        with self._lock:
            intent = self.payment_intents.get(pi_id)
            if intent is None:
                raise no_such("payment_intent", pi_id, param="intent", status=404)
            if intent["status"] not in (
                "requires_payment_method",
                "requires_confirmation",
                "requires_action",
            ):
                raise invalid_request(
                    f"This PaymentIntent's status is {intent['status']}, so it cannot be confirmed.",
                    code="payment_intent_unexpected_state",
                )
            if params.get("payment_method"):
                intent["payment_method"] = self._usable_payment_method(params["payment_method"], intent["customer"])
            if intent["payment_method"] is None:
                raise invalid_request(
                    "You cannot confirm this PaymentIntent because it's missing a payment method.",
                    code="payment_intent_unexpected_state",
                )
            return self._confirm(intent, off_session, slot, forced_decline)

    def _confirm(
        self,
        intent: dict[str, Any],
        off_session: bool,
        slot: IdempotencySlot | None,
        forced_decline: Decline | None,
    ) -> Response:
        pm_id: str = intent["payment_method"]
        card = self.card_of(pm_id)
        decline = forced_decline
        if decline is None and card.behaviour is ChargeBehaviour.DECLINE:
            decline = card.decline
        if decline is None and card.behaviour is ChargeBehaviour.REQUIRE_AUTHENTICATION:
            if not off_session:
                # On-session the customer could complete 3-D Secure; nothing is charged until then.
                intent["status"] = "requires_action"
                intent["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {"type": "three_d_secure_redirect"},
                }
                return self._commit(200, intent, slot)
            decline = card.decline
        charge = self._record_charge(intent, card, decline, slot)
        intent["latest_charge"] = charge["id"]
        if decline is None:
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
            intent["last_payment_error"] = None
            intent["next_action"] = None
            return self._commit(200, intent, slot)
        error: dict[str, Any] = {
            "charge": charge["id"],
            "code": decline.code,
            "decline_code": decline.decline_code,
            "doc_url": "https://docs.stripe.com/error-codes/" + decline.code.replace("_", "-"),
            "message": decline.message,
        }
        if decline.advice_code is not None:
            error["advice_code"] = decline.advice_code
        if decline.network_decline_code is not None:
            error["network_decline_code"] = decline.network_decline_code
        if decline.param is not None:
            error["param"] = decline.param
        error["payment_method"] = self.payment_methods[pm_id]
        error["type"] = "card_error"
        # After a failed confirmation Stripe detaches the payment method from the intent and keeps it only in
        # last_payment_error, leaving the intent ready for another one.
        intent["status"] = "requires_payment_method"
        intent["payment_method"] = None
        intent["next_action"] = None
        intent["last_payment_error"] = error
        top = {k: v for k, v in error.items() if k not in ("payment_method",)}
        body = {"error": {**top, "payment_intent": intent, "payment_method": self.payment_methods[pm_id]}}
        body["error"]["request_log_url"] = None
        return self._commit(402, body, slot)

    def _record_charge(
        self, intent: dict[str, Any], card: TestCard, decline: Decline | None, slot: IdempotencySlot | None
    ) -> dict[str, Any]:
        charge_id = new_id("ch_")
        succeeded = decline is None
        pm = self.payment_methods[intent["payment_method"]]
        now = int(self._clock())
        charge = {
            "id": charge_id,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if succeeded else 0,
            "amount_refunded": 0,
            "balance_transaction": new_id("txn_") if succeeded else None,
            "captured": succeeded,
            "created": now,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "description": intent["description"],
            "disputed": False,
            "failure_code": None if decline is None else decline.code,
            "failure_message": None if decline is None else decline.message,
            "livemode": False,
            "metadata": intent["metadata"],
            "outcome": {
                "network_status": "approved_by_network" if succeeded else "declined_by_network",
                "reason": None if decline is None else decline.decline_code,
                "risk_level": "normal",
                "seller_message": "Payment complete." if succeeded else "The bank did not return any further details.",
                "type": "authorized" if succeeded else "issuer_declined",
            },
            "paid": succeeded,
            "payment_intent": intent["id"],
            "payment_method": pm["id"],
            "payment_method_details": {
                "card": {
                    "brand": card.brand,
                    "country": card.country,
                    "exp_month": pm["card"]["exp_month"],
                    "exp_year": pm["card"]["exp_year"],
                    "funding": card.funding,
                    "last4": card.last4,
                    "network": card.brand,
                    "network_transaction_id": new_id("", 15) if succeeded else None,
                },
                "type": "card",
            },
            "refunded": False,
            "status": "succeeded" if succeeded else "failed",
        }
        self.charges[charge_id] = charge
        self.ledger.append(
            {
                "sequence": len(self.ledger) + 1,
                "payment_intent": intent["id"],
                "charge": charge_id,
                "amount": intent["amount"],
                "currency": intent["currency"],
                "customer": intent["customer"],
                "payment_method": pm["id"],
                "status": charge["status"],
                "decline_code": None if decline is None else decline.decline_code,
                "code": None if decline is None else decline.code,
                "idempotency_key": slot.key if slot is not None else None,
                "metadata": dict(intent["metadata"]),
                "created": now,
                "created_at": self._clock(),
            }
        )
        return charge

    def get_payment_intent(self, pi_id: str) -> dict[str, Any]:
        with self._lock:
            if pi_id not in self.payment_intents:
                raise no_such("payment_intent", pi_id, param="intent", status=404)
            return self.payment_intents[pi_id]

    def get_charge(self, charge_id: str) -> dict[str, Any]:
        with self._lock:
            if charge_id not in self.charges:
                raise no_such("charge", charge_id, param="id", status=404)
            return self.charges[charge_id]

    def payment_intents_newest_first(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self.payment_intents.values()))

    def ledger_entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self.ledger]
