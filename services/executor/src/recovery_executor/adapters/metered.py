"""A payment connector that counts and times every call it passes on (the executor's connector metrics)."""

from __future__ import annotations

import time

from recovery_executor import metrics
from recovery_executor.domain.connector import ChargeOutcome, ChargeRequest
from recovery_executor.domain.ports import PaymentConnector


class MeteredConnector:
    def __init__(self, inner: PaymentConnector, connector_name: str) -> None:
        self._inner = inner
        self._name = connector_name

    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        started = time.perf_counter()
        outcome = await self._inner.charge(request)
        self._observe(started, outcome)
        return outcome

    async def sync(self, request: ChargeRequest, connector_transaction_id: str | None = None) -> ChargeOutcome:
        started = time.perf_counter()
        outcome = await self._inner.sync(request, connector_transaction_id)
        self._observe(started, outcome)
        return outcome

    def _observe(self, started: float, outcome: ChargeOutcome) -> None:
        metrics.CHARGE_SECONDS.labels(self._name).observe(time.perf_counter() - started)
        metrics.CHARGES.labels(self._name, outcome.kind.value).inc()
