"""The dispatcher's collections: webhook event records (Hyperswitch's shape) and the endpoint projection."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.messages import ProfileUpdated
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.secrets import SecretBox, is_sealed

INDEXES = [
    # No secondary index on the dispatcher's hot collections (each one costs every insert); every lookup goes
    # by `_id`:
    # - a record's `_id` is `<merchant_id>/<event_id>` and event ids are time-ordered (`evt_` + milliseconds +
    #   hash): one merchant's events, newest first, are one `_id` range read backwards (the events list);
    # - an attempt's record id starts with its initial event's (`retry_event_id`): one `_id` range;
    # - claims (`webhook_claims`) are keyed `<payment_id>#<n>`: a payment's events are one `_id` range, and
    #   the claims need no unique index besides `_id` (record_writer.py says how duplicates are settled).
    # Indexes of earlier versions, dropped at start-up.
    IndexSpec("webhook_events", [], "event_merchant", retired=True),
    IndexSpec("webhook_claims", [], "claim_payment_sequence", retired=True),
    IndexSpec("webhook_events", [], "event_attempts", retired=True),
    IndexSpec("webhook_events", [], "event_payment", retired=True),
]

FINAL_STATUSES = ("delivered", "failed")
# An attempt record after the first (automatic or manual retry) has the event id `<initial event id>_r<random>`:
# the attempts of an event are one `_id` range, `[<key of the initial>, <key of the initial>` + ATTEMPTS_END)
# (initial event ids have one length).
RETRY_SEPARATOR = "_r"
ATTEMPTS_END = "`"  # the character after "_"
# Between a merchant id and an event id in a record's `_id`; merchant ids are [A-Za-z0-9_-] (MERCHANT_ID), so
# one merchant's `_id`s are exactly the range [`<merchant>/`, `<merchant>0`) ("0" follows "/").
KEY_SEPARATOR = "/"
MERCHANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
# How long before an attempt's creation (its time-ordered id) the list looks for the attempt's events: the
# dispatcher's clock may be behind the executor's (NTP keeps hosts within a second; more than this is a broken
# deployment, and the attempt's events would then be found by its payment id only).
CLOCK_SKEW = timedelta(minutes=5)


def _millis(at: datetime) -> int:
    """Milliseconds since the epoch, floored as BSON stores a datetime."""
    return (at - _EPOCH) // _MILLISECOND


def initial_event_id(idempotent_id: str, created_at: datetime) -> str:
    """The id of a new initial event (`evt_` + 32 hex, as Hyperswitch's): 12 hex of its creation time in
    milliseconds, so a merchant's records sort by time, then 20 hex of the SHA-256 of its idempotent id, so two
    events created in the same millisecond differ. The claim keeps it: every dispatcher that meets the event
    afterwards uses the claimed id, so the `webhook-id` stays the same."""
    return f"evt_{_millis(created_at):012x}{hashlib.sha256(idempotent_id.encode()).hexdigest()[:20]}"


def retry_event_id(initial_id: str) -> str:
    """The event id of an attempt after the first: its initial event's id, `_r` and 16 random hex digits."""
    return f"{initial_id}{RETRY_SEPARATOR}{secrets.token_hex(8)}"


def checked_merchant_id(merchant_id: str) -> str:
    """The merchant id, if it can prefix record keys (ValueError otherwise)."""
    if not MERCHANT_ID.fullmatch(merchant_id):
        raise ValueError(f"merchant id {merchant_id!r} is not 1-64 characters of [A-Za-z0-9_-]")
    return merchant_id


def record_key(merchant_id: str, event_id: str) -> str:
    """The `_id` of an event record: its merchant's id, then its event id. ValueError for a merchant id that
    could make one merchant's range overlap another's."""
    return f"{checked_merchant_id(merchant_id)}{KEY_SEPARATOR}{event_id}"


def merchant_range(merchant_id: str, after: datetime | None = None, before: datetime | None = None) -> dict[str, str]:
    """The `_id` range of a merchant's records, optionally of those created in [after, before] (to the
    millisecond; the caller filters `created_at` exactly)."""
    low = f"{checked_merchant_id(merchant_id)}{KEY_SEPARATOR}"
    high = f"{merchant_id}0"
    if after is not None:
        low += f"evt_{max(_millis(after), 0):012x}"
    if before is not None:
        high = f"{merchant_id}{KEY_SEPARATOR}evt_{max(_millis(before) + 1, 0):012x}"
    return {"$gte": low, "$lt": high}


def payment_claims(payment_id: str) -> dict[str, str]:
    """The `_id` range of a payment's claims ("<payment>#<n>"; "$" follows "#")."""
    return {"$gte": f"{payment_id}#", "$lt": f"{payment_id}$"}


def attempts_range(initial_key: str) -> dict[str, str]:
    return {"$gte": initial_key, "$lt": initial_key + ATTEMPTS_END}


def created_at_of(object_id: str) -> datetime | None:
    """When an object with a time-ordered id (`…_pay_<uuid7 hex>`, `…_att_<uuid7 hex>`: new_payment_id,
    new_attempt_id) was created; None for an id of another shape."""
    tail = object_id.rpartition("_")[2]
    # Version 7, variant 10xx.
    if len(tail) != 32 or tail[12] != "7" or tail[16] not in "89ab":
        return None
    try:
        int(tail, 16)
    except ValueError:
        return None
    created = _EPOCH + int(tail[:12], 16) * _MILLISECOND
    # An id that only looks time-ordered: a time in the future would hide the object's events.
    return created if created <= datetime.now(UTC) + CLOCK_SKEW else None


class EventStore:
    """Event records (`webhook_events`, `_id` = record_key(merchant, event id)) and claims (`webhook_claims`)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db["webhook_events"]
        self.claims = db["webhook_claims"]
        self._events = self.collection

    async def claim_of(self, payment_id: str, idempotent_id: str) -> dict[str, Any] | None:
        return await self.claims.find_one({"_id": payment_claims(payment_id), "idempotent_event_id": idempotent_id})

    async def take_claim(self, claim_id: str, lease: datetime | None, lease_until: datetime, owner: str) -> bool:
        """Compare-and-set the lease of a claim whose event is not recorded (the caller checked that its holder
        is gone): only one dispatcher wins, the one that saw the current lease."""
        result = await self.claims.update_one(
            {"_id": claim_id, "lease_until": lease},
            {"$set": {"lease_until": lease_until, "lease_owner": owner}},
        )
        return result.modified_count == 1

    async def get(self, merchant_id: str, event_id: str) -> dict[str, Any] | None:
        """A merchant's record by event id (another merchant's event ids are unknown here)."""
        try:
            key = record_key(merchant_id, event_id)
        except ValueError:
            return None
        return await self._events.find_one({"_id": key})

    async def insert(self, record: dict[str, Any], session: AsyncClientSession | None = None) -> None:
        await self._events.insert_one(record, session=session)

    async def take(
        self, key: str, from_statuses: tuple[str, ...], now: datetime, lease_until: datetime, owner: str
    ) -> bool:
        """Compare-and-set the initial record into `delivering` for this owner (one dispatcher at a time)."""
        result = await self._events.update_one(
            {
                "_id": key,
                "$or": [
                    {"status": {"$in": list(from_statuses)}},
                    {"status": "delivering", "lease_until": {"$lt": now}},
                ],
            },
            {"$set": {"status": "delivering", "lease_until": lease_until, "lease_owner": owner}},
        )
        return result.modified_count == 1

    async def update(self, key: str, fields: dict[str, Any], session: AsyncClientSession | None = None) -> None:
        await self._events.update_one({"_id": key}, {"$set": fields}, session=session)

    async def earlier_unfinished(self, merchant_id: str, payment_id: str, sequence: int) -> dict[str, Any] | None:
        """The earliest initial event of the same payment, numbered before `sequence`, that is not delivered or
        failed yet (ordering): one recorded and pending, or one claimed whose record is not written yet (its
        first attempt in flight). Two reads by unique keys: the payment's claims, then their records."""
        keys = [f"{payment_id}#{n}" for n in range(1, sequence)]
        claims = await self.claims.find({"_id": {"$in": keys}}, {"event_id": 1, "sequence": 1}).to_list(None)
        if not claims:
            return None
        records = {
            doc["event_id"]: doc
            for doc in await self._events.find(
                {"_id": {"$in": [record_key(merchant_id, c["event_id"]) for c in claims]}},
                {"event_id": 1, "status": 1, "sequence": 1, "next_retry_at": 1},
            ).to_list(None)
        }
        for claim in sorted(claims, key=lambda c: int(c.get("sequence") or 0)):
            record = records.get(claim["event_id"])
            if record is None:
                return {"event_id": claim["event_id"], "sequence": claim.get("sequence"), "next_retry_at": None}
            if record.get("status") not in FINAL_STATUSES:
                return record
        return None

    async def event_ids_of_payment(self, payment_id: str) -> list[str]:
        """The ids of the initial events raised for a payment: its claims, one `_id` range."""
        return [doc["event_id"] async for doc in self.claims.find({"_id": payment_claims(payment_id)}, {"event_id": 1})]

    async def attempts_of(self, merchant_id: str, initial_event_id: str) -> list[dict[str, Any]]:
        """The records of an event's attempts, the initial first (its key is the range's start)."""
        try:
            key = record_key(merchant_id, initial_event_id)
        except ValueError:
            return []
        return await self._events.find({"_id": attempts_range(key)}).sort("created_at", ASCENDING).to_list(None)

    async def list_initial(
        self,
        merchant_id: str,
        query: dict[str, Any],
        offset: int,
        limit: int,
        *,
        after: datetime | None = None,
        before: datetime | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """A merchant's initial events matching `query`, newest first: its `_id` range read backwards, bounded
        by `after` and `before` to the millisecond (`query` filters `created_at` exactly), or the records of
        `query`'s `_id` list (keys of this merchant's records)."""
        query = {"delivery_attempt": "initial_attempt", **query}
        if "_id" not in query:
            query["_id"] = merchant_range(merchant_id, after, before)
        total = await self._events.count_documents(query)
        docs = (
            await self._events.find(query, {"body": 0, "request": 0, "response": 0})
            .sort("_id", DESCENDING)
            .skip(offset)
            .limit(limit)
            .to_list(None)
        )
        return docs, total


class EndpointStore:
    """Projection of `profile.updated`: where and how each profile's webhooks go; read through a short cache."""

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], cache_seconds: float = 2.0, secrets: SecretBox | None = None
    ) -> None:
        self._endpoints = db["webhook_endpoints"]
        self._secrets = secrets
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._loading: dict[str, asyncio.Future[dict[str, Any] | None]] = {}

    async def apply(self, update: ProfileUpdated, session: AsyncClientSession) -> bool:
        current = await self._endpoints.find_one({"_id": update.profile_id}, {"version": 1}, session=session)
        if current is not None and current.get("version", 0) >= update.version:
            return False
        schedule = update.webhook_retry_schedule_seconds
        await self._endpoints.update_one(
            {"_id": update.profile_id},
            {
                "$set": {
                    "merchant_id": update.merchant_id,
                    "url": update.webhook_url,
                    "enabled": update.webhooks_enabled,
                    "hash_key": update.payment_response_hash_key,
                    "whsec_secrets": list(update.standard_webhooks_secrets),
                    "custom_headers": update.custom_headers,
                    "retry_schedule_seconds": list(schedule) if schedule is not None else None,
                    "version": update.version,
                },
                # A profile update re-enables an endpoint the dispatcher had disabled (410 Gone, long failure).
                "$unset": {"disabled_reason": "", "failing_since": ""},
            },
            upsert=True,
            session=session,
        )
        self.forget(update.profile_id)
        return True

    def forget(self, profile_id: str) -> None:
        self._cache.pop(profile_id, None)
        # A read in flight may have started before the change: later callers read again.
        self._loading.pop(profile_id, None)

    async def get(self, profile_id: str) -> dict[str, Any] | None:
        cached = self._cache.get(profile_id)
        if cached is not None and time.monotonic() - cached[0] < self._cache_seconds:
            return cached[1]
        loading = self._loading.get(profile_id)
        if loading is not None:
            # Deliveries to one profile arriving together share one read.
            return await asyncio.shield(loading)
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._loading[profile_id] = future
        try:
            endpoint = await self._endpoints.find_one({"_id": profile_id})
            if endpoint is not None:
                endpoint = self._unsealed(endpoint)
                self._cache[profile_id] = (time.monotonic(), endpoint)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved: the waiters re-raise it
            raise
        else:
            future.set_result(endpoint)
        finally:
            if self._loading.get(profile_id) is future:
                del self._loading[profile_id]
        return endpoint

    def _unsealed(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        """The signing keys in the clear, in memory only: the collection keeps what intake sealed."""
        if self._secrets is None:
            return endpoint
        box = self._secrets

        def opened(value: str | None) -> str | None:
            return box.open(value) if value is not None and is_sealed(value) else value

        return {
            **endpoint,
            "hash_key": opened(endpoint.get("hash_key")),
            "whsec_secrets": [opened(s) for s in endpoint.get("whsec_secrets") or ()],
        }

    async def disable(self, profile_id: str, reason: str, session: AsyncClientSession | None = None) -> bool:
        result = await self._endpoints.update_one(
            {"_id": profile_id, "disabled_reason": {"$exists": False}},
            {"$set": {"disabled_reason": reason}},
            session=session,
        )
        self.forget(profile_id)
        return result.modified_count == 1

    async def mark_failing(self, profile_id: str, since: datetime) -> None:
        await self._endpoints.update_one(
            {"_id": profile_id, "failing_since": {"$exists": False}}, {"$set": {"failing_since": since}}
        )
        cached = self._cache.get(profile_id)
        if cached is not None:
            cached[1].setdefault("failing_since", since)

    async def mark_healthy(self, profile_id: str) -> None:
        await self._endpoints.update_one({"_id": profile_id}, {"$unset": {"failing_since": ""}})
        cached = self._cache.get(profile_id)
        if cached is not None:
            cached[1].pop("failing_since", None)
