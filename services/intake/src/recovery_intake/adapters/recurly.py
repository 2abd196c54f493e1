"""Recurly's API as intake reads it: a transaction (`GET {base}/transactions/{id}`, `id` Recurly's or
`uuid-<uuid>`), in API version v2021-02-25 (the one Hyperswitch's Recurly connector and the executor's record back
use). The base is the account's (domain/recurly_events.py: `recurly_api_base`). Through the egress policy's client
(recovery_runtime.egress): no unguarded outbound call."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from recovery_intake.adapters.stripe_billing import get_within, json_object
from recovery_intake.domain.deliveries import ProviderApiError
from recovery_runtime.connector_apis import RECURLY_ACCEPT, key_as_user


class RecurlyApi:
    def __init__(self, http_client: httpx.AsyncClient, timeout: float = 3.0) -> None:
        self._http = http_client
        self._timeout = timeout

    async def transaction(self, base_url: str, api_key: str, transaction_id: str) -> dict[str, Any]:
        """The transaction, or ProviderApiError when Recurly cannot be read (the delivery is then tried again)."""
        url = f"{base_url.rstrip('/')}/transactions/{quote(transaction_id, safe='')}"
        headers = {"Accept": RECURLY_ACCEPT, "Authorization": key_as_user(api_key)}
        response = await get_within(self._http, "Recurly", self._timeout, url, headers)
        if response.status_code != 200:
            raise ProviderApiError(
                f"Recurly answered {response.status_code} for transaction {transaction_id}{_error_of(response)}"[:500]
            )
        return json_object(response, f"Recurly's transaction {transaction_id}")


def _error_of(response: httpx.Response) -> str:
    """Recurly's own words for a refusal (`{"error": {"type": ..., "message": ...}}`), when it gave them."""
    try:
        error = response.json()["error"]
        kind, message = error["type"], error.get("message")
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    return f": {kind}: {message}" if message else f": {kind}"
