"""Stripe Billing's API as intake reads it: an invoice with its failed charge and customer expanded
(`GET /v1/invoices/{id}?expand[]=charge&expand[]=customer`, https://docs.stripe.com/api/invoices/retrieve).

Through the egress policy's client (recovery_runtime.egress): no unguarded outbound call."""

from __future__ import annotations

from typing import Any

import httpx


class BillingApiError(Exception):
    """The billing system could not be read: the delivery is answered 5xx so the provider sends it again."""


class StripeBillingApi:
    def __init__(self, base_url: str, http_client: httpx.AsyncClient, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._http = http_client
        self._timeout = timeout

    async def invoice(self, api_key: str, invoice_id: str) -> dict[str, Any]:
        try:
            response = await self._http.get(
                f"{self._base}/v1/invoices/{invoice_id}",
                params=[("expand[]", "charge"), ("expand[]", "customer")],
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=self._timeout,
            )
        except (httpx.HTTPError, OSError) as error:
            raise BillingApiError(f"Stripe unreachable: {type(error).__name__}: {error}"[:500]) from error
        if response.status_code != 200:
            raise BillingApiError(f"Stripe answered {response.status_code} for invoice {invoice_id}")
        body: dict[str, Any] = response.json()
        return body
