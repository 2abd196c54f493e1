"""One atomic write per state change: the effect, the record that its message was applied, the outgoing messages.

Two shapes, both "state + outgoing messages in one transaction or one document" (docs/guarantees.md):

- `UnitOfWork.apply`: a MongoDB transaction holding the effect, the inbox record of the consumed message
  (`inbox_<service>`) and the outgoing messages (`outbox_<service>`).
- `UnitOfWork.write`: one document holds it all. The handler checks and records the consumed message's id in
  the state document itself (`applied_key`, `was_applied`, `mark_applied`/`push_applied`: a compare-and-set in the
  same write as the effect) and embeds its outgoing messages in that document (`Transaction.embed`, field
  `outbox`). No transaction, one round trip. The collection must be registered with `embed_outbox_in` so that
  the relay looks there too.

After the write the messages are published with confirms; their removal (outbox delete, `$pull` of embedded
ones) is batched in the background, one command per collection per `cleanup_delay`. `OutboxRelay` republishes
what a crash left behind. Consumers therefore see at-least-once delivery, and effects apply exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import structlog
from pymongo import ASCENDING, AsyncMongoClient, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from recovery_contracts.envelope import Envelope, MessageType
from recovery_runtime import metrics
from recovery_runtime.bus import AlreadyApplied, OutgoingMessage, Publisher
from recovery_runtime.clock import Clock
from recovery_runtime.mongo import IndexSpec

log = structlog.get_logger(__name__)

T = TypeVar("T")

_MAX_TRANSACTION_TRIES = 5
# A commit whose result was not known (the reply lost): it may have committed, so only the commit is tried again
# (MongoDB answers a repeated commit of a committed transaction as committed), never the work.
_UNKNOWN_COMMIT = "UnknownTransactionCommitResult"
_MAX_COMMIT_TRIES = 5

# Messages embedded in a state document until published (`UnitOfWork.write`).
OUTBOX_FIELD = "outbox"
# Ids of the messages applied to a state document (`<queue>:<message id>`), the most recent APPLIED_KEEP.
APPLIED_FIELD = "applied_messages"
APPLIED_KEEP = 100


async def _commit(session: AsyncClientSession) -> None:
    """Commit the session's transaction; a commit whose result is unknown is committed again (not the work: it may
    have committed, and running it again would find its own change, an applied message, a taken id)."""
    for attempt in range(1, _MAX_COMMIT_TRIES + 1):
        try:
            await session.commit_transaction()
            return
        except PyMongoError as error:
            if attempt < _MAX_COMMIT_TRIES and error.has_error_label(_UNKNOWN_COMMIT):
                log.warning("transaction.commit_unknown", attempt=attempt, error=str(error))
                await asyncio.sleep(0.01 * attempt)
                continue
            raise


def applied_key(consumed: Envelope[Any], consumer: str) -> str:
    """The id a consumed message is recorded under, in the inbox or in a state document."""
    return f"{consumer}:{consumed.message_id}"


def was_applied(doc: dict[str, Any] | None, key: str) -> bool:
    return doc is not None and key in doc.get(APPLIED_FIELD, ())


def mark_applied(doc: dict[str, Any], key: str) -> None:
    """Record `key` in a state document about to be written whole (insert, or replace with compare-and-set)."""
    applied = [k for k in doc.get(APPLIED_FIELD, []) if k != key]
    applied.append(key)
    doc[APPLIED_FIELD] = applied[-APPLIED_KEEP:]


def push_applied(key: str) -> dict[str, Any]:
    """The `$push` recording `key` in an update; pair it with the filter `not_applied(key)`."""
    return {APPLIED_FIELD: {"$each": [key], "$slice": -APPLIED_KEEP}}


def not_applied(key: str) -> dict[str, Any]:
    return {APPLIED_FIELD: {"$ne": key}}


def embedded_outbox_index(collection: str) -> IndexSpec:
    """The index the relay's scan of a collection with embedded outgoing messages needs."""
    return IndexSpec(collection, [(f"{OUTBOX_FIELD}.created_at", ASCENDING)], "embedded_outbox_created_at")


