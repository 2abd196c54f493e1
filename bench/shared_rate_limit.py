"""What intake's shared rate limit costs a request it lets through, against the raw limit in the same run.

    uv run python bench/shared_rate_limit.py [--repeats 3]

The shared limit (services/intake/src/recovery_intake/adapters/rate_limits.py) is one pipeline `update_one` per
request that the process's own bucket lets through. This measures, on one database (MONGODB_URL, else SecantusDB
started here) and one after the other in each repeat:
- the raw limit: `update_one` by `_id` with `$inc`, sequential and 16 in flight (as bench/raw_limits.py);
- `MongoSharedRates.take` passing, sequential and 16 in flight: for one caller (a key's steady requests, its
  document there) and for a new caller each time (the upsert inserts);
- `take` for one caller over its budget (each refused: the update, then the read of its wait).
Medians of `--repeats`; ratios are against the raw `update_one` of the same concurrency. Saved in
bench/results/shared_rate_limit.json.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from harness import Figure, database_label, median_rate, mongodb, run, save, table
from pymongo import AsyncMongoClient
from raw_limits import in_flight

from recovery_intake.adapters.rate_limits import MongoSharedRates
from recovery_runtime.clock import SystemClock

GROUP = "shared rate limit"
COUNT = 20_000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with mongodb() as url:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
        db = client[f"bench_rate_{uuid.uuid4().hex[:8]}"]
        rates = MongoSharedRates(db, SystemClock())
        figures: list[Figure] = []
        try:
            for concurrency in (1, 16):
                raw_name = f"raw update_one by _id, {concurrency} in flight"

                async def raw(c: int = concurrency) -> float:
                    collection = db[f"raw_{uuid.uuid4().hex[:6]}"]
                    await collection.insert_many([{"_id": f"k{i}", "n": 0} for i in range(COUNT)])
                    return await in_flight(
                        COUNT, c, lambda i: collection.update_one({"_id": f"k{i}"}, {"$inc": {"n": 1}})
                    )

                async def one_caller(c: int = concurrency) -> float:
                    # A key's steady requests: its document exists; a budget no request here exhausts.
                    caller = f"rate:{uuid.uuid4().hex[:6]}"
                    return await in_flight(COUNT, c, lambda i: rates.take(caller, 100_000.0, 10**7))

                async def new_callers(c: int = concurrency) -> float:
                    run_id = uuid.uuid4().hex[:6]
                    return await in_flight(COUNT, c, lambda i: rates.take(f"rate:{run_id}:{i}", 50.0, 100))

                raw_rate, raw_samples = await median_rate(raw, args.repeats)
                figures.append(Figure(GROUP, raw_name, raw_rate, "ops/s", samples=raw_samples))
                for label, measure in (("one caller", one_caller), ("a new caller each", new_callers)):
                    rate, samples = await median_rate(measure, args.repeats)
                    name = f"take, passing, {label}, {concurrency} in flight"
                    figures.append(Figure(GROUP, name, rate, "takes/s", raw_rate, raw_name, samples=samples))

            async def refused() -> float:
                caller = f"rate:over:{uuid.uuid4().hex[:6]}"
                for _ in range(2):
                    await rates.take(caller, 0.001, 1)  # the one share, then over
                return await in_flight(COUNT, 1, lambda i: rates.take(caller, 0.001, 1))

            rate, samples = await median_rate(refused, args.repeats)
            raw_seq = next(f for f in figures if f.name.startswith("raw") and "1 in flight" in f.name)
            figures.append(
                Figure(
                    GROUP,
                    "take, refused (update + read), 1 in flight",
                    rate,
                    "takes/s",
                    raw_seq.value,
                    raw_seq.name,
                    samples=samples,
                )
            )
        finally:
            await client.drop_database(db.name)
            await client.close()
    print(f"database: {database_label(url)}")
    print(table(figures))
    save("shared_rate_limit", figures)


if __name__ == "__main__":
    run(main)
