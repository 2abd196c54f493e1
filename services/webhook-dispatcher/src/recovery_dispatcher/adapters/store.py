"""The dispatcher's collections: webhook event records (Hyperswitch's shape) and the endpoint projection."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.messages import ProfileUpdated
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.secrets import SecretBox, is_sealed

INDEXES = [
    # The events list (one merchant's, newest first): the only secondary index of the dispatcher's hot
    # collections. Each index costs every insert; the other lookups go by `_id`:
    # - an initial event's id is computed from its idempotent id (`initial_event_id`), so its object's events
    #   are found without an index;
    # - an attempt's record id starts with its initial event's id (`retry_record_id`): one `_id` range;
    # - claims (`webhook_claims`) are keyed `<payment_id>#<n>`: a payment's events are one `_id` range, and
    #   the claims need no unique index besides `_id` (record_writer.py says how duplicates are settled).
    IndexSpec("webhook_events", [("merchant_id", ASCENDING), ("created_at", DESCENDING)], "event_merchant"),
    # Indexes of earlier versions, replaced by the above.
    IndexSpec("webhook_claims", [], "claim_payment_sequence", retired=True),
    IndexSpec("webhook_events", [], "event_attempts", retired=True),
    IndexSpec("webhook_events", [], "event_payment", retired=True),
]

FINAL_STATUSES = ("delivered", "failed")
# An attempt record after the first (automatic or manual retry) is `<initial event id>_r<random>`: the attempts
# of an event are one `_id` range, `[<initial id>, <initial id>` + ATTEMPTS_END) (event ids have one length).
RETRY_SEPARATOR = "_r"
ATTEMPTS_END = "`"  # the character after "_"
# The event types this dispatcher raises (their ids are computed from the object id).
RAISED_EVENT_TYPES = ("payment_succeeded", "payment_failed")


def initial_event_id(idempotent_id: str) -> str:
    """The id of the initial event with this idempotent id (`evt_` + 32 hex): computed, not drawn, so an
    object's events are found by `_id`, and the `webhook-id` of an event is the same whichever dispatcher
    raises it."""
    return "evt_" + hashlib.sha256(idempotent_id.encode()).hexdigest()[:32]


def event_ids_of_attempt(attempt_id: str) -> list[str]:
    return [initial_event_id(idempotent_event_id(attempt_id, event_type)) for event_type in RAISED_EVENT_TYPES]


def payment_claims(payment_id: str) -> dict[str, str]:
    """The `_id` range of a payment's claims ("<payment>#<n>"; "$" follows "#")."""
    return {"$gte": f"{payment_id}#", "$lt": f"{payment_id}$"}


def retry_record_id(initial_id: str) -> str:
    return f"{initial_id}{RETRY_SEPARATOR}{secrets.token_hex(8)}"


def attempts_range(initial_id: str) -> dict[str, str]:
    return {"$gte": initial_id, "$lt": initial_id + ATTEMPTS_END}


class EventStore:
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

    async def get(self, event_id: str, merchant_id: str | None = None) -> dict[str, Any] | None:
        query: dict[str, Any] = {"_id": event_id}
        if merchant_id is not None:
            query["merchant_id"] = merchant_id
        return await self._events.find_one(query)

    async def insert(self, record: dict[str, Any], session: AsyncClientSession | None = None) -> None:
        await self._events.insert_one(record, session=session)

    async def take(
        self, event_id: str, from_statuses: tuple[str, ...], now: datetime, lease_until: datetime, owner: str
    ) -> bool:
        """Compare-and-set the initial record into `delivering` for this owner (one dispatcher at a time)."""
        result = await self._events.update_one(
            {
                "_id": event_id,
                "$or": [
                    {"status": {"$in": list(from_statuses)}},
                    {"status": "delivering", "lease_until": {"$lt": now}},
                ],
            },
            {"$set": {"status": "delivering", "lease_until": lease_until, "lease_owner": owner}},
        )
        return result.modified_count == 1

    async def update(self, event_id: str, fields: dict[str, Any], session: AsyncClientSession | None = None) -> None:
        await self._events.update_one({"_id": event_id}, {"$set": fields}, session=session)

    async def earlier_unfinished(self, payment_id: str, sequence: int) -> dict[str, Any] | None:
        """The earliest initial event of the same payment, numbered before `sequence`, that is not delivered or
        failed yet (ordering): one recorded and pending, or one claimed whose record is not written yet (its
        first attempt in flight). Two reads by unique keys: the payment's claims, then their records."""
        keys = [f"{payment_id}#{n}" for n in range(1, sequence)]
        claims = await self.claims.find({"_id": {"$in": keys}}, {"event_id": 1, "sequence": 1}).to_list(None)
        if not claims:
            return None
        records = {
            doc["_id"]: doc
            for doc in await self._events.find(
                {"_id": {"$in": [c["event_id"] for c in claims]}},
                {"status": 1, "sequence": 1, "next_retry_at": 1},
            ).to_list(None)
        }
        for claim in sorted(claims, key=lambda c: int(c.get("sequence") or 0)):
            record = records.get(claim["event_id"])
            if record is None:
                return {"_id": claim["event_id"], "sequence": claim.get("sequence"), "next_retry_at": None}
            if record.get("status") not in FINAL_STATUSES:
                return record
        return None

    async def event_ids_of_object(self, object_id: str) -> list[str]:
        """The ids of the initial events raised for an object: a payment (its claims, one `_id` range) or a
        payment attempt (computed). No index on the records is needed."""
        claims = self.claims.find({"_id": payment_claims(object_id)}, {"event_id": 1})
        return [*event_ids_of_attempt(object_id), *[doc["event_id"] async for doc in claims]]

    async def attempts_of(self, initial_attempt_id: str, merchant_id: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"_id": attempts_range(initial_attempt_id)}
        if merchant_id is not None:
            query["merchant_id"] = merchant_id
        return await self._events.find(query).sort("created_at", ASCENDING).to_list(None)

    async def list_initial(self, query: dict[str, Any], offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        query = {**query, "delivery_attempt": "initial_attempt"}
        total = await self._events.count_documents(query)
        docs = (
            await self._events.find(query, {"body": 0, "request": 0, "response": 0})
            .sort("created_at", DESCENDING)
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
