"""Group commit of the dispatcher's writes: many deliveries' claims, records and updates in a few round trips.

A delivery awaits its own writes, so a message is acknowledged only after its records are stored; the writes
of every delivery in flight share one `insert_many` per collection and one `bulk_write` per flush
(MongoDB-wire servers without group commit, such as SecantusDB, take an order of magnitude more documents
per second that way, and inserts several times more than updates).

Claims (`webhook_claims`) are the idempotency and ordering keys of initial events: `_id` is the event's
`idempotent_event_id`, `sequence_key` (`<payment_id>#<n>`, unique) its number within its payment. A claim is
inserted before the first attempt; the unique keys settle duplicates and races between dispatchers, per
document (an `insert_many(ordered=False)` reports each duplicate by index, which maps back to its caller).
Numbers are assigned optimistically (the highest number this process has seen for the payment, plus one; 1
for a payment it has not seen) and a `sequence_key` conflict renumbers that claim after reading the
payment's taken numbers (by the unique index) in the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

log = structlog.get_logger(__name__)

DUPLICATE_KEY = 11000
# Numbers probed per payment and round when a claim's optimistic number was taken.
_PROBE = 64
# Payments whose highest number this process remembers (most recent first out).
_REMEMBERED_PAYMENTS = 50_000


class DuplicateEvent(Exception):
    """An initial event with this `idempotent_event_id` is already claimed (a duplicate message, a race)."""


@dataclass
class _Insert:
    doc: dict[str, Any]
    done: asyncio.Future[None]
    sequenced: bool = False
    probe: bool = False
    tries: int = 0


@dataclass
class _Update:
    event_id: str
    fields: dict[str, Any]
    done: asyncio.Future[None]


@dataclass
class _Pending:
    claims: list[_Insert] = field(default_factory=list)
    inserts: list[_Insert] = field(default_factory=list)
    updates: list[_Update] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.claims) + len(self.inserts) + len(self.updates)


def sequence_key(payment_id: str, sequence: int) -> str:
    return f"{payment_id}#{sequence}"


class RecordWriter:
    """Batches writes to `webhook_claims` and `webhook_events`; flushes every `interval` seconds or at
    `max_batch` writes."""

    def __init__(
        self,
        events: AsyncCollection[dict[str, Any]],
        interval: float = 0.005,
        max_batch: int = 500,
        *,
        claims: AsyncCollection[dict[str, Any]] | None = None,
    ):
        self._events = events
        self._claims = claims if claims is not None else events.database["webhook_claims"]
        self._interval = interval
        self._max_batch = max_batch
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._highest: OrderedDict[str, int] = OrderedDict()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="record-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while len(self._pending):
            await self._flush()

    async def claim(self, doc: dict[str, Any]) -> None:
        """Insert the claim of an initial event (`_id` = its idempotent id), numbering it within its payment
        (sets `sequence` and `sequence_key` on `doc`). Raises DuplicateEvent when the event is claimed."""
        item = _Insert(doc, self._future(), sequenced=True)
        self._pending.claims.append(item)
        self._poke()
        await item.done

    async def insert(self, doc: dict[str, Any]) -> None:
        """Insert an event record. Raises DuplicateEvent when its `idempotent_event_id` is stored already."""
        item = _Insert(doc, self._future())
        self._pending.inserts.append(item)
        self._poke()
        await item.done

    async def update(self, event_id: str, fields: dict[str, Any]) -> None:
        update = _Update(event_id, fields, self._future())
        self._pending.updates.append(update)
        self._poke()
        await update.done

    def _future(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def _poke(self) -> None:
        if self._task is None:
            self.start()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Let the deliveries in flight add their writes: one round trip for all of them.
            if len(self._pending) < self._max_batch:
                await asyncio.sleep(self._interval)
            self._wake.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("record_writer.flush_failed")

    async def _flush(self) -> None:
        pending, self._pending = self._pending, _Pending()
        try:
            await asyncio.gather(self._flush_claims(pending.claims), self._flush_inserts(pending.inserts))
            # After the inserts of the same flush: an update may be for a record inserted in it.
            if pending.updates:
                await self._flush_updates(pending.updates)
        except BaseException as error:
            # Whatever went wrong (a bug, the writer cancelled mid-flush), no delivery may wait forever for its
            # write: it fails, its message is not acknowledged and comes back.
            problem = error if isinstance(error, Exception) else RuntimeError("record writer stopped mid-flush")
            self._fail([*pending.claims, *pending.inserts, *pending.updates], problem)
            raise

    async def _flush_claims(self, items: list[_Insert]) -> None:
        if not items:
            return
        try:
            await self._number(items)
        except Exception as error:
            self._fail(items, error)
            return
        failed = await self._insert_many(self._claims, items)
        for index, item in enumerate(items):
            problem = failed.get(index)
            if problem is None:
                self._remember(item.doc["payment_id"], item.doc["sequence"])
                _resolve(item.done)
            elif problem.get("code") == DUPLICATE_KEY and "sequence_key" in _index_of(problem):
                # The optimistic number was taken (an earlier event, or another dispatcher at the same moment):
                # renumber after reading the payment's numbers.
                item.tries += 1
                item.probe = True
                if item.tries > 5:
                    _reject(item.done, RuntimeError(f"cannot number event {item.doc['_id']}"))
                else:
                    self._pending.claims.append(item)
                    self._poke()
            elif problem.get("code") == DUPLICATE_KEY:
                _reject(item.done, DuplicateEvent(item.doc["_id"]))
            else:
                _reject(item.done, RuntimeError(problem.get("errmsg", "insert failed")))

    async def _flush_inserts(self, items: list[_Insert]) -> None:
        if not items:
            return
        failed = await self._insert_many(self._events, items)
        for index, item in enumerate(items):
            problem = failed.get(index)
            if problem is None:
                _resolve(item.done)
            elif problem.get("code") == DUPLICATE_KEY:
                _reject(item.done, DuplicateEvent(item.doc.get("idempotent_event_id")))
            else:
                _reject(item.done, RuntimeError(problem.get("errmsg", "insert failed")))

    async def _insert_many(self, collection: AsyncCollection[dict[str, Any]], items: list[_Insert]) -> dict[int, Any]:
        """The per-document errors of one unordered insert_many, by index; everything failed on other errors."""
        try:
            await collection.insert_many([item.doc for item in items], ordered=False)
        except BulkWriteError as error:
            return {e["index"]: e for e in error.details.get("writeErrors", [])}
        except Exception as error:
            return {index: {"errmsg": str(error)} for index in range(len(items))}
        return {}

    def _remember(self, payment_id: str, sequence: int) -> None:
        if self._highest.get(payment_id, 0) < sequence:
            self._highest[payment_id] = sequence
        self._highest.move_to_end(payment_id)
        while len(self._highest) > _REMEMBERED_PAYMENTS:
            self._highest.popitem(last=False)

    async def _number(self, items: list[_Insert]) -> None:
        highest: dict[str, int] = {}
        probe = sorted({item.doc["payment_id"] for item in items if item.probe})
        if probe:
            highest = await self._taken(probe)
        for item in items:
            payment_id = item.doc["payment_id"]
            known = max(highest.get(payment_id, 0), self._highest.get(payment_id, 0))
            highest[payment_id] = known + 1
            item.doc["sequence"] = highest[payment_id]
            item.doc["sequence_key"] = sequence_key(payment_id, highest[payment_id])
            item.probe = False

    async def _taken(self, payments: list[str]) -> dict[str, int]:
        """The highest number claimed for each payment, read through the unique `sequence_key` index."""
        highest: dict[str, int] = {}
        start = 1
        remaining = payments
        while remaining:
            keys = [sequence_key(p, n) for p in remaining for n in range(start, start + _PROBE)]
            cursor = self._claims.find({"sequence_key": {"$in": keys}}, {"payment_id": 1, "sequence": 1})
            async for doc in cursor:
                payment_id = doc["payment_id"]
                highest[payment_id] = max(highest.get(payment_id, 0), int(doc.get("sequence") or 0))
            # A payment with every probed number taken has more: probe the next range.
            remaining = [p for p in remaining if highest.get(p, 0) == start + _PROBE - 1]
            start += _PROBE
        return highest

    async def _flush_updates(self, items: list[_Update]) -> None:
        try:
            await self._events.bulk_write(
                [UpdateOne({"_id": item.event_id}, {"$set": item.fields}) for item in items], ordered=True
            )
        except Exception as error:
            self._fail(items, error)
            return
        for item in items:
            _resolve(item.done)

    @staticmethod
    def _fail(items: list[Any], error: Exception) -> None:
        for item in items:
            _reject(item.done, error)


def _index_of(problem: dict[str, Any]) -> str:
    pattern = problem.get("keyPattern") or {}
    return " ".join(pattern) + " " + str(problem.get("errmsg", ""))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _reject(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
