"""Durable timers at scale: firing lateness with many pending timers, and the scheduler's memory as they grow.

    uv run python bench/timer_scale.py [--sizes 10000,100000] [--full] [--rate 1000] [--window 10] [--repeats 1]

Runs SecantusDB (or MONGODB_URL) and the scheduler alone (recovery_cli.stack, a RabbitMQ virtual host of its
own). First the raw limits of the database in the same run, on a scratch collection with the timers' own
indexes (adapters/timers.py INDEXES): insert_many, update_many by `_id $in` (the claim's write, one per timer),
and a find over a `timer_due` range (the claim's two reads). Then for each size it tops the scheduler's `timers`
collection up to that many pending timers, inserted in batches straight into the collection in the scheduler's
own document shape (`timer_document`, the indexes in place, as in production), due a day later; then
`--repeats` windows of timers due at `--rate` per second for `--window` seconds, each carrying a
`webhook.deliver` message. The benchmark consumes those messages from `dispatcher.deliver-webhook` (no
dispatcher runs). Per window: lateness = due_at -> the message received by that consumer, p50/p95/p99
(target p99 < 1 s), and due_at -> fired_at (the claim: a timer is marked fired with its batch, before the
publish); the achieved firing rate; the CPU share of the scheduler, SecantusDB and the benchmark; the
scheduler's RSS (after the window and its peak, sampled every 0.5 s). `--full` adds 1,000,000 pending
(inserting it takes minutes on SecantusDB: the time is printed and saved).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import psutil
from end_to_end import private_vhost
from harness import Figure, percentile, run, save, table
from pymongo import AsyncMongoClient

from recovery_cli.stack import Stack, StackConfig
from recovery_cli.stack.vhosts import BENCH_VHOST_PREFIX, VirtualHosts, vhost_name
from recovery_contracts.envelope import MessageType
from recovery_runtime.bus import OutgoingMessage
from recovery_scheduler.adapters.timers import INDEXES, TimerKind, timer_document

GROUP = "timers"
BATCH = 5000
QUEUE = "dispatcher.deliver-webhook"


def window_timer(index: int, due: datetime, now: datetime, label: str) -> dict[str, Any]:
    message = OutgoingMessage(f"bench-{label}-{index}", MessageType.DELIVER_WEBHOOK, b"{}", f"bench_pay_{index}")
    return timer_document(
        f"bench:{label}:{index}", kind=TimerKind.MESSAGE, due_at=due, payment_id=None, created_at=now,
        message=message, purpose=f"bench_{label}",
    )  # fmt: skip


def idle_timer(index: int, due: datetime, now: datetime) -> dict[str, Any]:
    return timer_document(
        f"bench:idle:{uuid.uuid4().hex}", kind=TimerKind.REPLAN, due_at=due, payment_id=f"bench_pay_idle_{index}",
        created_at=now, purpose="bench_idle",
    )  # fmt: skip


# ---- raw limits, same run, same indexes ----------------------------------------------------------------------


async def raw_limits(db: Any, repeats: int) -> dict[str, list[float]]:
    """docs/s of insert_many (batches of 1,000), update_many by `_id $in` (100 ids) and a `timer_due` range find
    (100 docs) on a scratch collection with the timers' indexes, a few thousand documents in it."""
    scratch = db["bench_raw_timers"]
    await scratch.drop()
    for spec in INDEXES:
        await scratch.create_index(list(spec.keys), name=spec.name)
    samples: dict[str, list[float]] = {"insert_many": [], "update_many": [], "find_range": []}
    now = datetime.now(UTC)
    for r in range(repeats):
        docs = [window_timer(i, now + timedelta(hours=r, milliseconds=i), now, f"raw{r}") for i in range(3000)]
        started = time.perf_counter()
        for first in range(0, len(docs), 1000):
            await scratch.insert_many(docs[first : first + 1000], ordered=False)
        samples["insert_many"].append(len(docs) / (time.perf_counter() - started))
        batches = [[d["_id"] for d in docs[first : first + 100]] for first in range(0, 1000, 100)]
        started = time.perf_counter()
        for ids in batches:
            await scratch.update_many(
                {"_id": {"$in": ids}, "status": "pending"}, {"$set": {"status": "leased", "claim_id": "raw"}}
            )
        samples["update_many"].append(1000 / (time.perf_counter() - started))
        started = time.perf_counter()
        for first in range(1000, 2000, 100):
            low, high = docs[first]["due_at"], docs[first + 99]["due_at"]
            found = await scratch.find({"status": "pending", "due_at": {"$gte": low, "$lte": high}}).to_list(None)
            assert len(found) == 100, len(found)
        samples["find_range"].append(1000 / (time.perf_counter() - started))
    await scratch.drop()
    return samples