class Transaction:
    """What a handler gets inside the unit of work: the session for its writes, and `emit` for messages.

    In `UnitOfWork.write` (`Transaction.one_document()`) there is no session (`session` is None: the
    repositories' methods used there take `session=None`) and emitted messages must be embedded (`embed`) in
    the one document the handler writes."""

    session: AsyncClientSession

    def __init__(self, session: AsyncClientSession) -> None:
        self.session = session
        self.outgoing: list[OutgoingMessage] = []
        self.embedded_in: tuple[str, Any] | None = None
        self.on_commit: list[Callable[[], None]] = []

    @classmethod
    def one_document(cls) -> Transaction:
        tx = cls.__new__(cls)
        tx.session = None  # type: ignore[assignment]  # no transaction: one write of one document
        tx.outgoing = []
        tx.embedded_in = None
        tx.on_commit = []
        return tx

    def emit(self, envelope: Envelope[Any]) -> None:
        self.outgoing.append(OutgoingMessage.of(envelope))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the change is committed (never for a try that failed or is retried), before its
        messages are published: for a reader in this process that should see the change at once (a loop waking)."""
        self.on_commit.append(callback)

    def embed(self, collection: str, doc_id: Any, now: Any) -> list[dict[str, Any]]:
        """The outgoing messages as documents to store in field `outbox` of document `doc_id` of `collection` (same
        write as the state change: `$push` them, or set them on insert)."""
        self.embedded_in = (collection, doc_id)
        return [m.to_document(now) for m in self.outgoing]

    def require_embedded(self) -> None:
        """A one-document change has no outbox: what it emitted must have been embedded (`embed`) in its document."""
        if self.outgoing and self.embedded_in is None:
            raise RuntimeError("messages emitted by UnitOfWork.write must be embedded in the state document")


class UnitOfWorkPort(Protocol):
    """What handlers need of the unit of work: `UnitOfWork` on MongoDB, `recovery_runtime.testing`'s in memory."""

    async def apply(
        self,
        work: Callable[[Transaction], Awaitable[T]],
        *,
        consumed: Envelope[Any] | None = None,
        consumer: str | None = None,
        inbox: bool = True,
    ) -> T: ...

    async def write(self, work: Callable[[Transaction], Awaitable[T]]) -> T: ...

    async def remove_published(self) -> None: ...


