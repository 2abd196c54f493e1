"""End to end: recoveries per second from POST /v2/payments/recovery to a verified webhook, the operations
each recovery costs (MongoDB round trips, broker publishes, by service), latency from due time to webhook,
and the services' memory.

    uv run python bench/end_to_end.py [--recoveries 150] [--rounds 3] [--configs single,scaled,pipeline] [--profile]

The whole system runs as processes (recovery_cli.stack.Stack: SecantusDB or MONGODB_URL, the five services,
the Stripe sandbox approving at once, the sandbox receiver verifying signatures) on a RabbitMQ virtual host
of its own. The merchant's billing account has the retry ladder [1 s] and TIME_SCALE is large, so a retry
falls due milliseconds after the recovery is accepted. The services' MongoDB round trips are counted by a
PyMongo command listener loaded through bench/instrument/sitecustomize.py (no service code changes); broker
publishes by the services' own `recovery_messages_published_total`.

The read side (the analytics service) runs beside the pipeline but is not on a recovery's path: its round trips,
publishes and deliveries are reported on lines of their own, not added to the pipeline's, and its lag is the time
from a round's last verified webhook until every recovered payment of the round shows as recovered in its views.

Configurations: `single` (one instance each), `scaled` (two executors, two webhook dispatchers), `pipeline` (one
instance each without the read side, as a deployment with UNDEPLOYED_SERVICES=analytics: the pipeline's own rate).
Results and the comparison against raw limits (bench/results/raw_limits.json) go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from harness import BENCH_DIR, RESULTS_DIR, Figure, load, percentile, run, save, table
from pymongo import AsyncMongoClient

from recovery_cli.load import LoadDriver, Outcome
from recovery_cli.seed_scenario import Endpoints
from recovery_cli.stack import SERVICES, Stack, StackConfig, with_vhost
from recovery_cli.stack.components import EVERYTHING
from recovery_cli.stack.vhosts import BENCH_VHOST_PREFIX, VhostUnavailable, VirtualHosts, vhost_name

GROUP = "e2e"
SERVICE_NAMES = [service.name for service in SERVICES]
CONFIGS = {"single": {}, "scaled": {"executor": 2, "webhook-dispatcher": 2}, "pipeline": {}}
# Configurations run as a deployment without the read side (UNDEPLOYED_SERVICES=analytics): the pipeline alone.
WITHOUT_READ_SIDE = {"pipeline"}
PROFILES_DIR = RESULTS_DIR / "profiles"
# The read side: measured, reported apart from the recovery pipeline's operations.
READ_SIDE = "analytics"

_SERIES = re.compile(r"^(\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$")


def received_at(delivery: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(delivery["received_at"]).replace("Z", "+00:00")).timestamp()


class Instrumented:
    """One stack's service processes: their /metrics counters, resident memory and profiles."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        # The services this stack runs (not the read side in the `pipeline` configuration or with --without-read-side).
        self.instances = {name: found for name in SERVICE_NAMES if (found := stack.instances(name))}

    async def counters(self, session: aiohttp.ClientSession) -> dict[str, dict[str, float]]:
        """Per service (instances summed): mongo round trips, publishes, consumed messages."""
        totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for service, instances in self.instances.items():
            for instance in instances:
                async with session.get(f"{self.stack.url(instance)}/metrics") as answer:
                    text = await answer.text()
                for line in text.splitlines():
                    match = _SERIES.match(line)
                    if not match:
                        continue
                    name, labels, value = match.groups()
                    if name == "bench_mongo_commands_total":
                        command = re.search(r'command="([^"]+)"', labels)
                        collection = re.search(r'collection="([^"]*)"', labels)
                        if command and command.group(1) not in ("ping", "hello", "isMaster", "endSessions"):
                            totals[service]["mongo"] += float(value)
                            totals[service][f"mongo:{command.group(1)}"] += float(value)
                            where = collection.group(1) if collection else ""
                            totals[service][f"by:{command.group(1)} {where}".strip()] += float(value)
                    elif name == "recovery_messages_published_total":
                        totals[service]["published"] += float(value)
                    elif name == "recovery_messages_consumed_total":
                        totals[service]["consumed"] += float(value)
            totals[service]["cpu_ms"] += self.cpu_ms(instances)
        return {service: dict(values) for service, values in totals.items()}

    def cpu_ms(self, instances: list[str]) -> float:
        """CPU time (user + system) the instances' processes have used so far, in milliseconds."""
        used = 0.0
        for instance in instances:
            pid = self.stack.process(instance).pid
            if pid:
                try:
                    times = psutil.Process(pid).cpu_times()
                except psutil.Error:
                    continue
                used += (times.user + times.system) * 1000.0
        return used

    def rss_mib(self) -> dict[str, float]:
        """Resident memory per service in MiB (the largest instance, when there are several)."""
        out: dict[str, float] = {}
        for service, instances in self.instances.items():
            sizes = []
            for instance in instances:
                pid = self.stack.process(instance).pid
                if pid:
                    try:
                        sizes.append(psutil.Process(pid).memory_info().rss / 2**20)
                    except psutil.Error:
                        pass
            out[service] = max(sizes, default=float("nan"))
        return out

    def signal_all(self, signum: int) -> None:
        for instances in self.instances.values():
            for instance in instances:
                pid = self.stack.process(instance).pid
                if pid:
                    os.kill(pid, signum)


