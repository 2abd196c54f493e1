"""Write-behind batching of event-record writes: many deliveries' inserts and updates in one round trip.

A delivery awaits its own writes, so a message is acknowledged only after its records are stored; the writes
of every delivery in flight share one `insert_many` and one `bulk_write` per flush (MongoDB-wire servers
without group commit, such as SecantusDB, take an order of magnitude more documents per second that way).

Initial event records also get their per-payment `sequence` here: one query per flush reads the highest
sequence of every payment in the batch; the unique `sequence_key` index settles a race with another
dispatcher (the loser's record is renumbered in the next flush).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

log = structlog.get_logger(__name__)

DUPLICATE_KEY = 11000


class DuplicateEvent(Exception):
    """An initial event with this `idempotent_event_id` is already stored (a duplicate message, a race)."""


@dataclass
class _Insert:
    doc: dict[str, Any]
    done: asyncio.Future[None]
    sequenced: bool = False
    tries: int = 0


@dataclass
class _Update:
    event_id: str
    fields: dict[str, Any]
    done: asyncio.Future[None]


@dataclass
class _Pending:
    inserts: list[_Insert] = field(default_factory=list)
    updates: list[_Update] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates)


def sequence_key(payment_id: str, sequence: int) -> str:
    return f"{payment_id}#{sequence}"


class RecordWriter:
    """Batches writes to `webhook_events`; flushes every `interval` seconds or at `max_batch` writes."""

    def __init__(self, events: AsyncCollection[dict[str, Any]], interval: float = 0.005, max_batch: int = 500):
        self._events = events
        self._interval = interval
        self._max_batch = max_batch
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="record-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if len(self._pending):
            await self._flush()

    async def insert_initial(self, doc: dict[str, Any]) -> None:
        """Insert an initial event record, numbering it within its payment (`sequence`, `sequence_key`).

        Raises DuplicateEvent when its `idempotent_event_id` exists already."""
        await self._enqueue_insert(_Insert(doc, self._future(), sequenced=True))

    async def insert(self, doc: dict[str, Any]) -> None:
        await self._enqueue_insert(_Insert(doc, self._future()))

    async def update(self, event_id: str, fields: dict[str, Any]) -> None:
        update = _Update(event_id, fields, self._future())
        self._pending.updates.append(update)
        self._poke()
        await update.done

    async def _enqueue_insert(self, item: _Insert) -> None:
        self._pending.inserts.append(item)
        self._poke()
        await item.done

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
        if pending.inserts:
            await self._flush_inserts(pending.inserts)
        if pending.updates:
            await self._flush_updates(pending.updates)

    async def _flush_inserts(self, items: list[_Insert]) -> None:
        try:
            await self._number(items)
        except Exception as error:
            self._fail(items, error)
            return
        try:
            await self._events.insert_many([item.doc for item in items], ordered=False)
        except BulkWriteError as error:
            failed = {e["index"]: e for e in error.details.get("writeErrors", [])}
            for index, item in enumerate(items):
                problem = failed.get(index)
                if problem is None:
                    _resolve(item.done)
                elif problem.get("code") == DUPLICATE_KEY and "sequence_key" in _index_of(problem):
                    # Another dispatcher numbered an event of this payment at the same moment: renumber.
                    item.tries += 1
                    if item.tries > 5:
                        _reject(item.done, RuntimeError(f"cannot number event {item.doc['_id']}"))
                    else:
                        self._pending.inserts.append(item)
                        self._poke()
                elif problem.get("code") == DUPLICATE_KEY:
                    _reject(item.done, DuplicateEvent(item.doc.get("idempotent_event_id")))
                else:
                    _reject(item.done, RuntimeError(problem.get("errmsg", "insert failed")))
            return
        except Exception as error:
            self._fail(items, error)
            return
        for item in items:
            _resolve(item.done)

    async def _number(self, items: list[_Insert]) -> None:
        sequenced = [item for item in items if item.sequenced]
        if not sequenced:
            return
        payments = sorted({item.doc["payment_id"] for item in sequenced})
        highest: dict[str, int] = {}
        cursor = self._events.find(
            {"payment_id": {"$in": payments}, "delivery_attempt": "initial_attempt"},
            {"payment_id": 1, "sequence": 1},
        )
        async for doc in cursor:
            highest[doc["payment_id"]] = max(highest.get(doc["payment_id"], 0), int(doc.get("sequence") or 0))
        for item in sequenced:
            payment_id = item.doc["payment_id"]
            highest[payment_id] = highest.get(payment_id, 0) + 1
            item.doc["sequence"] = highest[payment_id]
            item.doc["sequence_key"] = sequence_key(payment_id, highest[payment_id])

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
