"""What intake's handlers need of storage: one small port per aggregate (MongoDB in adapters/, in memory in tests).

Configuration documents (merchants, profiles, API keys, connector accounts) travel as the dicts they are stored
as; the recovery intent as its aggregate (`domain.intent.Intent`). Every read made for a caller is scoped by
merchant (and profile where it applies): another merchant's id reads as absent. `tx` is the unit of work's
transaction: a read or write inside one takes part in it; the messages of an `IntentChange` are emitted into it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from recovery_contracts.payments import IntentStatus
from recovery_intake.domain.audit import EVERY_ENTRY, AuditEntry, AuditFilter
from recovery_intake.domain.card_backfill import SavedCard
from recovery_intake.domain.intent import Intent, IntentChange
from recovery_runtime.bus import Publisher
from recovery_runtime.clock import Clock
from recovery_runtime.payment_fence import PaymentFences
from recovery_runtime.unit_of_work import Transaction, UnitOfWorkPort

Document = dict[str, Any]


class IntentExists(Exception):
    """The invoice (merchant + merchant_reference_id) has an intent already: a concurrent or earlier request."""


class OutcomeRecorded(StrEnum):
    APPLIED = "applied"
    # Recorded without effect: the intent keeps its status (`KEPT_AGAINST_OUTCOME`).
    KEPT = "kept"
    DUPLICATE = "duplicate"
    UNKNOWN_INTENT = "unknown_intent"


class Intents(Protocol):
    async def add(self, change: IntentChange, tx: Transaction, *, applied: str | None = None) -> None:
        """Store a new intent with its messages and the consumed message's key; IntentExists when the invoice
        has one already (nothing is stored then)."""
        ...

    async def by_reference(
        self, merchant_id: str, reference: str, tx: Transaction, *, applying: str | None = None
    ) -> Intent | None:
        """The invoice's intent; AlreadyApplied when it records `applying` (a consumed message's key)."""
        ...

    async def save(self, change: IntentChange, tx: Transaction, *, applied: str | None = None) -> None:
        """Replace the intent (read in the same transaction) and emit the change's messages; with `applied`,
        record that key among the intent's applied ids (what `by_reference(applying=...)` finds)."""
        ...

    async def get(self, merchant_id: str, payment_id: str, profile_id: str | None = None) -> Intent | None: ...

    async def open_with_tokens(
        self, merchant_id: str, cards: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[str]]:
        """For each (customer at the payment processor, saved token) of `cards`, the references of the merchant's
        invoices neither paid nor cancelled of that customer holding that token (a bounded number; a card with none
        is absent), in a few queries whatever the number of cards."""
        ...

    async def record_outcome(
        self, payment_id: str, status: IntentStatus, payment_object: Document, now: datetime, applied: str
    ) -> OutcomeRecorded:
        """Apply a payment outcome (`Intent.with_outcome`) and record `applied`, in one compare-and-set write."""
        ...


class SavedCards(Protocol):
    async def get(self, merchant_id: str, customer_id: str, token: str) -> SavedCard | None:
        """What the merchant's uploads said of the customer's card, while it is kept (`SAVED_CARD_DAYS`)."""
        ...

    async def save(self, merchant_id: str, cards: Sequence[SavedCard]) -> None:
        """Each card's fields over what earlier uploads said (a field it does not give is kept; a history given
        replaces the one kept), kept `SAVED_CARD_DAYS` from its `uploaded_at`; in a few writes whatever the count.
        Returns once every intake instance's `get` reads them (a recovery accepted after this reads them)."""
        ...

    async def of_customer(self, merchant_id: str, customer_id: str, limit: int) -> list[SavedCard]:
        """The customer's kept cards, by token, at most `limit`."""
        ...

    async def forget(self, merchant_id: str, customer_id: str, tokens: Collection[str]) -> None:
        """The customer's kept cards of `tokens` removed (a card uploaded again meanwhile is kept anew only if its
        token is not among them)."""
        ...


class Merchants(Protocol):
    async def get(self, merchant_id: str) -> Document | None: ...

    async def add(self, doc: Document) -> None: ...


