"""Chargebee's API as intake reads it: an invoice (`GET {site}/api/v2/invoices/{id}`, answered as
`{"invoice": {...}}`), with the account's API key as the basic auth user name and an empty password, as the
executor's record back sends it. The site is the account's (domain/chargebee_events.py: `chargebee_site`). Through
the egress policy's client (recovery_runtime.egress): no unguarded outbound call."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from recovery_intake.adapters.stripe_billing import get_within, json_object
from recovery_intake.domain.deliveries import ProviderApiError
from recovery_runtime.connector_apis import key_as_user


class ChargebeeApi:
    def __init__(self, http_client: httpx.AsyncClient, timeout: float = 3.0) -> None:
        self._http = http_client
        self._timeout = timeout

    async def invoice(self, site: str, api_key: str, invoice_id: str) -> dict[str, Any] | None:
        """The invoice; None when Chargebee has none by that id (404 `resource_not_found`: deleted, or never there);
        ProviderApiError when Chargebee cannot be read, a 404 for another reason included (a wrong site): the
        delivery is then tried again, never taken as "no invoice"."""
        url = f"{site.rstrip('/')}/api/v2/invoices/{quote(invoice_id, safe='')}"
        response = await get_within(
            self._http, "Chargebee", self._timeout, url, {"Authorization": key_as_user(api_key)}
        )
        if response.status_code == 404 and _error_code(response) == "resource_not_found":
            return None
        if response.status_code != 200:
            raise ProviderApiError(
                f"Chargebee answered {response.status_code} for invoice {invoice_id}{_error_of(response)}"[:500]
            )
        invoice = json_object(response, f"Chargebee's invoice {invoice_id}").get("invoice")
        if not isinstance(invoice, dict):
            raise ProviderApiError(f"Chargebee's invoice {invoice_id}: the answer has no invoice object")
        return invoice


def _error_code(response: httpx.Response) -> str | None:
    """Chargebee's `api_error_code` (`resource_not_found`: no such invoice; a 404 for another reason, such as an
    unknown site, is not an answer about the invoice)."""
    try:
        code = response.json()["api_error_code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def _error_of(response: httpx.Response) -> str:
    """Chargebee's own words for a refusal (`{"message", "api_error_code", ...}`), when it gave them."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    code = _error_code(response)
    if code is None:
        return ""
    return f": {code}: {message}" if message else f": {code}"
