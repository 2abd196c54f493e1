"""What intake's shared rate limit costs a request it lets through, against the raw limit in the same run.

    uv run python bench/shared_rate_limit.py [--repeats 3]

The shared limit (services/intake/src/recovery_intake/adapters/rate_limits.py) is one pipeline `update_one` per
request that the process's own bucket lets through. This measures, on one database (MONGODB_URL, else SecantusDB
started here):
- the raw limit: `update_one` by `_id` with `$inc`, sequential and 16 in flight (as bench/raw_limits.py);
- `MongoSharedRates.take` passing, sequential and 16 in flight: for one caller (a key's steady requests, its
  document there) and for a new caller each time (the upsert inserts);
- `take` for one caller over its budget (each refused: the update, then the read of its wait).
Every sample runs on a SecantusDB process of its own (SecantusDB slows down for good after some ten thousand writes
and deletes), each figure once per repeat, in turn: the figures compared ran under the same conditions. Medians of
`--repeats`; ratios are against the raw `update_one` of the same concurrency. Saved in
bench/results/shared_rate_limit.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

from harness import Figure, database_label, database_of_its_own, run, save, table
from pymongo.asynchronous.database import AsyncDatabase
from raw_limits import in_flight

from recovery_intake.adapters.rate_limits import MongoSharedRates
from recovery_runtime.clock import SystemClock

GROUP = "shared rate limit"
COUNT = 20_000

Database = AsyncDatabase[dict[str, Any]]


async def raw(db: Database, concurrency: int) -> float:
    collection = db["raw"]
    await collection.insert_many([{"_id": f"k{i}", "n": 0} for i in range(COUNT)])
    return await in_flight(COUNT, concurrency, lambda i: collection.update_one({"_id": f"k{i}"}, {"$inc": {"n": 1}}))


async def one_caller(db: Database, concurrency: int) -> float:
    # A key's steady requests: its document exists; a budget no request here exhausts.
    rates = MongoSharedRates(db, SystemClock())
    return await in_flight(COUNT, concurrency, lambda i: rates.take("rate:key", 100_000.0, 10**7))


async def new_callers(db: Database, concurrency: int) -> float:
    rates = MongoSharedRates(db, SystemClock())
    return await in_flight(COUNT, concurrency, lambda i: rates.take(f"rate:{i}", 50.0, 100))


async def refused(db: Database, concurrency: int) -> float:
    rates = MongoSharedRates(db, SystemClock())
    for _ in range(2):
        await rates.take("rate:over", 0.001, 1)  # the one share, then over
    return await in_flight(COUNT, concurrency, lambda i: rates.take("rate:over", 0.001, 1))


Measure = Callable[[Database, int], Awaitable[float]]
# (name, unit, measure, concurrency, index of the raw limit it is compared against)
MEASURES: list[tuple[str, str, Measure, int, int | None]] = [
    ("raw update_one by _id, 1 in flight", "ops/s", raw, 1, None),
    ("take, passing, one caller, 1 in flight", "takes/s", one_caller, 1, 0),
    ("take, passing, a new caller each, 1 in flight", "takes/s", new_callers, 1, 0),
    ("take, refused (update + read), 1 in flight", "takes/s", refused, 1, 0),
    ("raw update_one by _id, 16 in flight", "ops/s", raw, 16, None),
    ("take, passing, one caller, 16 in flight", "takes/s", one_caller, 16, 4),
    ("take, passing, a new caller each, 16 in flight", "takes/s", new_callers, 16, 4),
]


async def one_sample(measure: Measure, concurrency: int) -> float:
    """One sample of `measure` on a server of its own (MONGODB_URL: a database of its own there)."""
    async with database_of_its_own("bench_rate") as db:
        return await measure(db, concurrency)


async def measure_all(group: str, name: str, measures: list[tuple[str, str, Measure, int, int | None]]) -> None:
    """Every measure once per `--repeats`, in turn, each sample on a server of its own; the medians printed against
    the raw limit each names, and saved as bench/results/<name>.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(args.repeats):
        for index, (_, _, measure, concurrency, _) in enumerate(measures):
            samples[index].append(await one_sample(measure, concurrency))
    figures = []
    for index, (label, unit, _, _, against) in enumerate(measures):
        limit = statistics.median(samples[against]) if against is not None else None
        limit_name = measures[against][0] if against is not None else ""
        figures.append(
            Figure(group, label, statistics.median(samples[index]), unit, limit, limit_name, samples=samples[index])
        )
    print(f"database: {database_label(os.environ.get('MONGODB_URL', ''))}")
    print(table(figures))
    save(name, figures)


async def main() -> None:
    await measure_all(GROUP, "shared_rate_limit", MEASURES)


if __name__ == "__main__":
    run(main)