class UnitOfWork:
    """A service's inbox and outbox, and the unit of work that ties them to its state changes."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        db: AsyncDatabase[dict[str, Any]],
        service: str,
        publisher: Publisher,
        clock: Clock,
        inbox_retention: timedelta = timedelta(days=14),
        cleanup_delay: float = 1.0,
    ) -> None:
        self._client = client
        self._db = db
        self._publisher = publisher
        self._clock = clock
        self._retention = inbox_retention
        self.cleanup_delay = cleanup_delay
        self.inbox = db[f"inbox_{service}"]
        self.outbox = db[f"outbox_{service}"]
        # Collections whose documents may embed outgoing messages (scanned by the relay).
        self.embedding: list[AsyncCollection[dict[str, Any]]] = []
        # Published, awaiting removal: outbox ids; per embedding collection, document id -> message ids.
        self._published: list[str] = []
        self._published_embedded: dict[str, dict[Any, list[str]]] = {}
        self._cleanup: asyncio.Task[None] | None = None

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

    def embed_outbox_in(self, collection: str) -> IndexSpec:
        """Register a collection whose documents embed outgoing messages; returns the index to create."""
        if all(c.name != collection for c in self.embedding):
            self.embedding.append(self._db[collection])
        return embedded_outbox_index(collection)

    async def apply(
        self,
        work: Callable[[Transaction], Awaitable[T]],
        *,
        consumed: Envelope[Any] | None = None,
        consumer: str | None = None,
        inbox: bool = True,
    ) -> T:
        """Run `work` in a transaction that also records `consumed` as applied by `consumer`.

        Raises AlreadyApplied when that message was applied before. Retries transient transaction errors.
        `inbox=False`: `work` records the message in its state document itself (compare-and-set, same
        transaction), and raises AlreadyApplied.
        """
        for attempt in range(1, _MAX_TRANSACTION_TRIES + 1):
            try:
                async with self._client.start_session() as session:
                    await session.start_transaction()
                    try:
                        tx = Transaction(session)
                        if consumed is not None and inbox:
                            await self._record_applied(consumed, consumer, session)
                        result = await work(tx)
                        if tx.outgoing:
                            now = self._clock.now()
                            await self.outbox.insert_many([m.to_document(now) for m in tx.outgoing], session=session)
                    except BaseException:
                        if session.in_transaction:
                            await session.abort_transaction()
                        raise
                    await _commit(session)
                break
            except PyMongoError as error:
                if attempt < _MAX_TRANSACTION_TRIES and error.has_error_label("TransientTransactionError"):
                    await asyncio.sleep(0.01 * attempt)
                    continue
                raise
        _committed(tx)
        await self.flush(tx.outgoing)
        return result

    async def write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run `work`, a change of one document that carries everything itself (no transaction): the applied
        message id (compare-and-set in its filter) and the outgoing messages (`Transaction.embed`)."""
        tx = Transaction.one_document()
        result = await work(tx)
        _committed(tx)
        tx.require_embedded()
        if tx.outgoing:
            await self.flush(tx.outgoing, embedded_in=tx.embedded_in)
        return result

    async def _record_applied(self, consumed: Envelope[Any], consumer: str | None, session: AsyncClientSession) -> None:
        try:
            await self.inbox.insert_one(
                {"_id": applied_key(consumed, str(consumer)), "applied_at": self._clock.now()}, session=session
            )
        except DuplicateKeyError as duplicate:
            raise AlreadyApplied(consumed.message_id) from duplicate

    async def flush(self, messages: list[OutgoingMessage], embedded_in: tuple[str, Any] | None = None) -> None:
        """Publish committed messages; their records are removed in the background (one command per collection
        per `cleanup_delay`, at most a quarter of the relay's delay). On failure the relay publishes them later."""
        if not messages:
            return
        # Each on its own (confirms awaited together): one that fails (the broker away, or no queue bound for it)
        # stays for the relay without holding back the others.
        outcomes = await self._publisher.publish_each(messages)
        failed = [(m, o) for m, o in zip(messages, outcomes, strict=True) if o is not None]
        if failed:
            message, error = failed[0]
            log.warning(
                "outbox.publish_deferred",
                count=len(failed),
                first=message.message_type.value,
                error=f"{type(error).__name__}: {error}",
            )
        ids = [m.message_id for m, o in zip(messages, outcomes, strict=True) if o is None]
        if not ids:
            return
        if embedded_in is None:
            self._published.extend(ids)
        else:
            collection, doc_id = embedded_in
            self._published_embedded.setdefault(collection, {}).setdefault(doc_id, []).extend(ids)
        if self._cleanup is None or self._cleanup.done():
            self._cleanup = asyncio.get_running_loop().create_task(self._remove_published_later())

    async def _remove_published_later(self) -> None:
        while self._published or self._published_embedded:
            await asyncio.sleep(self.cleanup_delay)
            await self.remove_published()

    async def remove_published(self) -> None:
        """Remove what was published: one `delete_many` for the outbox, and per embedding collection one bulk
        write of an update per document (one round trip, as an `update_many` would be). A failure only means the
        relay publishes those messages once more (consumers de-duplicate).

        Not an `update_many`: SecantusDB, the tests' stand-in, holds the collection while a multi-document update
        retries a write conflict, and a transaction that changed one of these documents and writes the collection
        again then waits for it for ever (docs/operations.md, "SecantusDB's livelock"); one-document updates let go
        between tries. MongoDB does the same work either way."""
        published, self._published = self._published, []
        embedded, self._published_embedded = self._published_embedded, {}
        try:
            if published:
                await self.outbox.delete_many({"_id": {"$in": published}})
            for collection, docs in embedded.items():
                pulls = [
                    UpdateOne({"_id": doc_id}, {"$pull": {OUTBOX_FIELD: {"_id": {"$in": ids}}}})
                    for doc_id, ids in docs.items()
                ]
                await self._db[collection].bulk_write(pulls, ordered=False)
        except PyMongoError:
            # Published but still recorded (the database went away): the relay publishes them once more, which
            # consumers de-duplicate. Never raised into a handler whose effect is already committed.
            log.warning("outbox.delete_deferred", count=len(published) + len(embedded), exc_info=True)


