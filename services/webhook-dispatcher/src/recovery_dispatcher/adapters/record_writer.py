"""Group commit of the dispatcher's writes: many deliveries' claims, records and updates in a few round trips.

A delivery awaits its own writes, so a message is acknowledged only after its records are stored; the writes
of every delivery in flight share one `insert_many` per collection and one `bulk_write` per flush
(MongoDB-wire servers without group commit, such as SecantusDB, take an order of magnitude more documents
per second that way, and inserts several times more than updates).

Claims (`webhook_claims`) are the idempotency and ordering keys of initial events. A claim's `_id` is its
number within its payment, `<payment_id>#<n>` (`sequence_key`), and it carries the event's
`idempotent_event_id`. No secondary index: uniqueness of `_id` alone settles duplicates and races, by this
protocol:
- numbers are dense (a claim is never deleted, and #n is inserted only by a writer that saw #1..#n-1);
- a claim's first try is #1: it is stored only if the payment has no claim at all, so it cannot be a duplicate;
- after a conflict, the writer reads the payment's claims (`_id $in` #1..#64, then further while all are taken):
  its event among them is a duplicate (DuplicateEvent); else it tries #(highest + 1), which is stored only if
  nobody added a claim since that read, so the read saw every claim of the payment;
- at most one claim per payment per flush (a second waits for the next flush, after the first's outcome): claims
  of one payment tried together would get the same number, and all but one would fail.
Events of one payment are few (a final failure, a success), so the conflicts are rare and cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from recovery_dispatcher.domain.event import DuplicateEvent

log = structlog.get_logger(__name__)

DUPLICATE_KEY = 11000
# Numbers probed per payment and round when a claim's number was taken.
_PROBE = 64
# Conflicts one claim may meet before its delivery fails (and its message comes back later).
_MAX_TRIES = 6


@dataclass
class _Insert:
    doc: dict[str, Any]
    done: asyncio.Future[None]
    probe: bool = False
    tries: int = 0


@dataclass
class _Update:
    key: str
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
        self._claims_wake = asyncio.Event()
        self._records_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._tasks:
            # Two lanes, each one round trip at a time: claims, and records with their updates. A delivery waits
            # for its claim, sends, then waits for its record; lanes of their own let a batch of claims go while
            # a batch of records is being written (one lane would hold each behind the other).
            self._tasks = [
                asyncio.create_task(self._run(self._claims_wake, self._flush_claims_lane), name="claims-writer"),
                asyncio.create_task(self._run(self._records_wake, self._flush_records_lane), name="records-writer"),
            ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while len(self._pending):
            await self._flush()

    async def claim(self, doc: dict[str, Any]) -> None:
        """Insert the claim of an initial event (`doc` has its `payment_id` and `idempotent_event_id`), numbered
        within its payment: sets `_id`, `sequence` and `sequence_key` on `doc`. Raises DuplicateEvent when the
        event is claimed already (by anyone)."""
        item = _Insert(doc, self._future())
        self._pending.claims.append(item)
        self._poke(self._claims_wake)
        await item.done

    async def insert(self, doc: dict[str, Any]) -> None:
        """Insert an event record. Raises DuplicateEvent when its `idempotent_event_id` is stored already."""
        item = _Insert(doc, self._future())
        self._pending.inserts.append(item)
        self._poke(self._records_wake)
        await item.done

    async def update(self, key: str, fields: dict[str, Any]) -> None:
        """Set fields of the event record with this `_id`."""
        update = _Update(key, fields, self._future())
        self._pending.updates.append(update)
        self._poke(self._records_wake)
        await update.done

    def _future(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def _poke(self, wake: asyncio.Event) -> None:
        if not self._tasks:
            self.start()
        wake.set()

    async def _run(self, wake: asyncio.Event, flush: Callable[[], Awaitable[None]]) -> None:
        while True:
            await wake.wait()
            # Let the deliveries in flight add their writes: one round trip for all of them.
            if len(self._pending) < self._max_batch:
                await asyncio.sleep(self._interval)
            wake.clear()
            try:
                await flush()
            except Exception:
                log.exception("record_writer.flush_failed")

    async def _flush(self) -> None:
        """Both lanes once (closing: what is left)."""
        await self._flush_claims_lane()
        await self._flush_records_lane()

    async def _flush_claims_lane(self) -> None:
        claims, self._pending.claims = self._pending.claims, []
        try:
            await self._flush_claims(claims)
        except BaseException as error:
            # Whatever went wrong (a bug, the writer cancelled mid-flush), no delivery may wait forever for its
            # write: it fails, its message is not acknowledged and comes back.
            self._fail(claims, _as_error(error))
            raise

    async def _flush_records_lane(self) -> None:
        inserts, self._pending.inserts = self._pending.inserts, []
        updates, self._pending.updates = self._pending.updates, []
        try:
            await self._flush_inserts(inserts)
            # After the inserts of the same flush: an update may be for a record inserted in it.
            if updates:
                await self._flush_updates(updates)
        except BaseException as error:
            self._fail([*inserts, *updates], _as_error(error))
            raise

    async def _flush_claims(self, items: list[_Insert]) -> None:
        if not items:
            return
        try:
            batch = await self._number(items)
        except Exception as error:
            self._fail(items, error)
            return
        failed = await self._insert_many(self._claims, batch)
        for index, item in enumerate(batch):
            problem = failed.get(index)
            if problem is None:
                _resolve(item.done)
            elif problem.get("code") == DUPLICATE_KEY:
                # The number was taken (another event of the payment, or this one's duplicate): read the
                # payment's claims and decide in the next flush.
                item.tries += 1
                item.probe = True
                if item.tries >= _MAX_TRIES:
                    _reject(item.done, RuntimeError(f"cannot number event {item.doc['idempotent_event_id']}"))
                else:
                    self._requeue(item)
            else:
                _reject(item.done, RuntimeError(problem.get("errmsg", "insert failed")))

    def _requeue(self, item: _Insert) -> None:
        self._pending.claims.append(item)
        self._poke(self._claims_wake)

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

    async def _number(self, items: list[_Insert]) -> list[_Insert]:
        """This flush's claims, numbered: at most one per payment (the others wait for the next flush); first
        tries as #1; after a conflict, the next number after the payment's claims read now, or DuplicateEvent
        when the event is among them."""
        batch: list[_Insert] = []
        later: list[_Insert] = []
        payments: set[str] = set()
        for item in items:
            payment_id = item.doc["payment_id"]
            if payment_id in payments:
                later.append(item)
            else:
                payments.add(payment_id)
                batch.append(item)
        probed = sorted({item.doc["payment_id"] for item in batch if item.probe})
        taken = await self._taken(probed) if probed else {}
        for item in later:
            self._requeue(item)
        numbered: list[_Insert] = []
        for item in batch:
            payment_id = item.doc["payment_id"]
            number = 1
            if item.probe:
                highest, claimed = taken.get(payment_id, (0, set()))
                if item.doc["idempotent_event_id"] in claimed:
                    _reject(item.done, DuplicateEvent(item.doc["idempotent_event_id"]))
                    continue
                number = highest + 1
            key = sequence_key(payment_id, number)
            item.doc.update(_id=key, sequence=number, sequence_key=key)
            numbered.append(item)
        return numbered

    async def _taken(self, payments: list[str]) -> dict[str, tuple[int, set[str]]]:
        """For each payment, its highest claimed number and the idempotent ids of its claims, read by `_id`."""
        taken: dict[str, tuple[int, set[str]]] = {}
        start = 1
        remaining = payments
        while remaining:
            keys = [sequence_key(p, n) for p in remaining for n in range(start, start + _PROBE)]
            fields = {"payment_id": 1, "sequence": 1, "idempotent_event_id": 1}
            cursor = self._claims.find({"_id": {"$in": keys}}, fields)
            async for doc in cursor:
                highest, claimed = taken.setdefault(doc["payment_id"], (0, set()))
                claimed.add(doc["idempotent_event_id"])
                taken[doc["payment_id"]] = (max(highest, int(doc.get("sequence") or 0)), claimed)
            # A payment with every probed number taken has more: probe the next range.
            remaining = [p for p in remaining if taken.get(p, (0, set()))[0] == start + _PROBE - 1]
            start += _PROBE
        return taken

    async def _flush_updates(self, items: list[_Update]) -> None:
        try:
            await self._events.bulk_write(
                [UpdateOne({"_id": item.key}, {"$set": item.fields}) for item in items], ordered=True
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


def _as_error(error: BaseException) -> Exception:
    return error if isinstance(error, Exception) else RuntimeError("record writer stopped mid-flush")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _reject(future: asyncio.Future[None], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
