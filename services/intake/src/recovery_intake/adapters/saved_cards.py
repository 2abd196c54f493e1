"""The `saved_cards` collection: what a merchant's card-data uploads said of each of its customers' cards, kept for
the customer's recoveries still to come, and shown to (or forgotten by) the merchant, a customer at a time.

One document per merchant, customer and token, keyed by the three (an `_id` document, so a look-up is the `_id`
index alone and no separator can make two keys one); the card fields given under `card`, the latest history given
as `prior_retries` (as JSON, as the intents store it), and `expires_at`, `SAVED_CARD_DAYS` after the latest upload
of the card, where the TTL index removes it. An upload is bulk upserts, 1,000 a round trip; not a transaction:
each card's write stands alone, and an upload sent again writes the same.

A merchant that never uploaded costs its recovery requests no read here: the merchant's document says until when
it keeps cards (`cards_kept_until`, the latest upload's `expires_at`), and each intake instance keeps that answer,
present or absent, for the configuration cache's seconds. So the merchant's first upload (or the first after its
cards expired) returns only once those seconds have passed: every instance's requests then read the cards, and
the look-up of open invoices that follows it finds any recovery accepted before without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from recovery_contracts.recovery import PriorRetries
from recovery_intake.adapters.cached_reads import CachedReads
from recovery_intake.domain.card_backfill import SAVED_CARD_DAYS, SavedCard
from recovery_runtime.mongo import IndexSpec

COLLECTION = "saved_cards"
# The merchant's document (docs/architecture.md, "State"): its `cards_kept_until`.
MERCHANTS = "merchants"
KEPT_UNTIL = "cards_kept_until"
INDEXES = [
    IndexSpec(COLLECTION, [("expires_at", ASCENDING)], "saved_card_ttl", options={"expireAfterSeconds": 0}),
    # A customer's kept cards, listed or forgotten by the merchant (not on the recovery path: that reads by `_id`).
    IndexSpec(COLLECTION, [("_id.merchant_id", ASCENDING), ("_id.customer_id", ASCENDING)], "saved_card_customer"),
]
# Upserts sent in one round trip.
BATCH = 1_000


def saved_card_id(merchant_id: str, customer_id: str, token: str) -> dict[str, str]:
    # Field order is part of an `_id` document's value: always built here.
    return {"merchant_id": merchant_id, "customer_id": customer_id, "token": token}


def saved_card_update(card: SavedCard) -> dict[str, Any]:
    fields: dict[str, Any] = {f"card.{name}": value for name, value in card.card.items()}
    if card.prior_retries is not None:
        fields["prior_retries"] = [p.model_dump(mode="json") for p in card.prior_retries]
    fields.update(uploaded_at=card.uploaded_at, expires_at=card.uploaded_at + timedelta(days=SAVED_CARD_DAYS))
    return {"$set": fields}


def saved_card_from(doc: dict[str, Any]) -> SavedCard:
    key = doc["_id"]
    prior = doc.get("prior_retries")
    return SavedCard(
        customer_id=key["customer_id"],
        token=key["token"],
        card=dict(doc.get("card") or {}),
        prior_retries=None if prior is None else tuple(PriorRetries.model_validate(p) for p in prior),
        uploaded_at=doc["uploaded_at"],
    )


class SavedCardRepository:
    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        marker_seconds: float = 0.0,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._cards = db[COLLECTION]
        self._merchants = db[MERCHANTS]
        self._marker_seconds = marker_seconds
        self._markers = CachedReads(marker_seconds, absent_seconds=marker_seconds)
        self._sleep = sleep

    async def get(self, merchant_id: str, customer_id: str, token: str) -> SavedCard | None:
        if not await self._keeps_cards(merchant_id):
            return None
        doc = await self._cards.find_one({"_id": saved_card_id(merchant_id, customer_id, token)})
        return saved_card_from(doc) if doc is not None else None

    async def save(self, merchant_id: str, cards: Sequence[SavedCard]) -> None:
        if not cards:
            return
        until = max(c.uploaded_at for c in cards) + timedelta(days=SAVED_CARD_DAYS)
        before = await self._merchants.find_one_and_update(
            {"_id": merchant_id}, {"$max": {KEPT_UNTIL: until}}, projection={KEPT_UNTIL: True}
        )
        self._markers.invalidate(merchant_id)
        writes = [
            UpdateOne({"_id": saved_card_id(merchant_id, c.customer_id, c.token)}, saved_card_update(c), upsert=True)
            for c in cards
        ]
        for start in range(0, len(writes), BATCH):
            # In order: two rows of one file about one card apply as the open invoices take them, the later last.
            await self._cards.bulk_write(writes[start : start + BATCH])
        if not _kept_at((before or {}).get(KEPT_UNTIL)):
            # Other instances may still hold "no kept cards" for the merchant: wait until none can.
            await self._sleep(self._marker_seconds)

    async def _keeps_cards(self, merchant_id: str) -> bool:
        """The merchant's uploads keep cards now (from a copy at most `marker_seconds` old)."""

        async def load() -> dict[str, Any] | None:
            return await self._merchants.find_one(
                {"_id": merchant_id, KEPT_UNTIL: {"$exists": True}}, projection={KEPT_UNTIL: True}
            )

        marker = await self._markers.read(merchant_id, load)
        return _kept_at(None if marker is None else marker[KEPT_UNTIL])

    async def of_customer(self, merchant_id: str, customer_id: str, limit: int) -> list[SavedCard]:
        query = {"_id.merchant_id": merchant_id, "_id.customer_id": customer_id}
        return [saved_card_from(doc) async for doc in self._cards.find(query).sort("_id.token", ASCENDING).limit(limit)]

    async def forget(self, merchant_id: str, customer_id: str, tokens: Collection[str]) -> None:
        ids = [saved_card_id(merchant_id, customer_id, token) for token in tokens]
        await self._cards.delete_many({"_id": {"$in": ids}})


def _kept_at(until: datetime | None) -> bool:
    """Cards kept until `until` are kept now (as the TTL index counts: the real clock)."""
    return until is not None and until > datetime.now(UTC)
