"""What the executor needs from a payment connector (Stripe first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from recovery_contracts.messages import RecordBack

from .connector import ChargeOutcome, ChargeRequest


class PaymentConnector(Protocol):
    async def charge(self, request: ChargeRequest) -> ChargeOutcome:
        """Create and confirm an off-session charge with the request's idempotency key."""
        ...

    async def sync(self, request: ChargeRequest, connector_transaction_id: str | None = None) -> ChargeOutcome:
        """Look up what became of that attempt at the connector, without charging (PSYNC)."""
        ...


@dataclass(frozen=True)
class RecordBackAnswer:
    accepted: bool  # a 2xx answer
    status_code: int | None = None
    error: str | None = None
    blocked: bool = False  # the egress policy refused the destination: final, never retried


class BillingRecorder(Protocol):
    async def record_back(self, url: str, body: dict[str, Any], *, idempotency_key: str) -> RecordBackAnswer:
        """Tell the billing connector about a successful retry (Hyperswitch's InvoiceRecordBack)."""
        ...


class BillingSystemRecorder(Protocol):
    async def record_back(self, request: RecordBack, *, idempotency_key: str) -> RecordBackAnswer:
        """Record a successful retry at the billing system through its own API (Stripe Billing, Chargebee, Recurly)."""
        ...
