"""A billing system's HTTP API as record backs and refund records call it: through the egress policy's client, a form
or a JSON body (Recurly's), each answer read as JSON, or the try's outcome when none came (blocked by the egress
policy: final; any other error: tried again)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from recovery_executor.domain.ports import RecordBackAnswer
from recovery_runtime.egress import blocked_reason

# How an error answer of a billing system reads as the try's outcome (its status and JSON body).
Refusal = Callable[[int, dict[str, Any]], RecordBackAnswer]


@dataclass(frozen=True)
class RecordBackCall:
    """One billing system's call that records the payment (or its refund), and how its answer reads; its body a form,
    or JSON (`json_body`)."""

    method: str
    url: str
    form: dict[str, str] | None
    headers: dict[str, str]
    read_answer: Callable[[int, dict[str, Any]], RecordBackAnswer]
    json_body: dict[str, Any] | None = None


class BillingApi:
    def __init__(self, http_client: httpx.AsyncClient, timeout: float) -> None:
        self._http = http_client
        self._timeout = timeout

    async def send(self, call: RecordBackCall) -> RecordBackAnswer:
        answered = await self.exchange(call.method, call.url, call.form, call.headers, json_body=call.json_body)
        if isinstance(answered, RecordBackAnswer):
            return answered
        return call.read_answer(answered.status_code, json_of(answered))

    async def read(
        self, url: str, headers: dict[str, str], refusal: Refusal, params: dict[str, str] | None = None
    ) -> dict[str, Any] | RecordBackAnswer:
        """A GET's JSON body, or the try's outcome: the billing system's error as `refusal` reads it, or none came."""
        answered = await self.exchange("GET", url, None, headers, params)
        if isinstance(answered, RecordBackAnswer):
            return answered
        body = json_of(answered)
        if not 200 <= answered.status_code < 300:
            return refusal(answered.status_code, body)
        return body

    async def exchange(
        self,
        method: str,
        url: str,
        form: dict[str, str] | None,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> httpx.Response | RecordBackAnswer:
        """The billing system's answer, or the try's outcome when none came: blocked by the egress policy (final),
        else the error (tried again)."""
        try:
            return await self._http.request(
                method, url, data=form, json=json_body, params=params, headers=headers, timeout=self._timeout
            )
        except (httpx.HTTPError, OSError) as error:
            reason = blocked_reason(error)
            if reason is not None:
                return RecordBackAnswer(accepted=False, error=reason, blocked=True)
            return RecordBackAnswer(accepted=False, error=f"{type(error).__name__}: {error}"[:500])


def json_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
