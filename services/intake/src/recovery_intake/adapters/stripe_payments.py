"""Stripe's payments API as intake reads it: the PaymentIntent a dispute is on
(`GET /v1/payment_intents/{id}`, https://docs.stripe.com/api/payment_intents/retrieve), whose metadata names the
payment and attempt the executor charged it for.

Pinned to STRIPE_VERSION as every Stripe call is, through the egress policy's client, with the whole read bounded
(`read_within`): an answer that does not come in time is a ProviderApiError, answered 503 as the billing webhooks'
reads are, so that Stripe delivers the event again."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from recovery_intake.adapters.stripe_billing import read_within
from recovery_intake.domain.deliveries import ProviderApiError
from recovery_runtime.connector_apis import STRIPE_VERSION


class StripePaymentsApi:
    def __init__(self, base_url: str, http_client: httpx.AsyncClient, timeout: float = 3.0) -> None:
        self._base = base_url.rstrip("/")
        self._http = http_client
        self._timeout = timeout

    async def payment_intent(self, api_key: str, intent_id: str) -> dict[str, Any] | None:
        """The PaymentIntent, read with the account's key (opened by the caller for this call only); None when
        Stripe has none of that id in the account (404)."""
        response = await read_within(
            "Stripe",
            self._timeout,
            lambda: self._http.get(
                f"{self._base}/v1/payment_intents/{quote(intent_id, safe='')}",
                headers={"Authorization": f"Bearer {api_key}", "Stripe-Version": STRIPE_VERSION},
                timeout=self._timeout,
            ),
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProviderApiError(f"Stripe answered {response.status_code} for PaymentIntent {intent_id}")
        body: dict[str, Any] = response.json()
        return body
