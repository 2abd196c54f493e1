"""The seed's scenario, replayed through the HTTP API: merchant to signed `payment_succeeded` webhook."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from recovery_cli import scenario

if TYPE_CHECKING:
    from recovery_cli.stack import Stack

# The sandbox keeps one account per secret key: the customer, the card and the charge must use the same one.
SANDBOX_SECRET_KEY = "sk_test_recovery_demo"
SUCCEEDING_CARD = "pm_card_visa"


class ScenarioFailed(RuntimeError):
    """A step of the scenario did not do what the seed says it does; the message says which and why."""


@dataclass(frozen=True)
class Endpoints:
    intake_url: str
    stripe_url: str
    receiver_url: str
    admin_api_key: str

    @property
    def webhook_url(self) -> str:
        return f"{self.receiver_url}/webhooks"

    @classmethod
    def of(cls, stack: Stack) -> Endpoints:
        return cls(stack.intake_url, stack.stripe_url, stack.receiver_url, stack.admin_api_key)


@dataclass(frozen=True)
class MerchantSetup:
    """What steps 1-4 of the seed leave behind: a merchant whose profile retries on the cascading ladder."""

    merchant_id: str
    profile_id: str
    api_key: str
    payment_response_hash_key: str
    standard_webhooks_secret: str | None
    payment_mca: str
    billing_mca: str

    def headers(self) -> dict[str, str]:
        return {"api-key": self.api_key, "x-merchant-id": self.merchant_id, "x-profile-id": self.profile_id}


@dataclass(frozen=True)
class ReceivedWebhook:
    """One delivery as the receiver recorded it, with the receiver's own verification of its signatures."""

    sequence: int
    path: str
    body_text: str
    body: Any
    headers: list[list[str]]
    signature_512: dict[str, Any]
    standard_webhooks: dict[str, Any]

    @property
    def signature_verified(self) -> bool:
        return self.signature_512.get("valid") is True

    @property
    def event_type(self) -> str | None:
        return self.body.get("event_type") if isinstance(self.body, dict) else None

    @property
    def object_id(self) -> str | None:
        """The payment the webhook is about: the payment object's `id`, or a dispute object's `payment_id`."""
        try:
            obj = self.body["content"]["object"]
            return str(obj["payment_id"] if "dispute_id" in obj else obj["id"])
        except (KeyError, TypeError):
            return None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ReceivedWebhook:
        text = record.get("body") or ""
        return cls(
            sequence=int(record.get("sequence", 0)),
            path=str(record.get("path", "")),
            body_text=text,
            body=record.get("json"),
            headers=record.get("headers", []),
            signature_512=record.get("signature_512") or {},
            standard_webhooks=record.get("standard_webhooks") or {},
        )


@dataclass
class ScenarioOutcome:
    setup: MerchantSetup
    customer_id: str
    payment_method_id: str
    recovery: dict[str, Any]
    webhook: ReceivedWebhook
    payment: dict[str, Any]
    charges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def payment_id(self) -> str:
        return str(self.recovery["id"])