# ---- the scheduler under test ------------------------------------------------------------------------------


async def top_up(collection: Any, pending: int, target: int) -> tuple[int, float]:
    """Insert far-future timers until `target` are pending; (how many, seconds it took)."""
    missing, started = max(0, target - pending), time.perf_counter()
    now = datetime.now(UTC)
    far = now + timedelta(days=1)
    for first in range(0, missing, BATCH):
        docs = [idle_timer(i, far + timedelta(milliseconds=i), now) for i in range(first, min(missing, first + BATCH))]
        await collection.insert_many(docs, ordered=False)
        done = min(missing, first + BATCH)
        if done % 100_000 == 0 and missing >= 200_000:
            print(f"    {pending + done:,} pending after {time.perf_counter() - started:.0f} s")
    return missing, time.perf_counter() - started


class Arrivals:
    """Consumes the scheduler's `webhook.deliver` commands; the wall-clock time each message id arrived."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.at: dict[str, float] = {}
        self._connection: Any = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.get_queue(QUEUE, ensure=True)

        async def on_message(message: Any) -> None:
            self.at[message.message_id] = time.time()

        await queue.consume(on_message, no_ack=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


async def sample_rss(process: psutil.Process, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(psutil.Error):
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def fire_window(collection: Any, arrivals: Arrivals, rate: float, seconds: float, label: str) -> dict[str, Any]:
    """Inserts a window of timers due at `rate`/s and waits for it to pass; lateness of each in seconds."""
    count = int(rate * seconds)
    now = datetime.now(UTC)
    # Far enough ahead that the insert finishes before the first falls due, even on a slow database.
    start = now + timedelta(seconds=3 + count / 2000)
    docs = [window_timer(i, start + timedelta(seconds=i / rate), now, label) for i in range(count)]
    for first in range(0, count, BATCH):
        await collection.insert_many(docs[first : first + BATCH], ordered=False)
    lead = (start - datetime.now(UTC)).total_seconds()
    if lead < 0:
        print(f"    warning: the window's insert finished {-lead:.1f}s after its first timer fell due")
    end = start + timedelta(seconds=seconds)
    deadline = time.monotonic() + max((end - datetime.now(UTC)).total_seconds(), 0) + 60
    await asyncio.sleep(max((end - datetime.now(UTC)).total_seconds(), 0))
    # Only `timer_due` ranges over the window's due times: a query on any other field would scan the whole
    # collection (a million documents) and slow the database under test.
    # SecantusDB reads the whole range before a limit applies: while the loop is behind, the window's pending
    # range is thousands of documents, so the benchmark looks at the last timer alone (by _id) until it fired.
    window = {"$gte": docs[0]["due_at"], "$lte": docs[-1]["due_at"]}
    while time.monotonic() < deadline:
        last_timer = await collection.find_one({"_id": docs[-1]["_id"]}, {"status": 1})
        if last_timer is not None and last_timer["status"] == "fired":
            if not await collection.find({"status": "pending", "due_at": window}, {"_id": 1}).limit(1).to_list(1):
                break
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.5)  # the last confirms' messages reach the consumer
    fired = await collection.find(
        {"status": "fired", "due_at": window}, {"due_at": 1, "fired_at": 1, "claims": 1, "purpose": 1}
    ).to_list(None)
    fired = [d for d in fired if d.get("purpose") == f"bench_{label}"]
    late = [(d["fired_at"] - d["due_at"]).total_seconds() for d in fired if d.get("fired_at")]
    due = {f"bench-{label}-{i}": d["due_at"].timestamp() for i, d in enumerate(docs)}
    queued = [arrivals.at[m] - t for m, t in due.items() if m in arrivals.at]
    unfired = count - len(late)
    if unfired:
        print(f"    {unfired} of {count} window timers never fired within a minute of the window's end")
        late += [float("inf")] * unfired
    queued += [float("inf")] * (count - len(queued))
    last = max((d["fired_at"] for d in fired if d.get("fired_at")), default=None)
    span = (last - docs[0]["due_at"]).total_seconds() if last else float("nan")
    return {
        "count": count,
        "fired": count - unfired,
        "fired_per_second": (count - unfired) / span if span and span > 0 else float("nan"),
        "reclaimed": sum(1 for d in fired if d.get("claims", 0) > 1),
        "lateness": {q: percentile(late, q) for q in (50, 95, 99)},
        "lateness_max": max((x for x in late if x != float("inf")), default=float("nan")),
        "to_queue": {q: percentile(queued, q) for q in (50, 95, 99)},
    }


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU of the process and its children (the stack runs each service under a wrapper)."""
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return float("nan")


