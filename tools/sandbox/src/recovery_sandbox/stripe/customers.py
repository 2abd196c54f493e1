"""Customers and their payment methods (the test cards): created, read, attached and detached as Stripe does."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from recovery_sandbox.stripe.errors import StripeError, invalid_request, missing_param, no_such
from recovery_sandbox.stripe.params import check_params, new_id, parse_int, parse_metadata
from recovery_sandbox.stripe.state import AccountState, IdempotencySlot, Response
from recovery_sandbox.stripe.test_cards import TEST_PAYMENT_METHODS, TestCard, card_for_number

CUSTOMER_PARAMS = {
    "email",
    "name",
    "description",
    "phone",
    "metadata",
    "payment_method",
    "invoice_settings",
    "expand",
    "address",
}


def _used_up(pm_id: str) -> StripeError:
    """Stripe's refusal of a payment method detached from its customer, to charge or to attach (its words; the
    sandbox gives it no `code`)."""
    return invalid_request(
        f"The provided PaymentMethod ({pm_id}) was previously used with a PaymentIntent without Customer attachment, "
        "shared with a connected account without Customer attachment, or was detached from a Customer. It may not "
        "be used again. To use a PaymentMethod multiple times, you must attach it to a Customer first.",
        param="payment_method",
    )


class CustomerState(AccountState):
    """The account's customers and payment methods."""

    # ----- customers ---------------------------------------------------------------------------------

    def create_customer(self, params: Mapping[str, Any], slot: IdempotencySlot | None) -> Response:
        check_params(params, CUSTOMER_PARAMS)
        metadata = parse_metadata(params)
        with self._lock:
            customer_id = new_id("cus_", 14)
            invoice_settings = params.get("invoice_settings") or {}
            customer: dict[str, Any] = {
                "id": customer_id,
                "object": "customer",
                "address": None,
                "balance": 0,
                "created": int(self._clock()),
                "currency": None,
                "default_source": None,
                "delinquent": False,
                "description": params.get("description"),
                "email": params.get("email"),
                "invoice_prefix": new_id("", 8).upper(),
                "invoice_settings": {
                    "custom_fields": None,
                    "default_payment_method": None,
                    "footer": None,
                    "rendering_options": None,
                },
                "livemode": False,
                "metadata": metadata,
                "name": params.get("name"),
                "phone": params.get("phone"),
                "preferred_locales": [],
                "shipping": None,
                "tax_exempt": "none",
                "test_clock": None,
            }
            attach = params.get("payment_method")
            # Attach before storing the customer, so a bad payment method leaves no half-made customer.
            pm_id = self._attach(self._attachable(attach, "payment_method"), customer_id) if attach else None
            self.customers[customer_id] = customer
            default_pm = invoice_settings.get("default_payment_method") if isinstance(invoice_settings, dict) else None
            if default_pm:
                if default_pm == attach:
                    default_pm = pm_id
                if (
                    default_pm not in self.payment_methods
                    or self.payment_methods[default_pm]["customer"] != customer_id
                ):
                    del self.customers[customer_id]
                    raise no_such("PaymentMethod", str(default_pm), param="invoice_settings[default_payment_method]")
                customer["invoice_settings"]["default_payment_method"] = default_pm
            return self._commit(200, customer, slot)

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        with self._lock:
            if customer_id not in self.customers:
                raise no_such("customer", customer_id, param="id", status=404)
            return self.customers[customer_id]

    # ----- payment methods ---------------------------------------------------------------------------

    def _new_payment_method(self, card: TestCard, exp_month: int = 12, exp_year: int | None = None) -> str:
        pm_id = new_id("pm_")
        if exp_year is None:
            # Stripe's test aliases carry an expiry a few years out.
            exp_year = time.gmtime(self._clock()).tm_year + 3
        self.payment_methods[pm_id] = {
            "id": pm_id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": {
                "address": {
                    "city": None,
                    "country": None,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "email": None,
                "name": None,
                "phone": None,
            },
            "card": {
                "brand": card.brand,
                "checks": {
                    "address_line1_check": None,
                    "address_postal_code_check": None,
                    "cvc_check": "unchecked",
                },
                "country": card.country,
                "display_brand": card.brand,
                "exp_month": exp_month,
                "exp_year": exp_year,
                "fingerprint": hashlib.sha256(card.number.encode()).hexdigest()[:16],
                "funding": card.funding,
                "generated_from": None,
                "last4": card.last4,
                "networks": {"available": [card.brand], "preferred": None},
                "three_d_secure_usage": {"supported": True},
                "wallet": None,
            },
            "created": int(self._clock()),
            "customer": None,
            "livemode": False,
            "metadata": {},
            "type": "card",
        }
        self.card_numbers[pm_id] = card.number
        return pm_id

    def create_payment_method(self, params: Mapping[str, Any], slot: IdempotencySlot | None) -> Response:
        check_params(params, {"type", "card", "billing_details", "metadata", "expand"})
        if params.get("type") != "card":
            raise invalid_request("The sandbox supports only type=card.", param="type")
        card_params = params.get("card")
        if not isinstance(card_params, dict):
            raise missing_param("card")
        metadata = parse_metadata(params)
        token = card_params.get("token")
        with self._lock:
            if token:
                # `tok_visa`, `tok_chargeDeclined`, ... name the same cards as the pm_card_ aliases.
                alias = "pm_card_" + str(token).removeprefix("tok_")
                if alias not in TEST_PAYMENT_METHODS:
                    raise no_such("token", str(token), param="card[token]")
                pm_id = self._new_payment_method(TEST_PAYMENT_METHODS[alias])
            else:
                number = card_params.get("number")
                if not number:
                    raise missing_param("card[number]")
                exp_month = parse_int(card_params, "exp_month")
                exp_year = parse_int(card_params, "exp_year")
                if exp_month is None:
                    raise missing_param("card[exp_month]")
                if exp_year is None:
                    raise missing_param("card[exp_year]")
                if exp_year < 100:
                    exp_year += 2000
                pm_id = self._new_payment_method(card_for_number(str(number)), exp_month, exp_year)
            self.payment_methods[pm_id]["metadata"] = metadata
            return self._commit(200, self.payment_methods[pm_id], slot)

    def get_payment_method(self, pm_id: str) -> dict[str, Any]:
        with self._lock:
            if pm_id not in self.payment_methods:
                raise no_such("PaymentMethod", pm_id, param="payment_method", status=404)
            return self.payment_methods[pm_id]

    def _attachable(self, pm_ref: Any, param: str) -> str:
        """An existing pm id, or a test alias turned into a fresh one (as Stripe does)."""
        if not isinstance(pm_ref, str) or not pm_ref:
            raise missing_param(param)
        if pm_ref in TEST_PAYMENT_METHODS:
            return self._new_payment_method(TEST_PAYMENT_METHODS[pm_ref])
        if pm_ref not in self.payment_methods:
            raise no_such("PaymentMethod", pm_ref, param=param)
        return pm_ref

    def _attach(self, pm_id: str, customer_id: str) -> str:
        pm = self.payment_methods[pm_id]
        if pm_id in self.detached:
            raise _used_up(pm_id)
        if pm["customer"] not in (None, customer_id):
            raise invalid_request(
                "The payment method you provided has already been attached to a customer.",
                code="payment_method_unexpected_state",
                param="payment_method",
            )
        # Deviation from Stripe, on purpose: Stripe may reject attaching some declining cards (it verifies the
        # card); the sandbox attaches every test card so that recovery flows can charge them later.
        pm["customer"] = customer_id
        return pm_id

    def attach_payment_method(self, pm_ref: str, params: Mapping[str, Any], slot: IdempotencySlot | None) -> Response:
        check_params(params, {"customer", "expand"})
        customer_id = params.get("customer")
        if not customer_id:
            raise missing_param("customer")
        with self._lock:
            if customer_id not in self.customers:
                raise no_such("customer", str(customer_id), param="customer")
            if pm_ref not in TEST_PAYMENT_METHODS and pm_ref not in self.payment_methods:
                raise no_such("PaymentMethod", pm_ref, param="payment_method", status=404)
            pm_id = self._attach(self._attachable(pm_ref, "payment_method"), str(customer_id))
            return self._commit(200, self.payment_methods[pm_id], slot)

    def detach_payment_method(self, pm_id: str, slot: IdempotencySlot | None) -> Response:
        with self._lock:
            if pm_id not in self.payment_methods:
                raise no_such("PaymentMethod", pm_id, param="payment_method", status=404)
            pm = self.payment_methods[pm_id]
            if pm["customer"] is None:
                raise invalid_request(
                    "The payment method you provided is not attached to a customer so detachment is impossible.",
                    code="payment_method_unexpected_state",
                )
            pm["customer"] = None
            self.detached.append(pm_id)
            return self._commit(200, pm, slot)

    def customer_payment_methods(self, customer_id: str) -> list[dict[str, Any]]:
        with self._lock:
            if customer_id not in self.customers:
                raise no_such("customer", customer_id, param="customer", status=404)
            # Stripe lists newest first.
            return [pm for pm in reversed(self.payment_methods.values()) if pm["customer"] == customer_id]

    def _usable_payment_method(self, pm_ref: Any, customer_id: str | None) -> str:
        if not isinstance(pm_ref, str):
            raise invalid_request("Invalid string", param="payment_method")
        if pm_ref in TEST_PAYMENT_METHODS:
            # Stripe accepts a test alias directly and makes a fresh, unattached PaymentMethod from it.
            return self._new_payment_method(TEST_PAYMENT_METHODS[pm_ref])
        pm = self.payment_methods.get(pm_ref)
        if pm is None:
            raise no_such("PaymentMethod", pm_ref, param="payment_method")
        if pm_ref in self.detached:
            raise _used_up(pm_ref)
        if pm["customer"] is not None and pm["customer"] != customer_id:
            if customer_id is None:
                raise invalid_request(
                    "The provided PaymentMethod belongs to a Customer. Please include the Customer in the "
                    "`customer` parameter on the PaymentIntent.",
                    param="payment_method",
                )
            raise invalid_request(
                "The provided PaymentMethod belongs to a different Customer than the one on the "
                f"PaymentIntent ({customer_id}).",
                param="payment_method",
            )
        return pm_ref

    def card_of(self, pm_id: str) -> TestCard:
        return card_for_number(self.card_numbers[pm_id])
