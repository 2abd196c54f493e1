"""What every benchmark here shares: helper processes (SecantusDB, a fast receiver), repeats, figures, results.

A figure is reported with the raw limit it is compared against, measured in the same run, and the ratio:
absolute numbers from a shared 2-core machine mean little on their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

# A minimal aiohttp receiver, the raw limit for an HTTP POST from this machine's Python.
FAST_RECEIVER = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text='{"received":true}', content_type="application/json")
app = web.Application()
app.router.add_post("/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def mongodb() -> Iterator[str]:
    """MONGODB_URL when set, else a SecantusDB of our own (its own process, in-memory storage)."""
    url = os.environ.get("MONGODB_URL")
    if url:
        yield url
        return
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-secantus-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port)
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        process.terminate()
        process.wait(15)
        log.close()


@asynccontextmanager
async def database_of_its_own(prefix: str) -> AsyncIterator[Any]:
    """A database on a server of its own (`mongodb()`), dropped afterwards: SecantusDB slows down for good within
    one process, so a sample taken after another's writes would understate the limit."""
    from pymongo import AsyncMongoClient

    with mongodb() as url:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
        db = client[f"{prefix}_{uuid.uuid4().hex[:8]}"]
        try:
            yield db
        finally:
            await client.drop_database(db.name)
            await client.close()


@contextmanager
def fast_receiver() -> Iterator[str]:
    """A minimal aiohttp server in its own process; yields the URL to POST to."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", FAST_RECEIVER, str(port)])
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}/webhooks"
    finally:
        process.terminate()
        process.wait(10)


def database_label(url: str) -> str:
    return "MongoDB at MONGODB_URL" if os.environ.get("MONGODB_URL") else "SecantusDB (own process, :memory:)"


async def median_rate(measure: Callable[[], Awaitable[float]], repeats: int) -> tuple[float, list[float]]:
    """Runs `measure` `repeats` times; the median and every sample (the machine is shared: spread matters)."""
    samples = [await measure() for _ in range(repeats)]
    return statistics.median(samples), samples


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Figure:
    """One line of the table: what was measured, its value, and what it is compared against."""

    group: str
    name: str
    value: float
    unit: str
    limit: float | None = None
    limit_name: str = ""
    target: str = ""
    met: bool | None = None
    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.limit in (None, 0):
            return None
        return self.value / self.limit  # type: ignore[operator]


def machine() -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()}
    try:
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def save(name: str, figures: list[Figure], extra: dict[str, Any] | None = None) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "benchmark": name,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
        **(extra or {}),
    }
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


def load(name: str) -> list[Figure]:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return []
    figures = []
    for item in json.loads(path.read_text())["figures"]:
        item.pop("ratio", None)
        figures.append(Figure(**item))
    return figures


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    header = ("group", "figure", "value", "unit", "raw limit / reference", "ratio", "target", "met")
    rows = [header]
    for f in figures:
        limit = f"{_fmt(f.limit)} ({f.limit_name})" if f.limit is not None else f.limit_name or "-"
        ratio = f"{f.ratio:.1%}" if f.ratio is not None else "-"
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        rows.append((f.group, f.name, _fmt(f.value), f.unit, limit, ratio, f.target or "-", met))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run(main: Callable[[], Awaitable[None]]) -> None:
    """asyncio.run with the repo's test support importable (as the webhook benchmark does); SIGTERM cancels the
    run as Ctrl-C does, so its `finally` blocks stop the stack and delete the virtual host it made."""
    sys.path.insert(0, str(REPO / "tests"))

    async def cancellable() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await main()

    try:
        asyncio.run(cancellable())
    except asyncio.CancelledError:
        print("terminated (SIGTERM): what the run had started is stopped", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
