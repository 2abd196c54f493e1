"""Every benchmark in order, raw limits first, then one table of figures, raw limits and ratios.

    uv run python bench/run_all.py [--quick] [--full-timers] [--no-profile]     (or: make bench)

Each benchmark runs as its own process (one command each, documented in docs/performance.md) and leaves
bench/results/<name>.json; this prints them together. The webhook dispatcher's throughput is the webhook
engineer's bench/webhook_dispatch.py, run as it is and quoted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from harness import BENCH_DIR, Figure, load, machine, save, table


def step(title: str, argv: list[str], budget: float) -> tuple[bool, str]:
    print(f"==> {title}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, *argv], cwd=BENCH_DIR.parent, timeout=budget, capture_output=True, text=True
        )
    except subprocess.TimeoutExpired as expired:
        print(f"    gave up after {budget:.0f}s", flush=True)
        return False, str(expired.stdout or "")
    print(f"    {time.monotonic() - started:.0f}s, exit {done.returncode}", flush=True)
    if done.returncode != 0:
        print(done.stdout[-3000:] + done.stderr[-3000:], flush=True)
    return done.returncode == 0, done.stdout


def dispatcher_figures(output: str) -> list[Figure]:
    """The webhook benchmark's printed rates, as table lines (its script is not ours to change)."""
    raw = re.search(r"raw aiohttp POST rate:\s+([0-9.]+)", output)
    rate = re.search(r"dispatcher signed\+recorded rate:\s+([0-9.]+)", output)
    if not (raw and rate):
        return []
    value, limit = float(rate.group(1)), float(raw.group(1))
    return [
        Figure("dispatcher", "signed + recorded deliveries per process", value, "deliveries/s", limit=limit,
               limit_name="raw aiohttp POST, same run", target=">= 1,000/s and >= 25% of raw",
               met=value >= 1000 and value >= 0.25 * limit)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples (a smoke test, not figures)")
    parser.add_argument("--full-timers", action="store_true", help="timer scale up to 1,000,000 pending")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled end-to-end round")
    args = parser.parse_args()
    started = time.monotonic()
    print(f"machine: {machine()}")
    quick = ["--quick", "--repeats", "1"] if args.quick else []
    step("raw limits", ["bench/raw_limits.py", *quick], 300)
    e2e = ["bench/end_to_end.py"]
    if args.quick:
        e2e += ["--rounds", "1", "--recoveries", "40", "--latency-seconds", "5", "--configs", "single"]
    if not args.no_profile:
        e2e.append("--profile")
    # Typically 5-6 min for both configurations; the budget leaves room for one stack started afresh.
    step("end to end (throughput, operations per recovery, latency, memory)", e2e, 720)
    timers = ["bench/timer_scale.py"] + (["--full"] if args.full_timers else [])
    if args.quick:
        timers += ["--sizes", "10000", "--window", "5"]
    step("timer scale", timers, 1800 if args.full_timers else 240)
    step("shared rate limit (intake)", ["bench/shared_rate_limit.py", *(["--repeats", "1"] if args.quick else [])], 240)
    dispatcher: list[Figure] = []
    if (BENCH_DIR / "webhook_dispatch.py").exists():
        ok, output = step("webhook dispatcher (bench/webhook_dispatch.py)", ["bench/webhook_dispatch.py"], 180)
        dispatcher = dispatcher_figures(output) if ok else []
    else:
        print("==> webhook dispatcher: bench/webhook_dispatch.py not present; skipped")
    figures = load("raw_limits") + load("end_to_end") + load("timer_scale") + load("shared_rate_limit") + dispatcher
    save("summary", figures)
    print()
    print(table(figures))
    loadavg = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(f"\ntotal {time.monotonic() - started:.0f}s; load average now {loadavg}; details in bench/results/")


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR))
    main()