class Profiles(Protocol):
    async def get(self, merchant_id: str, profile_id: str, tx: Transaction | None = None) -> Document | None:
        """Outside a transaction possibly from a cache a few seconds old; inside one, always read."""
        ...

    async def add(self, doc: Document, tx: Transaction) -> None: ...

    async def count(self, merchant_id: str) -> int:
        """How many profiles the merchant has."""
        ...

    async def save(self, doc: Document, expected_version: int, tx: Transaction) -> bool:
        """Replace the profile if it still has `expected_version` (compare-and-set); False when it has not."""
        ...

    async def with_secrets_to_retire(self, now: datetime, limit: int = 500) -> list[Document]:
        """Profiles (`_id`, `merchant_id`) whose rotated-out Standard Webhooks secrets have reached the end of
        their overlap."""
        ...


class ApiKeys(Protocol):
    async def by_digest(self, digest: str) -> Document | None:
        """Possibly from a cache a few seconds old: a revocation through another intake instance applies within
        its seconds; a digest found absent may be remembered as absent for a few seconds too (a key created
        through this instance is found at once). Expiry is the caller's to check."""
        ...

    async def get(self, merchant_id: str, key_id: str) -> Document | None: ...

    async def active(self, merchant_id: str, limit: int, skip: int) -> list[Document]:
        """The merchant's keys not revoked, newest first."""
        ...

    async def count_active(self, merchant_id: str, now: datetime) -> int:
        """How many of the merchant's keys are neither revoked nor expired at `now`."""
        ...

    async def add(self, doc: Document) -> None: ...

    async def update(self, key: Document, changes: Document) -> Document | None:
        """Sets `changes` on `key` (as read): the key as changed; None when it was revoked meanwhile (the write is
        conditional on it)."""
        ...

    async def revoke(self, merchant_id: str, key_id: str, now: datetime) -> list[str]:
        """Revokes the key and every key it minted (`created_by_key`), and theirs: the ids revoked, the named key
        first; empty when the merchant has no such key, or it is revoked already. The revocation is written
        before the minted keys are looked for."""
        ...


class ConnectorAccounts(Protocol):
    async def get(
        self, merchant_id: str, account_id: str, *, profile_id: str | None = None, tx: Transaction | None = None
    ) -> Document | None:
        """Outside a transaction possibly from a cache a few seconds old; inside one, always read."""
        ...

    async def add(self, doc: Document, tx: Transaction) -> None: ...

    async def save(self, doc: Document, expected_version: int, tx: Transaction) -> bool:
        """Replace the account if it still has `expected_version` (compare-and-set); False when it has not."""
        ...


class SharedRates(Protocol):
    """Rate limits every intake instance shares (`adapters.rate_limits`): one caller's budget counted once, whichever
    instance the load balancer picks."""

    async def take(self, caller: str, per_second: float, burst: int) -> float:
        """0 when `caller` may go on (its share is taken), else the seconds until it may: a budget of `burst`
        at once, refilled at `per_second`. A store that does not answer lets the caller go on (the per-process
        limit still holds)."""
        ...


class AuditLog(Protocol):
    """The audit trail's entries (domain/audit.py), kept for the retention the deployment sets."""

    async def record(self, entry: AuditEntry) -> None: ...

    async def page(
        self, merchant_id: str | None, limit: int, after: tuple[datetime, str] | None, where: AuditFilter = EVERY_ENTRY
    ) -> list[AuditEntry]:
        """The merchant's entries (None: the platform's own, of no merchant) matching `where`, newest first, after
        (`at`, `entry_id`) of the previous page's last."""
        ...


@dataclass(frozen=True)
class IntakeAdapters:
    """Everything intake's handlers touch outside the process; `app.build_service` builds the real ones."""

    intents: Intents
    merchants: Merchants
    profiles: Profiles
    api_keys: ApiKeys
    connector_accounts: ConnectorAccounts
    unit_of_work: UnitOfWorkPort
    clock: Clock
    # What the merchant's card-data uploads said of its customers' cards, for their recoveries still to come.
    saved_cards: SavedCards
    # The payment fences shared with the executor: a cancel is accepted only where no charge can follow it.
    payment_fences: PaymentFences
    # What the merchant's callers did (the audit trail).
    audit: AuditLog
    # None: the service's own (confirmed publishes to RabbitMQ).
    publisher: Publisher | None = None
    # None: the rate limits are per process only (RATE_LIMIT_SHARED=false, and the unit tests).
    shared_rates: SharedRates | None = None
