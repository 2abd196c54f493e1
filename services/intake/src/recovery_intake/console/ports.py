"""What the console reads and does, as small ports: the read model, the webhook events, the operator's tools.

The answers are the internal APIs' JSON bodies (the same ones intake's public routes forward), as dicts: the
console shows them, it does not re-model them. Every read names the merchant it is for; the owner scopes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from recovery_contracts.api.data_backfill import UpdateTokenStatusRequest

Document = dict[str, Any]


class OwnerUnavailable(Exception):
    """The service owning the data did not answer (down, or a 5xx): the page says so instead of failing."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"the {owner} service does not answer")
        self.owner = owner


class OwnerRefused(Exception):
    """The owner refused the request as invalid (a filter it does not accept): the message says why."""


@dataclass(frozen=True)
class RecoveryFilter:
    """The Recoveries page's filters and page (Hyperswitch's recovery-list parameters)."""

    status: str | None = None
    created_from: date | None = None
    created_to: date | None = None
    profile_id: str | None = None
    # The record back's states after its last try (any of them; empty: any or none).
    record_back: tuple[str, ...] = ()
    # Where the payment's disputes stand, taken together (any of these; empty: any or none).
    dispute: tuple[str, ...] = ()
    limit: int = 20
    offset: int = 0
    cursor: str | None = None


class RecoveryReads(Protocol):
    """The read model (the analytics service)."""

    async def recoveries(self, merchant_id: str, where: RecoveryFilter) -> Document:
        """Hyperswitch's recovery list: `{count, total_count, data, next_cursor}`."""
        ...

    async def recovery(self, merchant_id: str, payment_id: str) -> Document | None:
        """The recovery intent, None when the merchant has no such payment."""
        ...

    async def analytics(
        self, merchant_id: str, from_date: date | None, to_date: date | None, profile_id: str | None
    ) -> Document: ...

    async def timeline(self, merchant_id: str, payment_id: str) -> Document | None:
        """`RecoveryTimelineResponse`: entries, the request, the attempts; None when there is no such payment."""
        ...

    async def disputes_to_answer(self, merchant_id: str, limit: int) -> list[Document]:
        """The disputes on the merchant's recovered payments waiting for its answer (`dispute_opened`), by when to
        answer them (those without a deadline first, then the earliest), at most `limit`: `DisputeObject`s as
        JSON."""
        ...


class Workflows(Protocol):
    """The scheduler's process tracker (what `/v2/process-trackers/revenue-recovery-workflow/{id}` answers)."""

    async def workflow(self, merchant_id: str, payment_id: str) -> Document | None:
        """The recovery's workflow: its plan, its history of decisions with their reasons, its attempts with the
        scheduler's decline classes; None when the scheduler has no such recovery for the merchant."""
        ...


class WebhookEvents(Protocol):
    """The webhook dispatcher's events API."""

    async def events(
        self, merchant_id: str, *, object_id: str | None = None, profile_id: str | None = None, limit: int = 20
    ) -> Document:
        """`{events, total_count, next_cursor}`, the initial event records, newest first."""
        ...

    async def attempts(self, merchant_id: str, event_id: str) -> list[Document] | None:
        """Every delivery attempt of an event; None when the merchant has no such event."""
        ...

    async def retry(self, merchant_id: str, event_id: str) -> Document | None:
        """Deliver the event once more, now (a manual retry); its attempt's record, None for an unknown event."""
        ...

    async def endpoints(self, merchant_id: str) -> list[Document]:
        """Every endpoint (profile, URL) of the merchant with its health: breaker, disabled flag, the success
        rate and answer latency of its recent attempts."""
        ...

    async def recover(self, merchant_id: str, since: datetime) -> Document:
        """Deliver again the merchant's events that failed since `since` (a batch: `{recovered_count, event_ids,
        next_cursor}`)."""
        ...


class RetryStatistics(Protocol):
    """The scheduler's retry statistics (what `/v2/revenue-recovery/retry-stats` answers)."""

    async def retry_stats(self, merchant_id: str) -> Document:
        """`RetryStatsResponse`: the merchant's retries and approvals per key, with their UTC buckets."""
        ...


class CardStatuses(Protocol):
    """The scheduler's card budgets, which keep the hard declines on each of the merchant's cards (what
    `GET /v2/recovery/data-backfill/token-status` and `PUT /v2/recovery/data-backfill/update-token` forward to)."""

    async def token_status(self, merchant_id: str, token: str) -> Document:
        """`TokenStatusResponse`: whether the merchant's recoveries may charge the card, each hard decline recorded
        on it, and their attempts on it in the last 30 days and planned (a card nothing is recorded on answers so,
        empty)."""
        ...

    async def update_token_status(self, merchant_id: str, update: UpdateTokenStatusRequest) -> Document:
        """`UpdateTokenStatusResponse`: the card marked hard-declined for every recovery of the merchant, or its hard
        declines cleared; OwnerRefused (with the scheduler's reason) for a request it does not take."""
        ...


class RecordBacks(Protocol):
    """The executor's record backs (what a `PSYNC_WORKFLOW` resume starts again)."""

    async def restart(self, merchant_id: str, payment_id: str, dispute_id: str | None = None) -> Document | None:
        """Start the payment's abandoned or blocked record back (with `dispute_id`: the refund record of that dispute
        lost on it) again, now: the record as it then stands; None when the payment has none; OwnerRefused (with the
        executor's reason) when it may not be restarted."""
        ...


@dataclass(frozen=True)
class Readiness:
    service: str
    ready: bool
    detail: str


@dataclass(frozen=True)
class ReplayOutcome:
    replayed: int
    failed: int


class Operations(Protocol):
    """What only an operator (the admin key) sees: dead letters and the services' readiness."""

    async def dead_letter_counts(self) -> dict[str, int]: ...

    async def replay(self, dead_letter_queue: str) -> ReplayOutcome: ...

    async def readiness(self) -> list[Readiness]: ...


@dataclass(frozen=True)
class ConsoleAdapters:
    """Everything the console reads and does outside intake's own storage; `adapters.http_adapters` builds them."""

    reads: RecoveryReads
    workflows: Workflows
    events: WebhookEvents
    operations: Operations
    retry_stats: RetryStatistics
    card_statuses: CardStatuses
    # None: intake has no EXECUTOR_INTERNAL_URL (the Payment page offers no restart).
    record_backs: RecordBacks | None = None