def _committed(tx: Transaction) -> None:
    for callback in tx.on_commit:
        try:
            callback()
        except Exception:
            # The change is committed: a failing observer must not turn it into a handler error (and a retry).
            log.warning("unit_of_work.after_commit_failed", exc_info=True)


# What the relay can publish: a record of another message type (a newer release's, rolled back) is not fetched at
# all, so that any number of them never fills a page and holds up the others; it stays for the release that wrote it.
KNOWN_TYPES = [t.value for t in MessageType]


def _readable(docs: list[dict[str, Any]], where: str, logged: set[str]) -> list[OutgoingMessage]:
    """The records this release can read; one it cannot is left where it is and logged once (by id) per process."""
    messages = []
    for doc in docs:
        try:
            messages.append(OutgoingMessage.from_document(doc))
        except (KeyError, TypeError, ValueError) as error:
            key = str(doc.get("_id"))
            if key not in logged and len(logged) < 10_000:
                logged.add(key)
                log.error("outbox.unreadable", where=where, message_id=key, error=str(error))
    return messages


class OutboxRelay:
    """Republishes outbox records that stayed unpublished (the service died between commit and publish)."""

    def __init__(self, store: UnitOfWork, clock: Clock, after: timedelta, interval: float = 1.0) -> None:
        # Published records must be gone well before the relay would take them for unpublished ones.
        store.cleanup_delay = min(store.cleanup_delay, after.total_seconds() / 4)
        self._store = store
        self._clock = clock
        self._after = after
        self._interval = interval
        self._logged: set[str] = set()  # records logged unreadable already

    async def relay_once(self, limit: int = 500) -> int:
        cutoff = self._clock.now() - self._after
        due: dict[str, Any] = {"created_at": {"$lt": cutoff}, "message_type": {"$in": KNOWN_TYPES}}
        docs = await self._store.outbox.find(due).sort("created_at", 1).to_list(limit)
        relayed = 0
        messages = _readable(docs, self._store.outbox.name, self._logged)
        if messages:
            await self._store.flush(messages)
            relayed += len(messages)
        unknown = {"created_at": {"$lt": cutoff}, "message_type": {"$nin": KNOWN_TYPES}}
        metrics.OUTBOX_UNREADABLE.labels(self._store.outbox.name).set(await self._store.outbox.count_documents(unknown))
        for collection in self._store.embedding:
            holders = await collection.find({OUTBOX_FIELD: {"$elemMatch": due}}, {OUTBOX_FIELD: 1}).to_list(limit)
            for holder in holders:
                old = [m for m in holder.get(OUTBOX_FIELD) or [] if m.get("message_type") in KNOWN_TYPES]
                messages = _readable(old, collection.name, self._logged)
                if messages:
                    await self._store.flush(messages, embedded_in=(collection.name, holder["_id"]))
                    relayed += len(messages)
        if relayed:
            await self._store.remove_published()
            metrics.OUTBOX_RELAYED.inc(relayed)
            log.info("outbox.relayed", count=relayed)
        return relayed

    async def run(self) -> None:
        while True:
            try:
                await self.relay_once()
            except Exception:
                log.warning("outbox.relay_failed", exc_info=True)
            await asyncio.sleep(self._interval)
