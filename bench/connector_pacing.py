"""What pacing the connector costs a connector request, against the raw limits in the same run.

    uv run python bench/connector_pacing.py [--repeats 3]

With CONNECTOR_REQUESTS_PER_SECOND set, every charge and sync first reserves its account's turn: one
`find_one_and_update` on `connector_pacing` (services/executor/src/recovery_executor/adapters/pacing.py). This
measures, on one database (MONGODB_URL, else SecantusDB started here), sequential and 16 in flight:
- the raw limits: `update_one` by `_id` with `$inc` (what the end-to-end ceiling prices a round trip at) and
  `find_one_and_update` by `_id` with `$inc` on one document, answering it;
- `MongoConnectorPacing.reserve` for one account (its document there) and for 100 accounts in turn, at a pace no
  request here waits for.
Every sample on a server of its own, each figure once per repeat, in turn (as bench/shared_rate_limit.py). Medians
of `--repeats`; ratios against the raw `update_one` of the same concurrency. Saved in
bench/results/connector_pacing.json.
"""

from __future__ import annotations

from harness import run
from pymongo import ReturnDocument
from raw_limits import in_flight
from shared_rate_limit import COUNT, Database, Measure, measure_all, raw

from recovery_executor.adapters.pacing import MongoConnectorPacing
from recovery_executor.domain.pacing import Pace
from recovery_runtime.clock import SystemClock

GROUP = "connector pacing"
# A pace no request here waits for: the figure is the reservation's cost, not the pace.
UNBOUND = Pace(1_000_000.0, 1_000)
# Connector accounts of one deployment, each with its document.
ACCOUNTS = 100


async def raw_find_and_update(db: Database, concurrency: int) -> float:
    # One document, as a reservation finds one per account: SecantusDB's find_one_and_update scans the collection
    # (docs/performance.md, "Pacing the connector"), which a collection of many documents would price instead.
    collection = db["raw"]
    await collection.insert_one({"_id": "k", "n": 0})
    return await in_flight(
        COUNT,
        concurrency,
        lambda i: collection.find_one_and_update(
            {"_id": "k"}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
        ),
    )


async def one_account(db: Database, concurrency: int) -> float:
    pacing = MongoConnectorPacing(db, SystemClock())
    await pacing.reserve("stripe:account", UNBOUND)
    return await in_flight(COUNT, concurrency, lambda i: pacing.reserve("stripe:account", UNBOUND))


async def accounts_in_turn(db: Database, concurrency: int) -> float:
    pacing = MongoConnectorPacing(db, SystemClock())
    for i in range(ACCOUNTS):
        await pacing.reserve(f"stripe:{i}", UNBOUND)
    return await in_flight(COUNT, concurrency, lambda i: pacing.reserve(f"stripe:{i % ACCOUNTS}", UNBOUND))


# (name, unit, measure, concurrency, index of the raw limit it is compared against)
MEASURES: list[tuple[str, str, Measure, int, int | None]] = [
    ("raw update_one by _id, 1 in flight", "ops/s", raw, 1, None),
    ("raw find_one_and_update, one document, 1 in flight", "ops/s", raw_find_and_update, 1, 0),
    ("reserve, one account, 1 in flight", "reservations/s", one_account, 1, 0),
    (f"reserve, {ACCOUNTS} accounts in turn, 1 in flight", "reservations/s", accounts_in_turn, 1, 0),
    ("raw update_one by _id, 16 in flight", "ops/s", raw, 16, None),
    ("raw find_one_and_update, one document, 16 in flight", "ops/s", raw_find_and_update, 16, 4),
    ("reserve, one account, 16 in flight", "reservations/s", one_account, 16, 4),
]


async def main() -> None:
    await measure_all(GROUP, "connector_pacing", MEASURES)


if __name__ == "__main__":
    run(main)