def median(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="pending timer counts, ascending")
    parser.add_argument("--full", action="store_true", help="also 1,000,000 pending (slow on SecantusDB)")
    parser.add_argument("--rate", type=float, default=1000.0, help="timers falling due per second in a window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of timers falling due per window")
    parser.add_argument("--repeats", type=int, default=1, help="windows per size (figures are their medians)")
    parser.add_argument("--raw-repeats", type=int, default=3, help="samples of each raw limit")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.full else [])

    vhosts = VirtualHosts(os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    vhost = vhost_name(BENCH_VHOST_PREFIX, "timers")
    rabbitmq_url = await asyncio.to_thread(private_vhost, vhosts, vhost)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-timers-"))
    config = StackConfig.from_environment(
        run_dir, rabbitmq_url=rabbitmq_url, mongodb_database=f"bench_timers_{os.getpid()}", components=("scheduler",),
        free_ports=True, log_level="WARNING", readiness_timeout=180.0,
    )  # fmt: skip
    stack = Stack(config)
    figures: list[Figure] = []
    details: dict[str, Any] = {"sizes": {}}
    arrivals = Arrivals(rabbitmq_url)
    try:
        # On this (the main) thread: its processes then die with this one, even when it is killed
        # (a process started from a worker thread would outlive it: recovery_cli.stack.process).
        stack.start()
        scheduler = psutil.Process(stack.process("scheduler").pid)
        processes = {"scheduler": scheduler, "benchmark": psutil.Process()}
        if config.mongodb_url is None:
            processes["secantusdb"] = psutil.Process(stack.process("secantusdb").pid)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
        db = client[config.mongodb_database]
        collection = db["timers"]
        await arrivals.start()
        raw = await raw_limits(db, args.raw_repeats)
        details["raw"] = raw
        insert_raw, update_raw, find_raw = (
            statistics.median(raw[k]) for k in ("insert_many", "update_many", "find_range")
        )
        # Per timer the loop writes it once (the claim marks it fired) and reads it twice (due range, read back).
        ceiling = 1 / (1 / update_raw + 2 / find_raw)
        print(f"  raw: insert_many {insert_raw:,.0f} docs/s, update_many {update_raw:,.0f} docs/s, "
              f"find range {find_raw:,.0f} docs/s -> fire-path ceiling {ceiling:,.0f} timers/s")  # fmt: skip
        figures += [
            Figure(GROUP, "raw: insert_many, timer documents", insert_raw, "docs/s", samples=raw["insert_many"]),
            Figure(GROUP, "raw: update_many by _id $in (100)", update_raw, "docs/s", samples=raw["update_many"]),
            Figure(GROUP, "raw: find, timer_due range (100)", find_raw, "docs/s", samples=raw["find_range"]),
            Figure(GROUP, "fire-path ceiling: 1/(1/update + 2/find)", ceiling, "timers/s", limit=args.rate,
                   limit_name="asked", note="one write and two reads per timer"),
        ]  # fmt: skip
        pending = 0
        rss_idle = scheduler.memory_info().rss / 2**20
        for size in sizes:
            window = int(args.rate * args.window)
            added, insert_seconds = await top_up(collection, pending, size)
            pending += added
            insert_rate = added / insert_seconds if insert_seconds > 0 else float("nan")
            print(f"  {size:,} pending: inserted {added:,} in {insert_seconds:.0f} s ({insert_rate:,.0f} docs/s); "
                  f"{args.repeats} window(s) of {window:,} due at {args.rate:g}/s")  # fmt: skip
            runs = []
            peak = [scheduler.memory_info().rss / 2**20]
            for repeat in range(args.repeats):
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_rss(scheduler, peak, stop))
                cpu_before = {name: cpu_seconds(p) for name, p in processes.items()}
                started = time.monotonic()
                result = await fire_window(collection, arrivals, args.rate, args.window, f"{size}-{repeat}")
                elapsed = time.monotonic() - started
                result["cpu_share"] = {
                    name: (cpu_seconds(p) - cpu_before[name]) / elapsed for name, p in processes.items()
                }
                stop.set()
                await sampler
                result["rss_mib"] = scheduler.memory_info().rss / 2**20
                runs.append(result)
                late, queued = result["lateness"], result["to_queue"]
                print(f"    due -> in queue p50 {queued[50]:.3f} s, p95 {queued[95]:.3f} s, p99 {queued[99]:.3f} s; "
                      f"due -> claimed p99 {late[99]:.3f} s; {result['fired_per_second']:,.0f} fired/s; "
                      f"RSS {result['rss_mib']:.0f} MiB; CPU "
                      + ", ".join(f"{k} {v:.0%}" for k, v in result["cpu_share"].items()))  # fmt: skip
            # The raw limits again, at this size: SecantusDB slows as its oplog and the collection grow.
            raw_here = await raw_limits(db, 1)
            ceiling_here = 1 / (1 / raw_here["update_many"][0] + 2 / raw_here["find_range"][0])
            print(f"    raw after the windows: update_many {raw_here['update_many'][0]:,.0f} docs/s, find range "
                  f"{raw_here['find_range'][0]:,.0f} docs/s -> ceiling {ceiling_here:,.0f} timers/s")  # fmt: skip
            p = {q: median([r["to_queue"][q] for r in runs]) for q in (50, 95, 99)}
            claimed = {q: median([r["lateness"][q] for r in runs]) for q in (50, 99)}
            rate = median([r["fired_per_second"] for r in runs])
            rss = runs[-1]["rss_mib"]
            details["sizes"][str(size)] = {
                "pending_inserted": added, "insert_seconds": insert_seconds, "insert_docs_per_second": insert_rate,
                "windows": runs, "raw_after": raw_here, "ceiling_after": ceiling_here, "rss_mib": rss,
                "rss_peak_mib": peak[0], "pending": pending,
            }  # fmt: skip
            figures += [
                Figure(GROUP, f"firing lateness p99 (due -> in queue), {size:,} pending, {args.rate:g}/s due", p[99],
                       "s", target="p99 < 1 s", met=p[99] < 1.0, samples=[r["to_queue"][99] for r in runs],
                       note=f"p50 {p[50]:.3f} s, p95 {p[95]:.3f} s; due -> claimed (fired_at) p50 {claimed[50]:.3f} s, "
                       f"p99 {claimed[99]:.3f} s"),
                Figure(GROUP, f"timers fired per second, {size:,} pending", rate, "timers/s",
                       limit=(ceiling + ceiling_here) / 2, limit_name="fire-path ceiling, mean of start and this size",
                       target=f">= {args.rate:g}/s", met=rate >= args.rate * 0.98,
                       note=f"ceiling {ceiling:,.0f} at the start, {ceiling_here:,.0f} after these windows"),
                Figure(GROUP, f"scheduler RSS, {size:,} pending", rss, "MiB", limit=rss_idle,
                       limit_name="RSS idle, no timers", target="flat", note=f"peak {peak[0]:.0f} MiB"),
                Figure(GROUP, f"insert_many of {added:,} pending timers", insert_rate, "docs/s", limit=insert_raw,
                       limit_name="raw insert_many", note=f"{insert_seconds:.0f} s"),
            ]  # fmt: skip
        await client.close()
    finally:
        await arrivals.close()
        await asyncio.to_thread(stack.stop)
        vhosts.delete(vhost, wait=False)
        vhosts.wait_for_deletes(timeout=300)
    rss_values = [details["sizes"][str(s)]["rss_mib"] for s in sizes if str(s) in details["sizes"]]
    if len(rss_values) > 1:
        growth = max(rss_values) - min(rss_values)
        figures.append(
            Figure(GROUP, "scheduler RSS growth across sizes", growth, "MiB", target="flat (< 20 MiB)", met=growth < 20)
        )
    path = save("timer_scale", figures, {"details": details, "args": vars(args)})
    print(table(figures))
    print(f"results in {path}")


if __name__ == "__main__":
    run(main)
