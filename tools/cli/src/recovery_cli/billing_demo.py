"""The Stripe Billing scenario: the merchant only configures; a failed invoice at Stripe becomes a recovery, the
retry's `payment_succeeded` reaches the merchant, and the invoice is marked paid at Stripe.

Steps (each against the stack's Stripe sandbox, as against Stripe):
1-4. the seed's merchant, profile, API key, payment account and cascading retries (SeedScenario.bootstrap);
5. a Stripe webhook endpoint (its `whsec_` secret) and a `stripebilling` connector account holding that secret
   and the Stripe key, then the endpoint pointed at `/v2/webhooks/recovery/{merchant}/{profile}/{account}`;
6. an invoice whose payment Stripe declines: Stripe sends `invoice.payment_failed`, signed;
7. the retry succeeds: the merchant's signed webhook, and `POST /v1/invoices/{id}/pay paid_out_of_band=true`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from recovery_cli.seed_scenario import Endpoints, MerchantSetup, ReceivedWebhook, ScenarioFailed, SeedScenario

INVOICE_EVENTS = ["invoice.payment_failed", "invoice.paid", "invoice.voided", "invoice.marked_uncollectible"]


@dataclass(frozen=True)
class BillingAccount:
    merchant: MerchantSetup
    billing_mca: str  # the billing connector account

    @property
    def webhook_path(self) -> str:
        m = self.merchant
        return f"/v2/webhooks/recovery/{m.merchant_id}/{m.profile_id}/{self.billing_mca}"


@dataclass(frozen=True)
class BillingSetup(BillingAccount):
    webhook_endpoint_id: str
    webhook_secret: str


SetupT = TypeVar("SetupT", bound=BillingAccount)
ValueT = TypeVar("ValueT")


def poll(read: Callable[[], ValueT], done: Callable[[ValueT], bool], timeout: float, interval: float = 0.2) -> ValueT:
    """`read()` until `done` says so or `timeout` passes; the last read."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class BillingScenario(Generic[SetupT]):
    """What the billing scenarios share: the failed invoice's event delivered to intake, the merchant's webhook,
    the invoice paid at the billing system. A scenario names its system, its failure event and its sandbox."""

    name: ClassVar[str]
    failed_event: ClassVar[str]

    def __init__(self, seed: SeedScenario, sandbox: str) -> None:
        self.seed = seed
        self.say = seed.say
        self.sandbox = sandbox

    def connect(self, merchant: MerchantSetup, **revenue_recovery: Any) -> SetupT:
        raise NotImplementedError

    def failed_invoice(self, amount: int = 2250) -> dict[str, Any]:
        raise NotImplementedError

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def _about(self, event: dict[str, Any], invoice_id: str) -> bool:
        """Whether the sandbox's `event` is about the invoice."""
        raise NotImplementedError

    def _invoice_line(self, invoice: dict[str, Any]) -> str:
        raise NotImplementedError

    def summary(self, setup: SetupT, invoice: dict[str, Any]) -> list[str]:
        """What the demo says of the invoice at the end and where the billing system sends its events."""
        raise NotImplementedError

    def create_account(
        self,
        merchant: MerchantSetup,
        connector_name: str,
        api_key: str,
        webhook_details: dict[str, str],
        revenue_recovery: dict[str, Any],
    ) -> str:
        """The billing connector account (`POST /v2/connector-accounts`): its id. `revenue_recovery`: its
        `feature_metadata.revenue_recovery` beyond the scenarios' 9 retries from the billing system's first."""
        body = {
            "connector_type": "billing_processor",
            "connector_name": connector_name,
            "profile_id": merchant.profile_id,
            "connector_account_details": {"auth_type": "HeaderKey", "api_key": api_key},
            "connector_webhook_details": webhook_details,
            "feature_metadata": {
                "revenue_recovery": {"max_retry_count": 9, "billing_connector_retry_threshold": 0, **revenue_recovery}
            },
        }
        account = self.seed._intake(
            "POST", "/v2/connector-accounts", body, headers=merchant.headers(), show="id", also=("connector_name",)
        )
        return str(account["id"])

    def recorded_paid(self, invoice: dict[str, Any]) -> bool:
        """Whether the billing system holds the invoice as paid by the recovery."""
        return bool(invoice["status"] == "paid")

    def delivery(self, event_type: str, invoice_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """The billing system's delivery of the invoice's `event_type` event and intake's answer (the sandbox
        records it), with the event as `event_object`."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.seed._call("GET", f"{self.sandbox}/_sandbox/events")
            events = {e["id"]: e for e in found["events"] if self._about(e, invoice_id)}
            for record in found["deliveries"]:
                if record["type"] == event_type and record["event"] in events:
                    answer = record["status"]
                    self.say(f"    {self.name} delivered {event_type} ({record['event']}): intake answered {answer}")
                    return {**record, "event_object": events[record["event"]]}
            if time.monotonic() >= deadline:
                raise ScenarioFailed(f"{self.name} delivered no {event_type} for {invoice_id} within {timeout:.0f}s")
            time.sleep(0.1)

    def wait_for_merchant_webhook(self, invoice_id: str, timeout: float = 60.0) -> ReceivedWebhook:
        self.say(f"==> 7. waiting up to {timeout:.0f}s for payment_succeeded of invoice {invoice_id}")
        deadline = time.monotonic() + timeout
        while True:
            for webhook in self.seed.received():
                obj = (webhook.body.get("content") or {}).get("object") if isinstance(webhook.body, dict) else None
                if webhook.event_type == "payment_succeeded" and (obj or {}).get("merchant_reference_id") == invoice_id:
                    self.say(
                        f"    received delivery #{webhook.sequence}, signature verified: {webhook.signature_verified}"
                    )
                    return webhook
            if time.monotonic() >= deadline:
                raise ScenarioFailed(f"no payment_succeeded for invoice {invoice_id} within {timeout:.0f}s")
            time.sleep(0.2)

    def wait_for_invoice(self, invoice_id: str, status: str = "paid", timeout: float = 30.0) -> dict[str, Any]:
        invoice = poll(lambda: self.invoice(invoice_id), lambda i: i["status"] == status, timeout)
        self.say(f"    {self.name} invoice {invoice_id}: {self._invoice_line(invoice)}")
        return invoice

    def run(self, timeout: float = 60.0) -> tuple[SetupT, dict[str, Any], ReceivedWebhook]:
        """The whole scenario: the invoice as the billing system holds it at the end, and the merchant's webhook."""
        setup = self.connect(self.seed.bootstrap())
        invoice = self.failed_invoice()
        self.delivery(self.failed_event, invoice["id"])
        webhook = self.wait_for_merchant_webhook(invoice["id"], timeout)
        return setup, self.wait_for_invoice(invoice["id"]), webhook


class StripeBillingScenario(BillingScenario[BillingSetup]):
    name = "Stripe"
    failed_event = "invoice.payment_failed"

    def __init__(self, seed: SeedScenario) -> None:
        super().__init__(seed, seed.endpoints.stripe_url)
        self.stripe = seed.endpoints.stripe_url
        self.auth = {"Authorization": f"Bearer {seed.sandbox_secret_key}"}

    def connect(self, merchant: MerchantSetup, **revenue_recovery: Any) -> BillingSetup:
        """Step 5; `revenue_recovery`: extra `feature_metadata.revenue_recovery` settings of the account."""
        self.say("==> 4b. Stripe: a webhook endpoint for invoice events; intake: a stripebilling connector account")
        endpoint = self._stripe(
            "POST",
            "/v1/webhook_endpoints",
            {
                "url": f"{self.seed.endpoints.intake_url}/v2/webhooks/recovery/pending",
                "enabled_events[]": list(INVOICE_EVENTS),
            },
        )
        account = self.create_account(
            merchant,
            "stripebilling",
            self.seed.sandbox_secret_key,
            {"merchant_secret": endpoint["secret"]},
            {"billing_account_reference": {merchant.payment_mca: "stripebilling"}, **revenue_recovery},
        )
        setup = BillingSetup(merchant, account, str(endpoint["id"]), str(endpoint["secret"]))
        url = f"{self.seed.endpoints.intake_url}{setup.webhook_path}"
        self._stripe("POST", f"/v1/webhook_endpoints/{endpoint['id']}", {"url": url})
        self.say(f"    Stripe sends invoice events to {url}")
        return setup

    def failed_invoice(self, amount: int = 2250, decline_code: str = "insufficient_funds") -> dict[str, Any]:
        """Step 6: a customer with a card, an invoice charged to it and declined once (a sandbox fault)."""
        customer_id, card = self.seed.customer_with_card()
        self.say(f"==> 6. Stripe: an invoice of {amount} for {customer_id}, its payment declined ({decline_code})")
        self._stripe("POST", "/v1/invoiceitems", {"customer": customer_id, "amount": str(amount), "currency": "usd"})
        invoice = self._stripe(
            "POST",
            "/v1/invoices",
            {"customer": customer_id, "default_payment_method": card, "pending_invoice_items_behavior": "include"},
        )
        self._stripe("POST", f"/v1/invoices/{invoice['id']}/finalize", {})
        fault = {"payment_method": card, "mode": "decline", "decline_code": decline_code}
        self.seed._call("POST", f"{self.stripe}/_sandbox/faults", json_body=fault)
        answer = self.seed.http.post(f"{self.stripe}/v1/invoices/{invoice['id']}/pay", headers=self.auth)
        if answer.status_code != 402:
            raise ScenarioFailed(f"the invoice payment was to be declined; Stripe answered {answer.status_code}")
        self.say(f"    invoice {invoice['id']}: payment declined, Stripe sends invoice.payment_failed")
        return self.invoice(str(invoice["id"]))

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice: dict[str, Any] = self._stripe("GET", f"/v1/invoices/{invoice_id}", None)
        return invoice

    def _about(self, event: dict[str, Any], invoice_id: str) -> bool:
        return bool(event["data"]["object"]["id"] == invoice_id)

    def _invoice_line(self, invoice: dict[str, Any]) -> str:
        return f"{invoice['status']} (out of band: {invoice['paid_out_of_band']})"

    def summary(self, setup: BillingSetup, invoice: dict[str, Any]) -> list[str]:
        return [
            f"Stripe invoice {invoice['id']}: {invoice['status']}, paid_out_of_band={invoice['paid_out_of_band']}",
            f"Stripe sends invoice events to {setup.webhook_path} (connector account {setup.billing_mca})",
        ]

    def recorded_paid(self, invoice: dict[str, Any]) -> bool:
        return bool(invoice["status"] == "paid" and invoice["paid_out_of_band"])

    def _stripe(self, method: str, path: str, form: dict[str, Any] | None) -> Any:
        return self.seed._call(method, f"{self.stripe}{path}", form=form, headers=self.auth)


def replay(
    scenario: Callable[[SeedScenario], BillingScenario[Any]],
    endpoints: Endpoints,
    say: Callable[[str], None],
    timeout: float,
) -> str | None:
    """`recovery demo --billing <system>`: None when the scenario ends as it should, else why not."""
    seed = SeedScenario(endpoints, say)
    try:
        billing = scenario(seed)
        setup, invoice, webhook = billing.run(timeout)
    except ScenarioFailed as error:
        return str(error)
    finally:
        seed.close()
    say("")
    say(f"merchant webhook: {webhook.event_type}, X-Webhook-Signature-512 verified: {webhook.signature_verified}")
    for line in billing.summary(setup, invoice):
        say(line)
    if webhook.signature_verified and billing.recorded_paid(invoice):
        return None
    return f"the webhook arrived but the invoice was not recorded paid at {billing.name} (see above)"


CHARGEBEE_KEY = "test_chargebee_demo_key"
CHARGEBEE_GATEWAY = "gw_stripe_demo"


@dataclass(frozen=True)
class ChargebeeSetup(BillingAccount):
    username: str
    password: str


class ChargebeeScenario(BillingScenario[ChargebeeSetup]):
    """The same story with Chargebee (the sandbox under `<stripe sandbox>/chargebee`): its `payment_failed`
    webhook with basic auth in, `record_payment` out; the card is charged at the Stripe sandbox."""

    name = "Chargebee"
    failed_event = "payment_failed"

    def __init__(self, seed: SeedScenario) -> None:
        super().__init__(seed, f"{seed.endpoints.stripe_url}/chargebee")
        self.site = self.sandbox

    def connect(self, merchant: MerchantSetup, **revenue_recovery: Any) -> ChargebeeSetup:
        self.say("==> 4b. intake: a chargebee connector account; Chargebee: webhooks with basic auth to it")
        username, password = "chargebee-webhooks", f"pw-{time.time_ns()}"
        references = {"billing_account_reference": {merchant.payment_mca: CHARGEBEE_GATEWAY}}
        account = self.create_account(
            merchant,
            "chargebee",
            CHARGEBEE_KEY,
            {"merchant_secret": username, "additional_secret": password},
            {**references, "record_back_url": self.site, **revenue_recovery},
        )
        setup = ChargebeeSetup(merchant, account, username, password)
        url = f"{self.seed.endpoints.intake_url}{setup.webhook_path}"
        hook = {"url": url, "username": username, "password": password}
        self.seed._call("POST", f"{self.site}/_sandbox/webhook", json_body=hook)
        self.say(f"    Chargebee sends events to {url}")
        return setup

    def failed_invoice(self, amount: int = 2250) -> dict[str, Any]:
        customer_id, card = self.seed.customer_with_card()
        self.say(f"==> 6. Chargebee: an invoice of {amount}, its payment through Stripe failed (payment_failed)")
        form = {"customer_id": "cb_" + customer_id, "currency_code": "USD", "charges[amount][0]": str(amount)}
        invoice = self._chargebee("POST", "/api/v2/invoices", form)["invoice"]
        failure = {"reference_number": f"{customer_id}/{card}", "gateway_account_id": CHARGEBEE_GATEWAY}
        self.seed._call("POST", f"{self.site}/_sandbox/invoices/{invoice['id']}/payment_failed", json_body=failure)
        return {**invoice, "stripe_customer": customer_id}

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return dict(self._chargebee("GET", f"/api/v2/invoices/{invoice_id}", None)["invoice"])

    def _about(self, event: dict[str, Any], invoice_id: str) -> bool:
        return bool((event["content"].get("invoice") or {}).get("id") == invoice_id)

    def _invoice_line(self, invoice: dict[str, Any]) -> str:
        return str(invoice["status"])

    def summary(self, setup: ChargebeeSetup, invoice: dict[str, Any]) -> list[str]:
        return [
            f"Chargebee invoice {invoice['id']}: {invoice['status']} (record_payment), events to {setup.webhook_path}"
        ]

    def _chargebee(self, method: str, path: str, form: dict[str, Any] | None) -> Any:
        return self.seed._call(method, f"{self.site}{path}", form=form, headers=_basic(CHARGEBEE_KEY))


def _basic(key: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
