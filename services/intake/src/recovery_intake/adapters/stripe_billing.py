"""Stripe Billing's API as intake reads it: an invoice with its failed charge and customer expanded
(`GET /v1/invoices/{id}?expand[]=charge&expand[]=customer`, https://docs.stripe.com/api/invoices/retrieve).

Pinned to API version STRIPE_VERSION (recovery_runtime.connector_apis, the one every Stripe call pins): without
`Stripe-Version` Stripe answers in the account's default version, and from 2025-03-31.basil on an invoice has no
`charge` (nor `payment_intent`; its payments are under `payments`), so `expand[]=charge` is refused with a 400 and
every `invoice.payment_failed` delivery would be answered 503. Through the egress policy's client
(recovery_runtime.egress): no unguarded outbound call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from recovery_intake.domain.deliveries import ProviderApiError
from recovery_runtime.connector_apis import STRIPE_VERSION

# The invoice fields read (domain/billing_events.py: `charge` expanded, `customer` expanded,
# `default_payment_method`, `amount_remaining`, `amount_due`, `currency`, `created`) are those of the version every
# service pins (recovery_runtime.connector_apis.STRIPE_VERSION).


async def read_within(system: str, seconds: float, get: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """`get()`'s answer, or ProviderApiError when the billing system does not answer within `seconds` in all
    (connecting and reading together: httpx's own timeout bounds each phase alone) or cannot be reached."""
    try:
        async with asyncio.timeout(seconds):
            return await get()
    except (TimeoutError, httpx.TimeoutException) as late:
        raise ProviderApiError(f"{system} did not answer within {seconds:g} s") from late
    except (httpx.HTTPError, OSError) as error:
        raise ProviderApiError(f"{system} unreachable: {type(error).__name__}: {error}"[:500]) from error


async def get_within(
    http: httpx.AsyncClient, system: str, seconds: float, url: str, headers: dict[str, str]
) -> httpx.Response:
    """`GET url` as `read_within` bounds it."""
    return await read_within(system, seconds, lambda: http.get(url, headers=headers, timeout=seconds))


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The answer's JSON object; ProviderApiError (`what`: the system and the object asked for) when it is not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderApiError(f"{what}: the answer is not a JSON object")
    return body


class StripeBillingApi:
    def __init__(self, base_url: str, http_client: httpx.AsyncClient, timeout: float = 3.0) -> None:
        self._base = base_url.rstrip("/")
        self._http = http_client
        self._timeout = timeout

    async def invoice(self, api_key: str, invoice_id: str) -> dict[str, Any]:
        response = await read_within(
            "Stripe",
            self._timeout,
            lambda: self._http.get(
                f"{self._base}/v1/invoices/{invoice_id}",
                params=[("expand[]", "charge"), ("expand[]", "customer")],
                headers={"Authorization": f"Bearer {api_key}", "Stripe-Version": STRIPE_VERSION},
                timeout=self._timeout,
            ),
        )
        if response.status_code != 200:
            raise ProviderApiError(f"Stripe answered {response.status_code} for invoice {invoice_id}")
        body: dict[str, Any] = response.json()
        return body
