"""Durable timers at scale: firing lateness with many pending timers, and the scheduler's memory as they grow.

    uv run python bench/timer_scale.py [--sizes 10000,100000] [--rate 1000] [--window 10] [--full]

Runs SecantusDB (or MONGODB_URL) and the scheduler alone (recovery_cli.stack, a RabbitMQ virtual host of its
own). For each size it tops the scheduler's `timers` collection up to that many pending timers, inserted in
batches straight into the collection in the scheduler's own document shape (adapters/timers.py
`timer_document`): all but a window due a day later, the window due at `--rate` per second starting a few
seconds after the insert. Each window timer carries a `webhook.deliver` message (no dispatcher runs; the
messages stay in the private vhost, deleted at the end). After the window: lateness = fired_at - due_at of
every window timer (p50/p99, target p99 < 1 s), and the scheduler's RSS. `--full` adds 1,000,000.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from end_to_end import private_vhost
from harness import Figure, percentile, run, save, table
from pymongo import AsyncMongoClient

from recovery_cli.stack import Stack, StackConfig
from recovery_cli.stack.vhosts import VirtualHosts, vhost_name
from recovery_contracts.envelope import MessageType
from recovery_runtime.bus import OutgoingMessage
from recovery_scheduler.adapters.timers import TimerKind, timer_document

GROUP = "timers"
BATCH = 5000


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


async def top_up(collection: Any, pending: int, target: int) -> tuple[int, float]:
    """Insert far-future timers until `target` are pending; (how many, docs per second)."""
    missing, started = max(0, target - pending), time.perf_counter()
    now = datetime.now(UTC)
    far = now + timedelta(days=1)
    for first in range(0, missing, BATCH):
        docs = [idle_timer(i, far + timedelta(milliseconds=i), now) for i in range(first, min(missing, first + BATCH))]
        await collection.insert_many(docs, ordered=False)
    elapsed = time.perf_counter() - started
    return missing, missing / elapsed if elapsed > 0 else float("nan")


async def fire_window(collection: Any, rate: float, seconds: float, label: str) -> list[float]:
    """Inserts a window of timers due at `rate`/s, waits for it to pass; lateness of each in seconds."""
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
    while time.monotonic() < deadline:
        left = await collection.count_documents({"purpose": f"bench_{label}", "status": {"$ne": "fired"}})
        if left == 0 and datetime.now(UTC) > end:
            break
        await asyncio.sleep(1.0)
    fired = await collection.find({"purpose": f"bench_{label}"}, {"due_at": 1, "fired_at": 1}).to_list(None)
    late = [(d["fired_at"] - d["due_at"]).total_seconds() for d in fired if d.get("fired_at")]
    unfired = count - len(late)
    if unfired:
        print(f"    {unfired} of {count} window timers never fired within a minute of the window's end")
        late += [float("inf")] * unfired
    return late


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="pending timer counts, ascending")
    parser.add_argument("--full", action="store_true", help="also 1,000,000 pending (slow on SecantusDB)")
    parser.add_argument("--rate", type=float, default=1000.0, help="timers falling due per second in a window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of timers falling due per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.full else [])

    vhosts = VirtualHosts(os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    vhost = vhost_name("recovery-bench-", "timers")
    rabbitmq_url = await asyncio.to_thread(private_vhost, vhosts, vhost)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-timers-"))
    config = StackConfig.from_environment(
        run_dir, rabbitmq_url=rabbitmq_url, mongodb_database=f"bench_timers_{os.getpid()}", components=("scheduler",),
        free_ports=True, log_level="WARNING", readiness_timeout=180.0,
    )  # fmt: skip
    stack = Stack(config)
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    try:
        await asyncio.to_thread(stack.start)
        scheduler = psutil.Process(stack.process("scheduler").pid)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
        collection = client[config.mongodb_database]["timers"]
        pending = 0
        rss_idle = scheduler.memory_info().rss / 2**20
        for size in sizes:
            window = int(args.rate * args.window)
            added, insert_rate = await top_up(collection, pending, size - window)
            pending += added
            print(f"  {size:,} pending: inserted {added:,} at {insert_rate:,.0f} docs/s; firing {window:,} "
                  f"at {args.rate:g}/s")  # fmt: skip
            late = await fire_window(collection, args.rate, args.window, str(size))
            pending = await collection.count_documents({"status": "pending"})
            rss = scheduler.memory_info().rss / 2**20
            finite = [x for x in late if x != float("inf")]
            p50, p99 = percentile(late, 50), percentile(late, 99)
            details[str(size)] = {
                "insert_docs_per_second": insert_rate, "lateness_p50_s": p50, "lateness_p99_s": p99,
                "lateness_max_s": max(finite, default=float("nan")), "fired": len(finite), "window": window,
                "rss_mib": rss, "pending_after": pending,
            }  # fmt: skip
            figures.append(
                Figure(
                    GROUP,
                    f"firing lateness p99, {size:,} pending, {args.rate:g}/s due",
                    p99,
                    "s",
                    target="p99 < 1 s",
                    met=p99 < 1.0,
                    note=f"p50 {p50:.3f} s; {len(finite)}/{window} fired; "
                    f"median {statistics.median(finite) if finite else float('nan'):.3f} s",
                )
            )
            figures.append(
                Figure(
                    GROUP,
                    f"scheduler RSS, {size:,} pending",
                    rss,
                    "MiB",
                    limit=rss_idle,
                    limit_name="RSS idle, no timers",
                    target="flat",
                )
            )
            print(f"    lateness p50 {p50:.3f} s, p99 {p99:.3f} s; scheduler RSS {rss:.0f} MiB")
        await client.close()
    finally:
        await asyncio.to_thread(stack.stop)
        vhosts.delete(vhost, wait=False)
        vhosts.wait_for_deletes(timeout=300)
    rss_values = [details[str(s)]["rss_mib"] for s in sizes if str(s) in details]
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