def per_recovery(
    before: dict[str, dict[str, float]],
    after: dict[str, dict[str, float]],
    idle_rate: dict[str, dict[str, float]],
    seconds: float,
    count: int,
) -> dict[str, dict[str, float]]:
    """Counter deltas per recovery, less what the services' background loops do when idle in that time."""
    out: dict[str, dict[str, float]] = {}
    for service in after:
        keys = set(after[service]) | set(before.get(service, {}))
        out[service] = {}
        for key in keys:
            delta = after[service].get(key, 0.0) - before.get(service, {}).get(key, 0.0)
            background = idle_rate.get(service, {}).get(key, 0.0) * seconds
            out[service][key] = max(delta - background, 0.0) / count
    return out


async def sample_rss(probe: Instrumented, peaks: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for service, rss in probe.rss_mib().items():
            peaks[service] = max(peaks.get(service, 0.0), rss)
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def throughput_round(
    driver: LoadDriver,
    probe: Instrumented,
    count: int,
    concurrency: int,
    idle_rate: dict[str, dict[str, float]],
    peaks: dict[str, float],
    lags: list[float] | None = None,
) -> tuple[float, dict[str, dict[str, float]], int]:
    """(recoveries/s, operations per recovery by service, verified webhooks) for `count` recoveries; with `lags`,
    the read side's lag after the round's last webhook is appended to it."""
    cards = await driver.cards([Outcome.SUCCESS] * count)
    since = max((int(d["sequence"]) for d in await driver.received()), default=0)
    before = await probe.counters(driver.session)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(probe, peaks, stop))
    report = await driver.send(cards, concurrency=concurrency)
    ids = {s.payment_id for s in report.accepted if s.payment_id}
    found = await driver.wait_for_webhooks(ids, within=max(120.0, count / 2), since=since)
    stop.set()
    await sampler
    if not found:
        raise RuntimeError(f"no webhook arrived for {len(ids)} accepted recoveries ({dict(report.errors)})")
    last = max(received_at(d) for d in found.values())
    elapsed = last - report.started
    if lags is not None:
        lags.append(await read_side_lag(probe.stack, list(found), last))
    await asyncio.sleep(1.0)  # let the last settles (intake's payment.succeeded) be counted
    after = await probe.counters(driver.session)
    verified = sum(1 for d in found.values() if (d.get("signature_512") or {}).get("valid") is True)
    ops = per_recovery(before, after, idle_rate, time.time() - report.started, len(found))
    if len(found) < len(ids) or report.errors:
        print(f"    warning: {len(found)}/{len(ids)} webhooks, errors {dict(report.errors)}")
    return len(found) / elapsed, ops, verified


