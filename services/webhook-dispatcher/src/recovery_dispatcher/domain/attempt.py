"""One delivery attempt as it is recorded: what was sent, what came back, and the verdict on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from recovery_dispatcher.domain.policy import DeliveryVerdict

HeaderList = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    url: str
    request_headers: HeaderList
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_headers: HeaderList
    response_body: str | None
    response_body_truncated: bool
    error_message: str | None
    verdict: DeliveryVerdict

    @property
    def is_success(self) -> bool:
        return self.verdict.is_success
