"""A payment's record back to the billing system, as `recovery timeline` reads it: from the executor's internal
endpoint (`GET /internal/record-backs/{merchant_id}/{payment_id}`), the owner of `record_backs`, never from
that collection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from recovery_cli.stack.state import service_url
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.settings import DEVELOPMENT_INTERNAL_TOKEN

EXECUTOR_DEFAULT_URL = "http://127.0.0.1:8082"


class RecordBackUnread(Exception):
    """The executor could not be asked, or refused: the timeline says so instead of the record back."""


def executor_url(run_dir: Path) -> str:
    """`EXECUTOR_INTERNAL_URL`, else the executor of the stack `recovery up` runs from `run_dir`, else :8082."""
    return service_url(run_dir, "executor", "EXECUTOR_INTERNAL_URL", EXECUTOR_DEFAULT_URL)


def internal_token() -> str:
    return os.environ.get("INTERNAL_API_TOKEN") or DEVELOPMENT_INTERNAL_TOKEN


class ExecutorRecordBacks:
    def __init__(self, base_url: str, token: str, timeout: float = 5.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def read(self, merchant_id: str, payment_id: str) -> dict[str, Any] | None:
        """The record back and its tries; None when the payment has none (nothing recovered, or not yet)."""
        url = f"{self._base_url}/internal/record-backs/{merchant_id}/{payment_id}"
        headers = {TOKEN_HEADER: self._token, MERCHANT_HEADER: merchant_id}
        try:
            answer = httpx.get(url, headers=headers, timeout=self._timeout, follow_redirects=False, trust_env=False)
        except httpx.HTTPError as error:
            raise RecordBackUnread(f"executor at {self._base_url} unreachable ({type(error).__name__})") from error
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise RecordBackUnread(f"executor at {self._base_url} answered {answer.status_code}")
        found: dict[str, Any] = answer.json()
        return found
