"""Record back through a billing system's own API, with the billing connector account's key (sealed by intake,
opened only for the call), through the egress policy's client (recovery_runtime.egress; adapters/billing_api.py).
Each billing system is one function building its call; every call carries the record back's idempotency key (one
payment, one record, whatever the number of tries).

Stripe Billing: `POST {STRIPE_API_BASE}/v1/invoices/{invoice}/pay`, form `paid_out_of_band=true`, bearer auth, the
idempotency key as `Idempotency-Key`, pinned to the charge adapter's API version (`Stripe-Version`, adapters/stripe.py)
rather than the account's default, so Stripe's answer keeps the shape it was written against.
Chargebee: `POST {site}/api/v2/invoices/{invoice}/record_payment` (the site's base URL is the account's
`record_back_url`), basic auth with the key as the user name, the idempotency key as `chargebee-idempotency-key`.
Recurly: `PUT {base}/invoices/{invoice}/mark_successful`, no body (the API base is the account's `record_back_url`,
else `RECURLY_API_BASE`), basic auth as Chargebee's, the API version in `Accept`, the idempotency key as
`Idempotency-Key`.
A dispute lost on the payment (`record_refund`): Chargebee's offline refund, Stripe Billing's credit note or Recurly's
refund of the invoice settled outside Recurly, adapters/billing_refunds.py."""

from __future__ import annotations

import httpx

from recovery_contracts.messages import RecordBack
from recovery_executor.dependencies import ConnectorAccountRepository
from recovery_executor.domain.billing_systems import (
    CHARGEBEE,
    RECURLY,
    REFUNDS_RECORDED_AT,
    STRIPEBILLING,
    chargebee_answer,
    chargebee_record_payment_form,
    recurly_answer,
    stripe_pay_answer,
)
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_runtime.connector_apis import RECURLY_ACCEPT, RECURLY_API_BASE, STRIPE_VERSION, key_as_user
from recovery_runtime.secrets import SecretBox, SecretUnreadable

from .billing_api import BillingApi, RecordBackCall
from .billing_refunds import ChargebeeRefunds, RecurlyRefunds, StripeCreditNotes


class BillingSystemRecorder:
    def __init__(
        self,
        *,
        stripe_api_base: str,
        http_client: httpx.AsyncClient,
        box: SecretBox,
        accounts: ConnectorAccountRepository,
        timeout: float = 10.0,
    ) -> None:
        self._stripe = stripe_api_base.rstrip("/")
        self._api = BillingApi(http_client, timeout)
        self._box = box
        self._accounts = accounts
        self._chargebee_refunds = ChargebeeRefunds(self._api)
        self._stripe_credit_notes = StripeCreditNotes(self._api, self._stripe)
        self._recurly_refunds = RecurlyRefunds(self._api)

    async def record_back(self, request: RecordBack, *, idempotency_key: str) -> RecordBackAnswer:
        api_key = await self._api_key(request)
        if isinstance(api_key, RecordBackAnswer):
            return api_key
        call = self._call(request, api_key, idempotency_key)
        if call is None:
            # Final, never retried (an operator's to record): no API for it, or no Chargebee site configured.
            unsupported = f"no record back for {request.billing_connector} (record_back_url: the site's base URL)"
            return RecordBackAnswer(accepted=False, error=unsupported, blocked=True)
        return await self._api.send(call)

    async def record_refund(
        self, request: RecordBack, *, transaction_id: str | None, idempotency_key: str
    ) -> RecordBackAnswer:
        refund, billing = request.dispute, request.billing_connector
        if refund is None or billing not in REFUNDS_RECORDED_AT or (billing == CHARGEBEE and not request.url):
            # Final: no dispute-lost consumer makes such a command (domain/dispute_refunds.py).
            return RecordBackAnswer(accepted=False, error=f"no refund record for {billing}", blocked=True)
        api_key = await self._api_key(request)
        if isinstance(api_key, RecordBackAnswer):
            return api_key
        if billing == STRIPEBILLING:
            return await self._stripe_credit_notes.record(request, refund, api_key, idempotency_key)
        if billing == RECURLY:
            base = (request.url or RECURLY_API_BASE).rstrip("/")
            return await self._recurly_refunds.record(base, request, refund, api_key, idempotency_key)
        site = request.url.rstrip("/")
        return await self._chargebee_refunds.record(site, request, refund, api_key, idempotency_key, transaction_id)

    async def _api_key(self, request: RecordBack) -> str | RecordBackAnswer:
        account = await self._accounts.get(request.billing_connector_id or "")
        if account is None or not account.api_key:
            # Not projected yet (connector-account.updated on its way) or no key: tried again on the timer.
            return RecordBackAnswer(accepted=False, error=f"no key for billing account {request.billing_connector_id}")
        try:
            # A key sent before keys were sealed (an old message, a document not resealed) is taken as it is.
            return self._box.open_if_sealed(account.api_key)
        except SecretUnreadable as unreadable:
            # Sealed under a master key this executor no longer has: a refusal (kept, tried again on the timers, and
            # visible on the record), never an exception that would leave no record at all.
            return RecordBackAnswer(accepted=False, error=f"the billing account's key cannot be opened: {unreadable}")

    def _call(self, request: RecordBack, api_key: str, idempotency_key: str) -> RecordBackCall | None:
        if request.billing_connector == STRIPEBILLING:
            return stripe_pay(self._stripe, request, api_key, idempotency_key)
        if request.billing_connector == CHARGEBEE and request.url:
            return chargebee_record_payment(request.url, request, api_key, idempotency_key)
        if request.billing_connector == RECURLY:
            return recurly_mark_successful(request.url or RECURLY_API_BASE, request, api_key, idempotency_key)
        return None


def stripe_pay(base: str, request: RecordBack, api_key: str, idempotency_key: str) -> RecordBackCall:
    url = f"{base}/v1/invoices/{request.body.merchant_reference_id}/pay"
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Idempotency-Key": idempotency_key,
        "Stripe-Version": STRIPE_VERSION,
    }
    return RecordBackCall("POST", url, {"paid_out_of_band": "true"}, headers, stripe_pay_answer)


def chargebee_record_payment(site: str, request: RecordBack, api_key: str, idempotency_key: str) -> RecordBackCall:
    url = f"{site.rstrip('/')}/api/v2/invoices/{request.body.merchant_reference_id}/record_payment"
    form = chargebee_record_payment_form(request.body.amount, request.body.connector_transaction_id)
    headers = {"Authorization": key_as_user(api_key), "chargebee-idempotency-key": idempotency_key}
    return RecordBackCall("POST", url, form, headers, chargebee_answer)


def recurly_mark_successful(base: str, request: RecordBack, api_key: str, idempotency_key: str) -> RecordBackCall:
    url = f"{base.rstrip('/')}/invoices/{request.body.merchant_reference_id}/mark_successful"
    headers = {"Authorization": key_as_user(api_key), "Accept": RECURLY_ACCEPT, "Idempotency-Key": idempotency_key}
    return RecordBackCall("PUT", url, None, headers, recurly_answer)
