"""Record back through a billing system's own API, with the billing connector account's key (sealed by intake,
opened only for the call), through the egress policy's client (recovery_runtime.egress). Each billing system is one
function building its call; every call carries the record back's idempotency key (one payment, one record, whatever
the number of tries).

Stripe Billing: `POST {STRIPE_API_BASE}/v1/invoices/{invoice}/pay`, form `paid_out_of_band=true`, bearer auth, the
idempotency key as `Idempotency-Key`, pinned to the charge adapter's API version (`Stripe-Version`, adapters/stripe.py)
rather than the account's default, so Stripe's answer keeps the shape it was written against.
Chargebee: `POST {site}/api/v2/invoices/{invoice}/record_payment` (the site's base URL is the account's
`record_back_url`), basic auth with the key as the user name, the idempotency key as `chargebee-idempotency-key`.
A dispute lost on the payment: `POST {site}/api/v2/transactions/{transaction}/record_refund` the same way, of the
transaction `record_payment` answered with, else of the payment found in `GET {site}/api/v2/invoices/{invoice}/payments`
by the connector's charge (its `id_at_gateway`).
Recurly: `PUT {base}/invoices/{invoice}/mark_successful`, no body (the API base is the account's `record_back_url`,
else `RECURLY_API_BASE`), basic auth as Chargebee's, the API version in `Accept`, the idempotency key as
`Idempotency-Key`."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from recovery_contracts.messages import DisputeRefund, RecordBack
from recovery_executor.dependencies import ConnectorAccountRepository
from recovery_executor.domain.billing_systems import (
    CHARGEBEE,
    RECURLY,
    STRIPEBILLING,
    chargebee_answer,
    chargebee_payment_in,
    chargebee_record_payment_form,
    chargebee_refund_form,
    chargebee_refusal,
    recurly_answer,
    stripe_pay_answer,
)
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_runtime.connector_apis import RECURLY_ACCEPT, RECURLY_API_BASE, STRIPE_VERSION
from recovery_runtime.egress import blocked_reason
from recovery_runtime.secrets import SecretBox

# Pages of an invoice's payments read to find the one to refund (Chargebee's largest page is 100).
PAYMENT_PAGES = 5


@dataclass(frozen=True)
class RecordBackCall:
    """One billing system's call that records the payment, and how its answer reads."""

    method: str
    url: str
    form: dict[str, str] | None
    headers: dict[str, str]
    read_answer: Callable[[int, dict[str, Any]], RecordBackAnswer]


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
        self._http = http_client
        self._box = box
        self._accounts = accounts
        self._timeout = timeout

    async def record_back(self, request: RecordBack, *, idempotency_key: str) -> RecordBackAnswer:
        api_key = await self._api_key(request)
        if isinstance(api_key, RecordBackAnswer):
            return api_key
        call = self._call(request, api_key, idempotency_key)
        if call is None:
            # Final, never retried (an operator's to record): no API for it, or no Chargebee site configured.
            unsupported = f"no record back for {request.billing_connector} (record_back_url: the site's base URL)"
            return RecordBackAnswer(accepted=False, error=unsupported, blocked=True)
        return await self._send(call)

    async def record_refund(
        self, request: RecordBack, *, transaction_id: str | None, idempotency_key: str
    ) -> RecordBackAnswer:
        if request.billing_connector != CHARGEBEE or not request.url or request.dispute is None:
            # Final: no dispute-lost consumer makes such a command (domain/dispute_refunds.py).
            return RecordBackAnswer(
                accepted=False, error=f"no refund record for {request.billing_connector}", blocked=True
            )
        api_key = await self._api_key(request)
        if isinstance(api_key, RecordBackAnswer):
            return api_key
        site = request.url.rstrip("/")
        if transaction_id is None:
            found = await self._chargebee_payment(site, request, api_key)
            if isinstance(found, RecordBackAnswer):
                return found
            transaction_id = found
        return await self._send(
            chargebee_record_refund(site, transaction_id, request.dispute, api_key, idempotency_key)
        )

    async def _chargebee_payment(self, site: str, request: RecordBack, api_key: str) -> str | RecordBackAnswer:
        """The Chargebee transaction of the payment the record back recorded, by the connector's charge among the
        invoice's payments (a record back before transaction ids were kept, or one answered "already paid")."""
        charge = request.body.connector_transaction_id
        invoice = request.body.merchant_reference_id
        if not charge:
            return RecordBackAnswer(
                accepted=False, error="no Chargebee transaction to refund: the payment names no charge", blocked=True
            )
        url, offset = f"{site}/api/v2/invoices/{invoice}/payments", None
        for _ in range(PAYMENT_PAGES):
            params = {"limit": "100", **({"offset": offset} if offset else {})}
            answered = await self._exchange("GET", url, None, {"Authorization": _basic(api_key)}, params)
            if isinstance(answered, RecordBackAnswer):
                return answered
            page = _json(answered)
            if not 200 <= answered.status_code < 300:
                return chargebee_refusal(answered.status_code, page)
            found = chargebee_payment_in(page, charge)
            if found is not None:
                return found
            offset = page.get("next_offset")
            if not isinstance(offset, str) or not offset:
                break
        return RecordBackAnswer(accepted=False, error=f"no payment of {charge} on Chargebee invoice {invoice} yet")

    async def _api_key(self, request: RecordBack) -> str | RecordBackAnswer:
        account = await self._accounts.get(request.billing_connector_id or "")
        if account is None or not account.api_key:
            # Not projected yet (connector-account.updated on its way) or no key: tried again on the timer.
            return RecordBackAnswer(accepted=False, error=f"no key for billing account {request.billing_connector_id}")
        return self._box.open(account.api_key)

    async def _send(self, call: RecordBackCall) -> RecordBackAnswer:
        answered = await self._exchange(call.method, call.url, call.form, call.headers)
        if isinstance(answered, RecordBackAnswer):
            return answered
        return call.read_answer(answered.status_code, _json(answered))

    async def _exchange(
        self,
        method: str,
        url: str,
        form: dict[str, str] | None,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
    ) -> httpx.Response | RecordBackAnswer:
        """The billing system's answer, or the try's outcome when none came: blocked by the egress policy (final),
        else the error (tried again)."""
        try:
            return await self._http.request(
                method, url, data=form, params=params, headers=headers, timeout=self._timeout
            )
        except (httpx.HTTPError, OSError) as error:
            reason = blocked_reason(error)
            if reason is not None:
                return RecordBackAnswer(accepted=False, error=reason, blocked=True)
            return RecordBackAnswer(accepted=False, error=f"{type(error).__name__}: {error}"[:500])

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
    headers = {"Authorization": _basic(api_key), "chargebee-idempotency-key": idempotency_key}
    return RecordBackCall("POST", url, form, headers, chargebee_answer)


def chargebee_record_refund(
    site: str, transaction_id: str, refund: DisputeRefund, api_key: str, idempotency_key: str
) -> RecordBackCall:
    url = f"{site}/api/v2/transactions/{transaction_id}/record_refund"
    headers = {"Authorization": _basic(api_key), "chargebee-idempotency-key": idempotency_key}
    return RecordBackCall("POST", url, chargebee_refund_form(refund), headers, chargebee_answer)


def recurly_mark_successful(base: str, request: RecordBack, api_key: str, idempotency_key: str) -> RecordBackCall:
    url = f"{base.rstrip('/')}/invoices/{request.body.merchant_reference_id}/mark_successful"
    headers = {"Authorization": _basic(api_key), "Accept": RECURLY_ACCEPT, "Idempotency-Key": idempotency_key}
    return RecordBackCall("PUT", url, None, headers, recurly_answer)


def _basic(api_key: str) -> str:
    """HTTP basic auth with the API key as the user name and no password (Chargebee's and Recurly's)."""
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
