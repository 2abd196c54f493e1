"""Stripe's payments API as intake uses it: the PaymentIntent a dispute is on
(`GET /v1/payment_intents/{id}`, https://docs.stripe.com/api/payment_intents/retrieve), whose metadata names the
payment and attempt the executor charged it for; and the merchant's answer to a dispute: accepting it
(`POST /v1/disputes/{id}/close`, https://docs.stripe.com/api/disputes/close) or submitting evidence
(`POST /v1/disputes/{id}` with `evidence[...]` and `submit=true`, https://docs.stripe.com/api/disputes/update), and
a file for that evidence uploaded (`POST /v1/files` on Stripe's files host, purpose `dispute_evidence`,
https://docs.stripe.com/api/files/create), each with an idempotency key, so that an answer sent again is the same
answer.

Pinned to STRIPE_VERSION as every Stripe call is, through the egress policy's client, with the whole read bounded
(`read_within`): an answer that does not come in time is a ProviderApiError, answered 503 as the billing webhooks'
reads are, so that Stripe delivers the event again."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from recovery_intake.adapters.stripe_billing import read_within
from recovery_intake.domain.deliveries import ProviderApiError
from recovery_intake.domain.payment_disputes import DisputeAnswerRefused
from recovery_runtime.connector_apis import STRIPE_VERSION

# How long an evidence file's upload to Stripe may take in all (5 MB at about 1.5 Mbit/s).
FILE_UPLOAD_SECONDS = 30.0


class StripePaymentsApi:
    def __init__(
        self, base_url: str, http_client: httpx.AsyncClient, timeout: float = 3.0, files_url: str | None = None
    ) -> None:
        self._base = base_url.rstrip("/")
        self._files = (files_url or base_url).rstrip("/")
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

    async def close_dispute(self, api_key: str, dispute_id: str, idempotency_key: str) -> dict[str, Any]:
        """The dispute, accepted (lost; an inquiry: closed)."""
        return await self._answer(api_key, f"{quote(dispute_id, safe='')}/close", {}, idempotency_key)

    async def submit_dispute_evidence(
        self, api_key: str, dispute_id: str, evidence: dict[str, str], idempotency_key: str
    ) -> dict[str, Any]:
        """The dispute with `evidence` submitted to the bank (under review)."""
        form = {f"evidence[{name}]": value for name, value in evidence.items()} | {"submit": "true"}
        return await self._answer(api_key, quote(dispute_id, safe=""), form, idempotency_key)

    async def upload_dispute_file(
        self, api_key: str, file: tuple[str, bytes, str], idempotency_key: str
    ) -> dict[str, Any]:
        """Stripe's File object of `file` (name, bytes, MIME type) uploaded as dispute evidence (`POST /v1/files` on
        Stripe's files host, purpose `dispute_evidence`); refusals as `_answer`'s. Bounded by FILE_UPLOAD_SECONDS (a
        file of a few megabytes takes longer to send than an answer), or the answers' bound if that is longer."""
        bound = max(self._timeout, FILE_UPLOAD_SECONDS)
        response = await read_within(
            "Stripe",
            bound,
            lambda: self._http.post(
                f"{self._files}/v1/files",
                data={"purpose": "dispute_evidence"},
                files={"file": file},
                headers={
                    "Authorization": f"Bearer {api_key}",
                    "Stripe-Version": STRIPE_VERSION,
                    "Idempotency-Key": idempotency_key,
                },
                timeout=bound,
            ),
        )
        return _answered(response, f"file {file[0]}")

    async def _answer(self, api_key: str, path: str, form: dict[str, str], idempotency_key: str) -> dict[str, Any]:
        """Stripe's dispute after the POST; DisputeAnswerRefused with Stripe's message when it refuses (4xx),
        ProviderApiError when it does not answer."""
        response = await read_within(
            "Stripe",
            self._timeout,
            lambda: self._http.post(
                f"{self._base}/v1/disputes/{path}",
                data=form,
                headers={
                    "Authorization": f"Bearer {api_key}",
                    "Stripe-Version": STRIPE_VERSION,
                    "Idempotency-Key": idempotency_key,
                },
                timeout=self._timeout,
            ),
        )
        return _answered(response, f"dispute {path}")


def _answered(response: httpx.Response, what: str) -> dict[str, Any]:
    """Stripe's answer to the merchant's POST on `what`: its object; DisputeAnswerRefused with Stripe's message when
    it refuses (4xx), ProviderApiError when it cannot answer now (429, 5xx)."""
    if response.status_code == 429:
        # Stripe's rate limit: not a refusal of the answer, which may be sent again (same idempotency key).
        raise ProviderApiError(f"Stripe answered 429 for {what}: {_stripe_message(response)}")
    if 400 <= response.status_code < 500:
        raise DisputeAnswerRefused(_stripe_message(response))
    if response.status_code != 200:
        raise ProviderApiError(f"Stripe answered {response.status_code} for {what}")
    body: dict[str, Any] = response.json()
    return body


def _stripe_message(response: httpx.Response) -> str:
    """Stripe's error message (`error.message`), else its status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:500] if message else f"Stripe answered {response.status_code}"