async def read_side_lag(stack: Stack, payment_ids: list[str], last_webhook: float, within: float = 120.0) -> float:
    """Seconds from `last_webhook` until every one of `payment_ids` is recovered in the analytics views."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    try:
        views = client[stack.config.mongodb_database]["analytics_payments"]
        deadline = time.monotonic() + within
        wanted = {"_id": {"$in": payment_ids}, "status": "recovered"}
        while await views.count_documents(wanted) < len(payment_ids):
            if time.monotonic() > deadline:
                return float("nan")
            await asyncio.sleep(0.05)
        return max(0.0, time.time() - last_webhook)
    finally:
        await client.close()


async def latency_run(
    driver: LoadDriver, stack: Stack, rate: float, seconds: float
) -> tuple[list[float], list[float], list[float], float]:
    """(due -> webhook, due -> timer fired, fired -> webhook) in ms, at `rate` recoveries per second, and the timers
    fired per claimed batch (each batch costs the scheduler five round trips)."""
    count = max(20, int(rate * seconds))
    cards = await driver.cards([Outcome.SUCCESS] * count)
    since = max((int(d["sequence"]) for d in await driver.received()), default=0)
    report = await driver.send(cards, rate=rate, concurrency=64)
    ids = {s.payment_id for s in report.accepted if s.payment_id}
    found = await driver.wait_for_webhooks(ids, within=120.0, since=since)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    try:
        timers = (
            await client[stack.config.mongodb_database]["timers"]
            .find({"payment_id": {"$in": list(found)}, "purpose": "execute_retry"})
            .to_list(None)
        )
    finally:
        await client.close()
    total, firing, rest = [], [], []
    for timer in timers:
        delivery = found.get(timer["payment_id"])
        if delivery is None or not timer.get("fired_at"):
            continue
        due, fired, got = timer["due_at"].timestamp(), timer["fired_at"].timestamp(), received_at(delivery)
        total.append((got - due) * 1000)
        firing.append((fired - due) * 1000)
        rest.append((got - fired) * 1000)
    claims = {timer.get("claim_id") for timer in timers if timer.get("claim_id")}
    return total, firing, rest, len(timers) / max(len(claims), 1)


class BenchLoadDriver(LoadDriver):
    """`recovery load`'s driver, with pooled connections dropped after 2 s idle: uvicorn closes a keep-alive
    connection after 5 s, and a POST sent on one it is closing fails (`ServerDisconnectedError`) after the pause
    between rounds."""

    async def __aenter__(self) -> BenchLoadDriver:
        await super().__aenter__()
        await self.session.close()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=2.0),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self


def private_vhost(vhosts: VirtualHosts, vhost: str) -> str:
    """A virtual host of the run's own; rabbitmqctl gets minutes, not the usual 60 s, on a busy machine."""
    ctl = shutil.which("rabbitmqctl")
    try:
        vhosts.remove_abandoned(BENCH_VHOST_PREFIX)
        if ctl is None:
            return vhosts.create(vhost)
        for command in (["add_vhost", vhost], ["set_permissions", "-p", vhost, vhosts.user, ".*", ".*", ".*"]):
            subprocess.run([ctl, *command], check=True, timeout=300, capture_output=True)
        return with_vhost(vhosts.broker_url, vhost)
    except (VhostUnavailable, subprocess.SubprocessError) as error:
        raise SystemExit(f"the benchmark needs a private RabbitMQ virtual host: {error}") from error


