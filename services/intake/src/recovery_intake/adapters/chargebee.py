"""Chargebee's API as intake reads it: an invoice (`GET {site}/api/v2/invoices/{id}`, answered as
`{"invoice": {...}}`), with the account's API key as the basic auth user name and an empty password, as the
executor's record back sends it. The site is the account's (domain/chargebee_events.py: `chargebee_site`). Through
the egress policy's client (recovery_runtime.egress): no unguarded outbound call."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from recovery_intake.adapters.stripe_billing import get_within, json_object, key_as_user
from recovery_intake.domain.deliveries import ProviderApiError


class ChargebeeApi:
    def __init__(self, http_client: httpx.AsyncClient, timeout: float = 3.0) -> None:
        self._http = http_client
        self._timeout = timeout

    async def invoice(self, site: str, api_key: str, invoice_id: str) -> dict[str, Any] | None:
        """The invoice; None when Chargebee has none by that id (404: deleted, or never there); ProviderApiError
        when Chargebee cannot be read (the delivery is then tried again)."""
        url = f"{site.rstrip('/')}/api/v2/invoices/{quote(invoice_id, safe='')}"
        response = await get_within(
            self._http, "Chargebee", self._timeout, url, {"Authorization": key_as_user(api_key)}
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProviderApiError(
                f"Chargebee answered {response.status_code} for invoice {invoice_id}{_error_of(response)}"[:500]
            )
        invoice = json_object(response, f"Chargebee's invoice {invoice_id}").get("invoice")
        if not isinstance(invoice, dict):
            raise ProviderApiError(f"Chargebee's invoice {invoice_id}: the answer has no invoice object")
        return invoice


def _error_of(response: httpx.Response) -> str:
    """Chargebee's own words for a refusal (`{"message", "api_error_code", ...}`), when it gave them."""
    try:
        body = response.json()
        code, message = body["api_error_code"], body.get("message")
    except (ValueError, KeyError, TypeError):
        return ""
    return f": {code}: {message}" if message else f": {code}"
