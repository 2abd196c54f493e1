"""What the executor needs from a payment connector (Stripe first)."""

from __future__ import annotations

from typing import Protocol

from recovery_executor.domain.connector import ChargeOutcome, ChargeRequest


class PaymentConnector(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        """Create and confirm an off-session charge with the request's idempotency key."""
        ...

    async def sync(self, request: ChargeRequest, connector_transaction_id: str | None = None) -> ChargeOutcome:
        """Look up what became of that attempt at the connector, without charging (PSYNC)."""
        ...
