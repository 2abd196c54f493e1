"""The billing scenario with Recurly (the sandbox under `<stripe sandbox>/recurly`): a declined renewal's signed
`payment.failed` notification in (intake reads the transaction at Recurly), the retry charged at the Stripe
sandbox, the invoice marked paid at Recurly (`mark_successful`)."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

from recovery_cli.billing_demo import BillingAccount, BillingScenario
from recovery_cli.seed_scenario import MerchantSetup, ScenarioFailed, SeedScenario
from recovery_runtime.connector_apis import RECURLY_ACCEPT

RECURLY_KEY = "test_recurly_demo_key"
RECURLY_GATEWAY = "stripegw0001"  # Recurly's payment_gateway.id of the merchant's Stripe gateway


@dataclass(frozen=True)
class RecurlySetup(BillingAccount):
    webhook_secret: str


class RecurlyScenario(BillingScenario[RecurlySetup]):
    name = "Recurly"
    failed_event = "payment.failed"

    def __init__(self, seed: SeedScenario) -> None:
        super().__init__(seed, f"{seed.endpoints.stripe_url}/recurly")
        self.api = {
            "Authorization": "Basic " + base64.b64encode(f"{RECURLY_KEY}:".encode()).decode(),
            "Accept": RECURLY_ACCEPT,
        }

    def connect(self, merchant: MerchantSetup, **revenue_recovery: Any) -> RecurlySetup:
        self.say("==> 4b. intake: a recurly connector account; Recurly: signed JSON webhooks to it")
        secret = f"recurly-webhook-{time.time_ns()}"
        references = {"billing_account_reference": {merchant.payment_mca: RECURLY_GATEWAY}}
        # record_back_url: the API base Recurly's calls go to (https://v3.recurly.com in production).
        account = self.create_account(
            merchant,
            "recurly",
            RECURLY_KEY,
            {"merchant_secret": secret},
            {**references, "record_back_url": self.sandbox, **revenue_recovery},
        )
        setup = RecurlySetup(merchant, account, secret)
        url = f"{self.seed.endpoints.intake_url}{setup.webhook_path}"
        hook = {"url": url, "secret": secret}
        self.seed._call("POST", f"{self.sandbox}/_sandbox/webhook", json_body=hook)
        self.say(f"    Recurly sends notifications to {url}")
        return setup

    def failed_invoice(self, amount: int = 2250, status_code: str = "insufficient_funds") -> dict[str, Any]:
        """A renewal invoice whose collection through the Stripe gateway was declined (`payment.failed`)."""
        customer_id, card = self.seed.customer_with_card()
        self.say(f"==> 6. Recurly: an invoice of {amount}, its collection through Stripe declined ({status_code})")
        new = {"account_code": f"acct_{customer_id}", "currency": "USD", "amount": amount}
        invoice = self.seed._call("POST", f"{self.sandbox}/_sandbox/invoices", json_body=new)
        failure = {"gateway_token": f"{customer_id}/{card}", "gateway_id": RECURLY_GATEWAY, "status_code": status_code}
        path = f"{self.sandbox}/_sandbox/invoices/{invoice['id']}/payment_failed"
        self.seed._call("POST", path, json_body=failure)
        return {**self.invoice(str(invoice["id"])), "stripe_customer": customer_id}

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        """The invoice as Recurly's API shows it, its `state` also as `status` (what the scenarios compare)."""
        invoice = self.seed._call("GET", f"{self.sandbox}/invoices/{invoice_id}", headers=self.api)
        return {**invoice, "status": invoice["state"]}

    def delivery(self, event_type: str, invoice_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Recurly's delivery of the invoice's `<object_type>.<event_type>` notification and intake's answer, with
        the notification as `event_object` and its number as `event` (for a resend)."""
        deadline = time.monotonic() + timeout
        while True:
            about = self._ids_of(invoice_id)
            found = self.seed._call("GET", f"{self.sandbox}/_sandbox/events")
            for event in found["events"]:
                note = event["notification"]
                if f"{note['object_type']}.{note['event_type']}" == event_type and note["id"] in about:
                    for record in event["deliveries"]:
                        answer = record["status"]
                        self.say(f"    Recurly delivered {event_type} (#{event['n']}): intake answered {answer}")
                        return {**record, "event": event["n"], "event_object": note}
            if time.monotonic() >= deadline:
                raise ScenarioFailed(f"Recurly delivered no {event_type} for {invoice_id} within {timeout:.0f}s")
            time.sleep(0.1)

    def _ids_of(self, invoice_id: str) -> set[str]:
        """The invoice's id and its transactions' (a `payment` notification names the transaction)."""
        invoice = self.invoice(invoice_id)
        return {invoice_id, *(str(t["id"]) for t in invoice.get("transactions") or [])}

    def _about(self, event: dict[str, Any], invoice_id: str) -> bool:
        return event["notification"]["id"] in self._ids_of(invoice_id)

    def _invoice_line(self, invoice: dict[str, Any]) -> str:
        return f"{invoice['state']} (paid {invoice.get('paid')}, balance {invoice.get('balance')})"

    def summary(self, setup: RecurlySetup, invoice: dict[str, Any]) -> list[str]:
        return [
            f"Recurly invoice {invoice['id']} (#{invoice['number']}): {invoice['state']} (mark_successful), "
            f"notifications to {setup.webhook_path}"
        ]
