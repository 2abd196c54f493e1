"""One MongoDB transaction per state change: the effect, the inbox record of the message, the outbox.

After commit the outbox messages are published with confirms and deleted; `OutboxRelay` republishes what a
crash left behind. Consumers therefore see at-least-once delivery, and effects apply exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from recovery_contracts.envelope import Envelope
from recovery_runtime import metrics
from recovery_runtime.bus import AlreadyApplied, OutgoingMessage, Publisher
from recovery_runtime.clock import Clock
from recovery_runtime.mongo import IndexSpec

log = structlog.get_logger(__name__)

T = TypeVar("T")

_TRANSIENT_LABELS = ("TransientTransactionError", "UnknownTransactionCommitResult")
_MAX_TRANSACTION_TRIES = 5


class Transaction:
    """What a handler gets inside the transaction: the session for its writes, and `emit` for messages."""

    def __init__(self, session: AsyncClientSession) -> None:
        self.session = session
        self.outgoing: list[OutgoingMessage] = []

    def emit(self, envelope: Envelope[Any]) -> None:
        self.outgoing.append(OutgoingMessage.of(envelope))


class MessageStore:
    """A service's inbox and outbox, and the transaction that ties them to its state changes."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: AsyncDatabase[dict[str, Any]],
        service: str,
        publisher: Publisher,
        clock: Clock,
        inbox_retention: timedelta = timedelta(days=14),
    ) -> None:
        self._client = client
        self._publisher = publisher
        self._clock = clock
        self._retention = inbox_retention
        self.inbox = db[f"inbox_{service}"]
        self.outbox = db[f"outbox_{service}"]

    def indexes(self) -> list[IndexSpec]:
        return [
            IndexSpec(
                self.inbox.name,
                [("applied_at", ASCENDING)],
                "inbox_ttl",
                options={"expireAfterSeconds": int(self._retention.total_seconds())},
            ),
            IndexSpec(self.outbox.name, [("created_at", ASCENDING)], "outbox_created_at"),
        ]

    async def apply(
        self,
        work: Callable[[Transaction], Awaitable[T]],
        *,
        consumed: Envelope[Any] | None = None,
        consumer: str | None = None,
    ) -> T:
        """Run `work` in a transaction that also records `consumed` as applied by `consumer`.

        Raises AlreadyApplied when that message was applied before. Retries transient transaction errors.
        """
        for attempt in range(1, _MAX_TRANSACTION_TRIES + 1):
            try:
                async with self._client.start_session() as session:
                    async with await session.start_transaction():
                        tx = Transaction(session)
                        if consumed is not None:
                            await self._record_applied(consumed, consumer, session)
                        result = await work(tx)
                        if tx.outgoing:
                            now = self._clock.now()
                            await self.outbox.insert_many([m.to_document(now) for m in tx.outgoing], session=session)
                break
            except PyMongoError as error:
                if attempt < _MAX_TRANSACTION_TRIES and any(error.has_error_label(x) for x in _TRANSIENT_LABELS):
                    await asyncio.sleep(0.01 * attempt)
                    continue
                raise
        await self.flush(tx.outgoing)
        return result

    async def _record_applied(self, consumed: Envelope[Any], consumer: str | None, session: AsyncClientSession) -> None:
        try:
            await self.inbox.insert_one(
                {"_id": f"{consumer}:{consumed.message_id}", "applied_at": self._clock.now()}, session=session
            )
        except DuplicateKeyError as duplicate:
            raise AlreadyApplied(consumed.message_id) from duplicate

    async def flush(self, messages: list[OutgoingMessage]) -> None:
        """Publish committed outbox messages and delete them; on failure the relay publishes them later."""
        if not messages:
            return
        try:
            await self._publisher.publish_many(messages)
        except Exception:
            log.warning("outbox.publish_deferred", count=len(messages), exc_info=True)
            return
        try:
            await self.outbox.delete_many({"_id": {"$in": [m.message_id for m in messages]}})
        except PyMongoError:
            # Published but still recorded (the database went away): the relay publishes them once more, which
            # consumers de-duplicate. Raising here would fail a handler whose effect is already committed.
            log.warning("outbox.delete_deferred", count=len(messages), exc_info=True)


class OutboxRelay:
    """Republishes outbox records that stayed unpublished (the service died between commit and publish)."""

    def __init__(self, store: MessageStore, clock: Clock, after: timedelta, interval: float = 1.0) -> None:
        self._store = store
        self._clock = clock
        self._after = after
        self._interval = interval

    async def relay_once(self, limit: int = 500) -> int:
        cutoff = self._clock.now() - self._after
        docs = await self._store.outbox.find({"created_at": {"$lt": cutoff}}).sort("created_at", 1).to_list(limit)
        if docs:
            messages = [OutgoingMessage.from_document(d) for d in docs]
            await self._store.flush(messages)
            metrics.OUTBOX_RELAYED.inc(len(messages))
            log.info("outbox.relayed", count=len(messages))
        return len(docs)

    async def run(self) -> None:
        while True:
            try:
                await self.relay_once()
            except Exception:
                log.warning("outbox.relay_failed", exc_info=True)
            await asyncio.sleep(self._interval)
