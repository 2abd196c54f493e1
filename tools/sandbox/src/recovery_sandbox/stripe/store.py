"""The sandbox's account: customers, payment methods, PaymentIntents, charges, disputes, files, ledger, idempotency."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery_sandbox.stripe.errors import StripeError, invalid_request, missing_param, no_such, unknown_param
from recovery_sandbox.stripe.faults import Fault, FaultBook
from recovery_sandbox.stripe.test_cards import (
    TEST_PAYMENT_METHODS,
    ChargeBehaviour,
    Decline,
    TestCard,
    card_for_number,
)

_ALNUM = string.ascii_letters + string.digits
# Stripe keeps idempotency results for at least 24 hours; a key older than that starts afresh.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# Stripe's minimum charge amounts in minor units (docs.stripe.com/currencies, minimum and maximum amounts).
_MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50, "inr": 50}
_MAXIMUM_AMOUNT = 99_999_999
STATE_FILE = "stripe-sandbox.json"

Response = tuple[int, dict[str, Any]]

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


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def account_of(api_key: str) -> str:
    """Idempotency keys are scoped per account; the state file keeps a digest, never the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class IdempotencySlot:
    """Where the result of an idempotent request is saved, in the same commit as its effect."""

    scoped_key: str
    key: str
    fingerprint: str
    request_id: str


def check_params(params: Mapping[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise unknown_param(name)


def parse_int(params: Mapping[str, Any], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.lstrip("-").isdigit():
        raise invalid_request(f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name)
    return int(raw)


def parse_bool(params: Mapping[str, Any], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    if raw in ("true", "false"):
        return bool(raw == "true")
    raise invalid_request(f"Invalid boolean: {raw}", code="parameter_invalid_string_empty", param=name)


def parse_metadata(params: Mapping[str, Any], name: str = "metadata") -> dict[str, str]:
    raw = params.get(name)
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise invalid_request("Invalid object", param=name)
    if len(raw) > 50:
        raise invalid_request("Metadata can have a maximum of 50 keys.", param=name)
    for key, value in raw.items():
        if len(key) > 40:
            raise invalid_request("Metadata keys can have a maximum length of 40 characters.", param=f"{name}[{key}]")
        if len(value) > 500:
            raise invalid_request(
                "Metadata values can have a maximum length of 500 characters.", param=f"{name}[{key}]"
            )
    # An empty value unsets the key in Stripe, so it never appears on the object.
    return {k: v for k, v in raw.items() if v != ""}


class StripeState:
    """All state behind one lock; every mutation is written to the state file before it is answered."""

    def __init__(self, state_dir: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._path = state_dir / STATE_FILE if state_dir is not None else None
        self.faults = FaultBook()
        self._in_flight: set[str] = set()
        self._reset_collections()
        if self._path is not None and self._path.exists():
            self._load()

    # ----- persistence -------------------------------------------------------------------------------

    def _reset_collections(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.card_numbers: dict[str, str] = {}  # pm id -> test card number: what a charge on it does
        # Payment methods detached from their customer: Stripe refuses to charge or attach them again.
        self.detached: list[str] = []
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        # Disputes on charges (disputes.py), by id.
        self.disputes: dict[str, dict[str, Any]] = {}
        # Uploaded files (files.py), by id: the File object, its owner and its bytes' SHA-256 (never the bytes).
        self.files: dict[str, dict[str, Any]] = {}
        self.ledger: list[dict[str, Any]] = []
        self.idempotency: dict[str, dict[str, Any]] = {}

    def _load(self) -> None:
        assert self._path is not None
        saved = json.loads(self._path.read_text())
        self.customers = saved["customers"]
        self.payment_methods = saved["payment_methods"]
        self.card_numbers = saved["card_numbers"]
        self.detached = saved.get("detached", [])
        self.payment_intents = saved["payment_intents"]
        self.charges = saved["charges"]
        self.disputes = saved.get("disputes", {})
        self.files = saved.get("files", {})
        self.ledger = saved["ledger"]
        self.idempotency = saved["idempotency"]

    def _persist(self) -> None:
        if self._path is None:
            return
        document = {
            "customers": self.customers,
            "payment_methods": self.payment_methods,
            "card_numbers": self.card_numbers,
            "detached": self.detached,
            "payment_intents": self.payment_intents,
            "charges": self.charges,
            "disputes": self.disputes,
            "files": self.files,
            "ledger": self.ledger,
            "idempotency": self.idempotency,
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump(document, fh)
            fh.flush()
            # Crash tests kill the sandbox right after a charge: the charge must be on disk before the answer.
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)

    def reset(self) -> None:
        with self._lock:
            self._reset_collections()
            self.faults.clear()
            self._in_flight.clear()
            self._persist()

    def _commit(self, status: int, body: dict[str, Any], slot: IdempotencySlot | None) -> Response:
        if slot is not None:
            self.idempotency[slot.scoped_key] = {
                "fingerprint": slot.fingerprint,
                "status": status,
                "body": body,
                "created": self._clock(),
                "request_id": slot.request_id,
            }
        self._persist()
        return status, body

    # ----- idempotency -------------------------------------------------------------------------------

    def begin_idempotent(self, slot: IdempotencySlot) -> dict[str, Any] | None:
        """The saved result to replay, or None after marking the key in flight; raises on misuse."""
        with self._lock:
            saved = self.idempotency.get(slot.scoped_key)
            if saved is not None and saved["created"] < self._clock() - IDEMPOTENCY_TTL_SECONDS:
                del self.idempotency[slot.scoped_key]
                saved = None
            if saved is not None:
                if saved["fingerprint"] != slot.fingerprint:
                    raise StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{slot.key}' if you meant to "
                        "execute a different request.",
                    )
                return saved
            if slot.scoped_key in self._in_flight:
                raise StripeError(
                    409,
                    "invalid_request_error",
                    "There is currently another in-progress request using this Stripe-Idempotency-Key. "
                    "Please try again later.",
                    code="idempotency_key_in_use",
                )
            self._in_flight.add(slot.scoped_key)
            return None

    def end_idempotent(self, slot: IdempotencySlot) -> None:
        with self._lock:
            self._in_flight.discard(slot.scoped_key)

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

    def take_fault(self, *payment_methods: str | None) -> Fault | None:
        with self._lock:
            return self.faults.take(*payment_methods)

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.add(fault)

    def armed_faults(self) -> list[Fault]:
        with self._lock:
            return self.faults.list()

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
