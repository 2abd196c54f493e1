"""`analytics_daily`: per merchant, profile and UTC day, `counters` (figures.contribution summed over the payments
accepted that day), moved by `$inc` in the same transaction as the views they come from.

A day is split over up to `handlers.PARTS` documents (`<merchant>/<profile>/<day>/<part>`), and a day's figures
are the sum of its documents (a rebuild writes one per day, which sums the same). Which part a change goes to does
not matter to the sum, so the part is not the payment's but the transaction's: each transaction of the process
leases a part number of its own (`handlers.DayParts`) for as long as it runs, and two transactions in flight in
one process never write the same day document (concurrent transactions on one document abort each other). A
part's own counters may go below zero (a payment added on one part and moved on another); only their sum is a
figure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from recovery_analytics.domain.figures import DayFigures
from recovery_runtime.mongo import IndexSpec
from recovery_runtime.unit_of_work import Transaction

COLLECTION = "analytics_daily"
INDEXES = [IndexSpec(COLLECTION, [("merchant_id", 1), ("day", 1)], "merchant_day")]


def day_key(merchant_id: str, profile_id: str, day: date, part: int | None = None) -> str:
    key = f"{merchant_id}/{profile_id}/{day.isoformat()}"
    return key if part is None else f"{key}/{part}"


class MongoDailyStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._days = db[COLLECTION]

    async def add(
        self, merchant_id: str, profile_id: str, day: date, part: int, delta: Mapping[str, int], tx: Transaction
    ) -> None:
        await self._days.update_one(
            {"_id": day_key(merchant_id, profile_id, day, part)},
            {
                "$inc": {f"counters.{key}": value for key, value in delta.items()},
                "$setOnInsert": {"merchant_id": merchant_id, "profile_id": profile_id, "day": day.isoformat()},
            },
            upsert=True,
            session=tx.session,
        )

    async def between(self, merchant_id: str, profile_id: str | None, first: date, last: date) -> list[DayFigures]:
        matching: dict[str, Any] = {
            "merchant_id": merchant_id,
            "day": {"$gte": first.isoformat(), "$lte": last.isoformat()},
        }
        if profile_id is not None:
            matching["profile_id"] = profile_id
        docs = await self._days.find(matching).to_list(None)
        return [DayFigures(date.fromisoformat(doc["day"]), _flat(doc.get("counters") or {})) for doc in docs]


def _flat(nested: Mapping[str, Any], prefix: str = "") -> dict[str, int]:
    """`{"recovered_amount": {"USD": 90}}` back to `{"recovered_amount.USD": 90}` (dotted `$inc` paths nest)."""
    flat: dict[str, int] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flat(value, name + "."))
        else:
            flat[name] = int(value)
    return flat
