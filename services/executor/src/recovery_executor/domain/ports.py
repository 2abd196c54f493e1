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
    accepted: bool  # a 2xx answer, or the billing system's "recorded already"
    status_code: int | None = None
    error: str | None = None
    # Final, never retried: the egress policy refused the destination, or no try could ever be taken (a billing
    # system without the call, nothing to name the record by).
    blocked: bool = False
    # The billing system's id of what the record made (Chargebee's `transaction.id`, Stripe Billing's credit note
    # of a lost dispute, found or made); None where there is none (a payment's record at Stripe Billing or Recurly,
    # custombilling) or the answer named none ("recorded already").
    transaction_id: str | None = None


class BillingRecorder(Protocol):
    async def record_back(self, url: str, body: dict[str, Any], *, idempotency_key: str) -> RecordBackAnswer:
        """Tell the billing connector about a successful retry (Hyperswitch's InvoiceRecordBack)."""
        ...


class BillingSystemRecorder(Protocol):
    async def record_back(self, request: RecordBack, *, idempotency_key: str) -> RecordBackAnswer:
        """Record a successful retry at the billing system through its own API (Stripe Billing, Chargebee, Recurly)."""
        ...

    async def record_refund(
        self, request: RecordBack, *, transaction_id: str | None, idempotency_key: str
    ) -> RecordBackAnswer:
        """Record the lost dispute `request.dispute` at the billing system, once: Chargebee's refund of the payment's
        transaction (`transaction_id`, as its record back kept it; None: found at Chargebee by the connector's
        charge), Stripe Billing's credit note of the invoice. A try after the first looks for the one an earlier try
        made and is accepted if it is there (domain/dispute_refunds.py `looks_before_recording`)."""
        ...
