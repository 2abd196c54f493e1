"""Record back to a `custombilling` connector: an HTTP callback to the account's `record_back_url`."""

from __future__ import annotations

from typing import Any

import httpx

from recovery_executor.domain.ports import RecordBackAnswer


class HttpBillingRecorder:
    def __init__(self, http_client: httpx.AsyncClient, timeout: float = 10.0) -> None:
        self._http = http_client
        self._timeout = timeout

    async def record_back(self, url: str, body: dict[str, Any], *, idempotency_key: str) -> RecordBackAnswer:
        headers = {"Idempotency-Key": idempotency_key, "User-Agent": "recovery-executor"}
        try:
            response = await self._http.post(
                url, json=body, headers=headers, timeout=self._timeout, follow_redirects=False
            )
        except httpx.HTTPError as error:
            return RecordBackAnswer(accepted=False, error=f"{type(error).__name__}: {error}"[:500])
        return RecordBackAnswer(accepted=200 <= response.status_code < 300, status_code=response.status_code)