class SeedScenario:
    """The seed's calls, one method per step, each reporting what it sent and the key result.

    The e2e tests drive the same steps (with other cards or references) through this class.
    """

    def __init__(
        self,
        endpoints: Endpoints,
        say: Callable[[str], None] = print,
        *,
        sandbox_secret_key: str = SANDBOX_SECRET_KEY,
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.say = say
        self.sandbox_secret_key = sandbox_secret_key
        self.http = client or httpx.Client(timeout=15.0)

    def close(self) -> None:
        self.http.close()

    # ---- steps 1-4: a merchant, its profile, keys and connector accounts ---------------------------------

    def create_merchant(self, merchant_name: str | None = None) -> str:
        name = merchant_name or f"demo_merchant_{uuid.uuid4().hex[:8]}"
        body = self._intake("POST", "/v2/merchant-accounts", {"merchant_name": name}, headers=self._admin(), show="id")
        return str(body["id"])

    def create_profile(self, merchant_id: str, webhook_url: str | None = None) -> dict[str, Any]:
        body = {
            "profile_name": "default",
            "return_url": "https://google.com/success",
            "webhook_details": {"webhook_url": webhook_url or self.endpoints.webhook_url},
        }
        return self._intake("POST", "/v2/profiles", body, headers=self._admin(merchant_id), show="id")

    def configure_receiver(self, hash_key: str, whsec_secret: str | None) -> None:
        config: dict[str, Any] = {"hash_key": hash_key}
        if whsec_secret is not None:
            config["whsec_secret"] = whsec_secret
        self._call("POST", f"{self.endpoints.receiver_url}/_receiver/config", json_body=config)
        self.say("    receiver now verifies with the profile's hash key and Standard Webhooks secret")

    def create_api_key(self, merchant_id: str) -> str:
        body = {"name": "demo", "expiration": "never"}
        created = self._intake("POST", "/v2/api-keys", body, headers=self._admin(merchant_id), show="key_id")
        return str(created["api_key"])

    def create_connector_accounts(self, merchant_id: str, profile_id: str, api_key: str) -> tuple[str, str]:
        headers = {"api-key": api_key, "x-merchant-id": merchant_id, "x-profile-id": profile_id}
        payment = scenario.seed_body(
            scenario.PAYMENT_CONNECTOR_ACCOUNT, api_key=self.sandbox_secret_key, profile_id=profile_id
        )
        payment_mca = str(self._intake("POST", "/v2/connector-accounts", payment, headers=headers, show="id")["id"])
        billing = scenario.seed_body(scenario.BILLING_CONNECTOR_ACCOUNT, payment_mca=payment_mca, profile_id=profile_id)
        billing_mca = str(self._intake("POST", "/v2/connector-accounts", billing, headers=headers, show="id")["id"])
        return payment_mca, billing_mca

    def switch_to_cascading(self, merchant_id: str, profile_id: str) -> None:
        body = scenario.seed_body(scenario.PROFILE_UPDATE)
        self._intake(
            "PUT",
            f"/v2/profiles/{profile_id}",
            body,
            headers={**self._admin(merchant_id), "x-profile-id": profile_id},
            show="revenue_recovery_retry_algorithm_type",
        )

    def bootstrap(self, merchant_name: str | None = None) -> MerchantSetup:
        self.say("==> 1. merchant, profile (webhooks to the receiver), API key")
        merchant_id = self.create_merchant(merchant_name)
        profile = self.create_profile(merchant_id)
        hash_key = profile.get("payment_response_hash_key")
        if not hash_key:
            raise ScenarioFailed("POST /v2/profiles returned no payment_response_hash_key")
        whsec = profile.get("standard_webhooks_secret")
        self.configure_receiver(hash_key, whsec)
        api_key = self.create_api_key(merchant_id)
        self.say("==> 2-3. connector accounts: stripe (payment processor), custombilling (billing)")
        payment_mca, billing_mca = self.create_connector_accounts(merchant_id, profile["id"], api_key)
        self.say("==> 4. profile: retry algorithm cascading")
        self.switch_to_cascading(merchant_id, profile["id"])
        return MerchantSetup(
            merchant_id=merchant_id,
            profile_id=str(profile["id"]),
            api_key=api_key,
            payment_response_hash_key=hash_key,
            standard_webhooks_secret=whsec,
            payment_mca=payment_mca,
            billing_mca=billing_mca,
        )

    # ---- step 5: a customer with a card at the Stripe sandbox -------------------------------------------

    def customer_with_card(self, card: str = SUCCEEDING_CARD) -> tuple[str, str]:
        self.say(f"==> 5. Stripe sandbox: a customer with {card} attached")
        auth = {"Authorization": f"Bearer {self.sandbox_secret_key}"}
        customer = self._call(
            "POST", f"{self.endpoints.stripe_url}/v1/customers", form={"description": "demo"}, headers=auth
        )
        attached = self._call(
            "POST",
            f"{self.endpoints.stripe_url}/v1/payment_methods/{card}/attach",
            form={"customer": customer["id"]},
            headers=auth,
        )
        self.say(f"    customer {customer['id']}, payment method {attached['id']}")
        return str(customer["id"]), str(attached["id"])

    # ---- step 6: the failed invoice payment enters recovery ---------------------------------------------

    def request_recovery(
        self,
        setup: MerchantSetup,
        customer_id: str,
        payment_method_id: str,
        **overrides: Any,
    ) -> dict[str, Any]:
        self.say("==> 6. POST /v2/payments/recovery (the seed's failed invoice payment)")
        body = scenario.seed_body(
            scenario.RECOVERY_REQUEST,
            customer_id_from_stripe=customer_id,
            payment_method_id_from_stripe=payment_method_id,
            billing_mca=setup.billing_mca,
            payment_mca=setup.payment_mca,
        )
        body.update(overrides)
        return self._intake(
            "POST", "/v2/payments/recovery", body, headers=setup.headers(), show="id", also=("intent_status",)
        )

    # ---- step 7: the retry runs and the merchant hears of it --------------------------------------------

    def wait_for_webhook(
        self, payment_id: str, event_type: str = "payment_succeeded", timeout: float = 60.0
    ) -> ReceivedWebhook:
        self.say(f"==> 7. waiting up to {timeout:.0f}s for the receiver to get {event_type} for {payment_id}")
        deadline = time.monotonic() + timeout
        seen: list[ReceivedWebhook] = []
        while True:
            seen = self.received()
            for webhook in seen:
                if webhook.event_type == event_type and webhook.object_id == payment_id:
                    self.say(f"    received delivery #{webhook.sequence} at {webhook.path}")
                    return webhook
            if time.monotonic() >= deadline:
                other = ", ".join(f"{w.event_type} for {w.object_id}" for w in seen) or "nothing"
                raise ScenarioFailed(
                    f"no {event_type} webhook for {payment_id} within {timeout:.0f}s; the receiver got: {other}"
                )
            time.sleep(0.25)

    def received(self) -> list[ReceivedWebhook]:
        records = self._call("GET", f"{self.endpoints.receiver_url}/received")
        return [ReceivedWebhook.from_record(record) for record in records]

    def payment(self, setup: MerchantSetup, payment_id: str) -> dict[str, Any]:
        payment: dict[str, Any] = self._call(
            "GET",
            f"{self.endpoints.intake_url}/v2/payments/{payment_id}",
            headers=setup.headers(),
        )
        return payment

    def wait_for_payment_status(
        self, setup: MerchantSetup, payment_id: str, status: str = "succeeded", timeout: float = 15.0
    ) -> dict[str, Any]:
        # The intent learns of the success from the same event the webhook came from: allow it a moment.
        deadline = time.monotonic() + timeout
        while True:
            payment = self.payment(setup, payment_id)
            if payment.get("status") == status or time.monotonic() >= deadline:
                self.say(f"    GET /v2/payments/{payment_id} -> status {payment.get('status')}")
                return payment
            time.sleep(0.25)

    def charges(self, customer_id: str) -> list[dict[str, Any]]:
        ledger = self._call("GET", f"{self.endpoints.stripe_url}/_sandbox/ledger")
        return [entry for entry in ledger if entry.get("customer") == customer_id]

    def run(self, timeout: float = 60.0) -> ScenarioOutcome:
        """The whole seed scenario; raises ScenarioFailed at the first step that goes wrong."""
        setup = self.bootstrap()
        customer_id, payment_method_id = self.customer_with_card()
        recovery = self.request_recovery(setup, customer_id, payment_method_id)
        webhook = self.wait_for_webhook(str(recovery["id"]), timeout=timeout)
        payment = self.wait_for_payment_status(setup, str(recovery["id"]))
        return ScenarioOutcome(
            setup=setup,
            customer_id=customer_id,
            payment_method_id=payment_method_id,
            recovery=recovery,
            webhook=webhook,
            payment=payment,
            charges=self.charges(customer_id),
        )

    # ---- HTTP ------------------------------------------------------------------------------------------

    def _admin(self, merchant_id: str | None = None) -> dict[str, str]:
        headers = {"api-key": self.endpoints.admin_api_key}
        if merchant_id is not None:
            headers["x-merchant-id"] = merchant_id
        return headers

    def _intake(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        headers: dict[str, str],
        show: str,
        also: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        # Intake answers every call with a JSON object.
        answer: dict[str, Any] = self._call(
            method, f"{self.endpoints.intake_url}{path}", json_body=body, headers=headers
        )
        shown = ", ".join(f"{key}={answer.get(key)}" for key in (show, *also))
        self.say(f"    {method} {path} -> {shown}")
        return answer

    def _call(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = self.http.request(method, url, json=json_body, data=form, headers=headers)
        except httpx.HTTPError as error:
            raise ScenarioFailed(f"{method} {url}: {type(error).__name__}: {error}") from error
        if response.status_code >= 300:
            raise ScenarioFailed(f"{method} {url} answered {response.status_code}: {response.text[:2000]}")
        try:
            return response.json()
        except ValueError as error:
            raise ScenarioFailed(f"{method} {url} answered non-JSON: {response.text[:500]}") from error
