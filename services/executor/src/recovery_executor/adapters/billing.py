"""Record back to a `custombilling` connector: an HTTP callback to the account's `record_back_url`.

The URL is the merchant's: the client is the egress policy's (recovery_runtime.egress), and a destination the
policy refuses is answered `blocked`, final, never retried."""

from __future__ import annotations

from typing import Any

import httpx

from recovery_executor.domain.ports import RecordBackAnswer
from recovery_runtime.egress import blocked_reason


class HttpBillingRecorder:
    def __init__(self, http_client: httpx.AsyncClient, timeout: float = 10.0) -> None:
        self._http = http_client
        self._timeout = timeout

    async def record_back(self, url: str, body: dict[str, Any], *, idempotency_key: str) -> RecordBackAnswer:
        headers = {"Idempotency-Key": idempotency_key, "User-Agent": "recovery-executor"}
        try:
            response = await self._http.post(url, json=body, headers=headers, timeout=self._timeout)
        except (httpx.HTTPError, OSError) as error:
            reason = blocked_reason(error)
            if reason is not None:
                return RecordBackAnswer(accepted=False, error=reason, blocked=True)
            return RecordBackAnswer(accepted=False, error=f"{type(error).__name__}: {error}"[:500])
        return RecordBackAnswer(accepted=200 <= response.status_code < 300, status_code=response.status_code)