def stack_config(
    run_dir: Path, rabbitmq_url: str, instances: dict[str, int], args: argparse.Namespace, *, alone: bool
) -> StackConfig:
    instrument = str(BENCH_DIR / "instrument")
    pythonpath = os.pathsep.join(filter(None, [instrument, os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": pythonpath, "BENCH_MONGO_MONITOR": "1", "BENCH_PROFILE_DIR": str(PROFILES_DIR)}
    # The load is one merchant's API key: intake's per-key abuse limit (429 past 50/s) would cap the measurement.
    intake_env = {**env, "RATE_LIMIT_PER_SECOND": "0"}
    # A deployment that leaves the read side out (docs/deployment.md): not started, its queues not even declared.
    without = (
        {
            "components": tuple(c for c in EVERYTHING if c != READ_SIDE),
            "extra_env": {"UNDEPLOYED_SERVICES": READ_SIDE},
        }
        if alone
        else {}
    )
    return StackConfig.from_environment(
        run_dir,
        **without,
        rabbitmq_url=rabbitmq_url,
        mongodb_database=f"bench_{os.getpid()}_{int(time.time())}",
        time_scale=args.time_scale,
        log_level=args.log_level,
        free_ports=True,
        instances=instances,
        stripe_api_base=None,
        component_env={name: intake_env if name == "intake" else env for name in SERVICE_NAMES},
        readiness_timeout=180.0,
    )


async def run_config(name: str, args: argparse.Namespace, figures: list[Figure], details: dict[str, Any]) -> None:
    vhosts = VirtualHosts(os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    vhost = vhost_name(BENCH_VHOST_PREFIX, name)
    rabbitmq_url = await asyncio.to_thread(private_vhost, vhosts, vhost)
    run_dir = Path(tempfile.mkdtemp(prefix=f"bench-e2e-{name}-"))
    alone = name in WITHOUT_READ_SIDE or args.without_read_side
    stack = Stack(stack_config(run_dir, rabbitmq_url, CONFIGS[name], args, alone=alone))
    what = f"{CONFIGS[name] or 'one instance each'}{', without the read side' if alone else ''}"
    print(f"  [{name}] starting the stack ({what}); logs in {run_dir / 'logs'}")
    try:
        # On this (the main) thread: its processes then die with this one, even when it is killed
        # (a process started from a worker thread would outlive it: recovery_cli.stack.process).
        stack.start()
        probe = Instrumented(stack)
        async with BenchLoadDriver(Endpoints.of(stack), connections=128) as driver:
            await asyncio.to_thread(driver.prepare_merchant, (1,))
            # Warm every path (connections, caches, JIT of pydantic validators) before measuring.
            await throughput_round(driver, probe, 20, args.concurrency, {}, {})
            await asyncio.sleep(2.0)
            idle_rss = probe.rss_mib()
            first = await probe.counters(driver.session)
            await asyncio.sleep(args.idle_seconds)
            second = await probe.counters(driver.session)
            idle_rate = {
                s: {k: (second[s].get(k, 0) - first.get(s, {}).get(k, 0)) / args.idle_seconds for k in second[s]}
                for s in second
            }
            peaks: dict[str, float] = {}
            rates, all_ops, verified = [], [], 0
            lags: list[float] | None = None if alone else []
            for index in range(args.rounds):
                rate, ops, ok = await throughput_round(
                    driver, probe, args.recoveries, args.concurrency, idle_rate, peaks, lags
                )
                rates.append(rate)
                all_ops.append(ops)
                verified += ok
                print(f"    round {index + 1}: {rate:.1f} recoveries/s, {ok} verified webhooks")
            throughput = statistics.median(rates)
            ops = {
                s: {k: statistics.median(o[s].get(k, 0.0) for o in all_ops) for k in all_ops[0][s]} for s in all_ops[0]
            }
            details[name] = {
                "rates": rates,
                "ops_per_recovery": ops,
                "idle_background_per_second": idle_rate,
                "rss_idle_mib": idle_rss,
                "rss_peak_mib": peaks,
                "verified_webhooks": verified,
                "read_side_lag_seconds": lags,
            }
            figures.append(
                Figure(GROUP, f"throughput [{name}]", throughput, "recoveries/s", samples=[round(r, 2) for r in rates])
            )
            if name == "single":
                rate = args.latency_rate or throughput / 2
                *latency, per_claim = await latency_run(driver, stack, rate, args.latency_seconds)
                details[name]["latency_timers_per_claim"] = per_claim
                details[name]["latency_ms"] = {
                    part: {q: percentile(values, q) for q in (50, 95, 99)} | {"count": len(values)}
                    for part, values in zip(
                        ("due_to_webhook", "due_to_fired", "fired_to_webhook"), latency, strict=True
                    )
                }
                details[name]["latency_rate"] = rate
                if args.profile:
                    PROFILES_DIR.mkdir(parents=True, exist_ok=True)
                    for old in PROFILES_DIR.glob("*"):
                        old.unlink()
                    probe.signal_all(signal.SIGUSR1)
                    await throughput_round(driver, probe, args.recoveries, args.concurrency, idle_rate, {})
                    probe.signal_all(signal.SIGUSR2)
                    await asyncio.sleep(3.0)
                    details[name]["profiles"] = sorted(str(p) for p in PROFILES_DIR.glob("*.txt"))
    finally:
        await asyncio.to_thread(stack.stop)
        vhosts.delete(vhost)


def add_figures(figures: list[Figure], details: dict[str, Any]) -> None:
    """Operations per recovery, ceilings from the raw limits, latency and memory, as table lines."""
    raw = {f.name: f.value for f in load("raw_limits")}
    single = details.get("single")
    if single is None:
        return
    everything = single["ops_per_recovery"]
    # The recovery pipeline's costs; the read side's are reported apart (below).
    ops = {service: values for service, values in everything.items() if service != READ_SIDE}
    totals = {key: sum(v.get(key, 0.0) for v in ops.values()) for key in ("mongo", "published", "consumed")}
    # Each total with each service's share, against its ceiling where the design sets one.
    for key, name, unit, ceiling in (
        ("mongo", "MongoDB round trips per recovery", "round trips", 12),
        ("published", "broker publishes per recovery", "publishes", 6),
        ("consumed", "broker deliveries consumed per recovery", "messages", None),
    ):
        figures.append(
            Figure(
                "ops",
                name,
                totals[key],
                unit,
                target="" if ceiling is None else f"<= {ceiling}",
                met=None if ceiling is None else totals[key] <= ceiling,
                note=", ".join(f"{s} {v.get(key, 0.0):.1f}" for s, v in ops.items()),
            )
        )
    mongo, published, consumed = totals["mongo"], totals["published"], totals["consumed"]
    # CPU per recovery is the figure least bent by the machine's speed and the database's: with a MongoDB that
    # answered instantly, each service's CPU per recovery is what would bound its throughput per core.
    cpu = sum(v.get("cpu_ms", 0.0) for v in ops.values())
    figures.append(
        Figure(
            "ops",
            "CPU per recovery (all services)",
            cpu,
            "CPU ms",
            note=", ".join(f"{s} {v.get('cpu_ms', 0.0):.2f}" for s, v in ops.items()),
        )
    )
    read_side = everything.get(READ_SIDE, {})
    figures.append(
        Figure(
            "ops",
            "read side (analytics) per recovery, apart from the pipeline",
            read_side.get("mongo", 0.0),
            "round trips",
            note=f"consumed {read_side.get('consumed', 0.0):.1f} deliveries, CPU {read_side.get('cpu_ms', 0.0):.2f} ms",
        )
    )
    for config, data in details.items():
        lags = [lag for lag in data.get("read_side_lag_seconds") or [] if lag == lag]  # without the timeouts (nan)
        if lags:
            figures.append(
                Figure(
                    GROUP,
                    f"read side lag after the last webhook [{config}]",
                    max(lags),
                    "s (worst round)",
                    samples=[round(lag, 2) for lag in data["read_side_lag_seconds"]],
                    note="until every recovered payment of the round is recovered in the analytics views",
                )
            )
    # The ceiling each part puts on the pipeline: its raw rate over what one recovery asks of it.
    ceilings = {
        "MongoDB (update_one 16 in flight per round trip)": raw.get(
            "mongodb update_one by indexed field 16 in flight", 0
        )
        / max(mongo, 1e-9),
        "RabbitMQ publish": raw.get("rabbitmq publish (persistent, confirms, quorum, 500 in flight)", 0)
        / max(published, 1e-9),
        "RabbitMQ consume": raw.get("rabbitmq consume + ack (prefetch 200)", 0) / max(consumed, 1e-9),
        # One webhook POST and one Stripe call per recovered payment.
        "HTTP POST": raw.get("aiohttp POST 1 KiB, 64 concurrent", 0) / 2,
    }
    slowest, ceiling = min(ceilings.items(), key=lambda item: item[1])
    for config, data in details.items():
        value = statistics.median(data["rates"])
        figures.append(
            Figure(
                GROUP,
                f"throughput [{config}] vs ceiling",
                value,
                "recoveries/s",
                limit=ceiling,
                limit_name=f"{slowest} ceiling",
                target=">= 30% of ceiling",
                met=value >= 0.3 * ceiling,
                samples=[round(r, 2) for r in data["rates"]],
            )
        )
    latency = single.get("latency_ms")
    if latency:
        for part, label in (
            ("due_to_webhook", "due -> webhook"),
            ("due_to_fired", "due -> timer fired"),
            ("fired_to_webhook", "fired -> webhook"),
        ):
            values = latency[part]
            p99 = values[99]
            figures.append(
                Figure(
                    "latency",
                    f"{label} p50/p95/p99 at {single['latency_rate']:.1f}/s",
                    p99,
                    "ms p99",
                    target="p99 < 250 ms" if part == "due_to_webhook" else "",
                    met=(p99 < 250) if part == "due_to_webhook" else None,
                    note=f"p50 {values[50]:.0f}, p95 {values[95]:.0f}, p99 {p99:.0f} ms; {values['count']} recoveries",
                )
            )
    for config, data in details.items():
        for service in SERVICE_NAMES:
            idle, peak = data["rss_idle_mib"].get(service), data["rss_peak_mib"].get(service)
            if idle is None or peak is None:
                continue  # not run in this configuration
            figures.append(
                Figure(
                    "memory",
                    f"{service} RSS idle / under load [{config}]",
                    peak or float("nan"),
                    "MiB",
                    note=f"idle {idle:.0f} MiB, peak under load {peak:.0f} MiB",
                )
            )


def summarise_profiles(paths: list[str], lines: int = 45) -> str:
    parts = []
    for path in paths:
        text = Path(path).read_text().splitlines()
        parts.append(f"===== {Path(path).name}\n" + "\n".join(text[:lines]))
    return "\n".join(parts)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recoveries", type=int, default=150, help="recoveries per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (the median is reported)")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight in a throughput round")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="length of the half-rate latency run")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=None,
        help="recoveries/s of the latency run (default: half the measured throughput; a fixed rate compares runs)",
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle window measuring background loops")
    parser.add_argument(
        "--configs",
        default="single,scaled,pipeline",
        help=f"comma-separated of {', '.join(CONFIGS)} (pipeline: one instance each, without the read side)",
    )
    parser.add_argument("--time-scale", type=float, default=100_000.0)
    parser.add_argument("--log-level", default="INFO", help="the services' log level (production: INFO)")
    parser.add_argument("--profile", action="store_true", help="one more round under pyinstrument (not measured)")
    parser.add_argument(
        "--without-read-side",
        action="store_true",
        help="every configuration without the read side, as a deployment with UNDEPLOYED_SERVICES=analytics",
    )
    args = parser.parse_args()
    figures: list[Figure] = []
    details: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name in filter(None, args.configs.split(",")):
        # A stack whose process died under the run (a shared, busy machine) is started afresh once; a
        # configuration that fails twice is reported as such and the others still are.
        for attempt in (1, 2):
            try:
                await run_config(name, args, figures, details)
                failed.pop(name, None)
                break
            except Exception as error:  # reported, and the run goes on
                failed[name] = f"{type(error).__name__}: {error}"
                details.pop(name, None)
                figures[:] = [f for f in figures if f"[{name}]" not in f.name]
                print(f"  [{name}] attempt {attempt} failed: {failed[name]}")
    add_figures(figures, details)
    path = save("end_to_end", figures, {"details": details, "args": vars(args), "failed": failed})
    print(table(figures))
    for config, data in details.items():
        print(f"[{config}] operations per recovery by service (idle background subtracted):")
        for service, values in data["ops_per_recovery"].items():
            commands = ", ".join(f"{k[6:]} {v:.2f}" for k, v in sorted(values.items()) if k.startswith("mongo:") and v)
            print(
                f"  {service:<20} mongo {values.get('mongo', 0):.2f} ({commands}); "
                f"published {values.get('published', 0):.2f}; consumed {values.get('consumed', 0):.2f}; "
                f"CPU {values.get('cpu_ms', 0):.2f} ms"
            )
            detail = ", ".join(
                f"{k[3:]} {v:.2f}" for k, v in sorted(values.items()) if k.startswith("by:") and v >= 0.01
            )
            print(f"  {'':<20} by collection: {detail}")
    if details.get("single", {}).get("profiles"):
        print(f"profiles in {PROFILES_DIR}")
    print(f"results in {path}")
    if failed:
        raise SystemExit(f"configurations that failed twice: {failed}")


if __name__ == "__main__":
    run(main)
