"""Record back through a billing system's own API, with the billing connector account's key (sealed by intake,
opened only for the call), through the egress policy's client (recovery_runtime.egress).

Stripe Billing: `POST {STRIPE_API_BASE}/v1/invoices/{invoice}/pay`, form `paid_out_of_band=true`, the record
back's idempotency key as Stripe's `Idempotency-Key` (one payment, one record, whatever the number of tries),
pinned to the charge adapter's API version (`Stripe-Version`, adapters/stripe.py) rather than the account's
default, so Stripe's answer keeps the shape it was written against.
Chargebee: `POST {site}/api/v2/invoices/{invoice}/record_payment` (the site's base URL is the account's
`record_back_url`), basic auth with the key as the user name, the same key as `chargebee-idempotency-key`."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from recovery_contracts.messages import RecordBack
from recovery_executor.adapters.stripe import STRIPE_VERSION
from recovery_executor.dependencies import ConnectorAccountRepository
from recovery_executor.domain.billing_systems import (
    CHARGEBEE,
    STRIPEBILLING,
    chargebee_answer,
    chargebee_record_payment_form,
    stripe_pay_answer,
)
from recovery_executor.domain.ports import RecordBackAnswer
from recovery_runtime.egress import blocked_reason
from recovery_runtime.secrets import SecretBox


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
        account = await self._accounts.get(request.billing_connector_id or "")
        if account is None or not account.api_key:
            # Not projected yet (connector-account.updated on its way) or no key: tried again on the timer.
            return RecordBackAnswer(accepted=False, error=f"no key for billing account {request.billing_connector_id}")
        api_key = self._box.open(account.api_key)
        invoice = request.body.merchant_reference_id
        if request.billing_connector == STRIPEBILLING:
            url = f"{self._stripe}/v1/invoices/{invoice}/pay"
            form = {"paid_out_of_band": "true"}
            headers = {
                "Authorization": f"Bearer {api_key}",
                "Idempotency-Key": idempotency_key,
                "Stripe-Version": STRIPE_VERSION,
            }
        elif request.billing_connector == CHARGEBEE and request.url:
            url = f"{request.url.rstrip('/')}/api/v2/invoices/{invoice}/record_payment"
            form = chargebee_record_payment_form(request.body.amount, request.body.connector_transaction_id)
            basic = base64.b64encode(f"{api_key}:".encode()).decode()
            headers = {"Authorization": f"Basic {basic}", "chargebee-idempotency-key": idempotency_key}
        else:
            # Final, never retried (an operator's to record): no API for it, or no Chargebee site configured.
            unsupported = f"no record back for {request.billing_connector} (record_back_url: the site's base URL)"
            return RecordBackAnswer(accepted=False, error=unsupported, blocked=True)
        try:
            response = await self._http.post(url, data=form, headers=headers, timeout=self._timeout)
        except (httpx.HTTPError, OSError) as error:
            reason = blocked_reason(error)
            if reason is not None:
                return RecordBackAnswer(accepted=False, error=reason, blocked=True)
            return RecordBackAnswer(accepted=False, error=f"{type(error).__name__}: {error}"[:500])
        if request.billing_connector == CHARGEBEE:
            return chargebee_answer(response.status_code, _json(response))
        return stripe_pay_answer(response.status_code, _json(response))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
