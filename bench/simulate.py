"""How long `recovery simulate` takes, with a raw baseline from the same run.

    uv run python bench/simulate.py [--sizes 5000,100000] [--algorithms monitoring,cascading,smart] [--seed 11]

- baseline: the scheduler planner's `decide_next` alone, called on a fixed recovery (a Visa card, do_not_honor,
  three declined attempts) as many times as the simulated runs called it; what the simulator adds on top of that
  is its own cost (population, issuer model, rule checker, results);
- each size: the population generated, then every algorithm simulated on it (`runner.compare`), wall time and
  planner calls counted.
Results go to bench/results/simulate.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    Decision,
    RecoveryView,
    TokenState,
)
from recovery_scheduler.domain.planner import decide_next
from recovery_simulator.default_model import TableModel
from recovery_simulator.population import generate_population
from recovery_simulator.runner import compare, parse_algorithms

RESULTS = Path(__file__).parent / "results" / "simulate.json"


def baseline(calls: int) -> float:
    """Seconds for `calls` decide_next calls on one fixed recovery."""
    t0 = datetime(2026, 5, 4, 10, tzinfo=UTC)
    attempts = tuple(
        AttemptRecord(
            n, "pm", t0 + timedelta(hours=3 * n), AttemptOutcome.DECLINED, DeclineCodes(decline_code="do_not_honor")
        )
        for n in (1, 2, 3)
    )
    view = RecoveryView(
        Algorithm.CASCADING,
        (TokenState("pm", "Visa"),),
        t0,
        attempts,
        billing_retry_count=1,
        first_codes=DeclineCodes(decline_code="do_not_honor"),
    )
    config, rng, now = RetryConfig(), random.Random(1), t0 + timedelta(hours=10)
    started = time.perf_counter()
    for _ in range(calls):
        decide_next(view, now, config, rng)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5000,100000")
    parser.add_argument("--algorithms", default="monitoring,cascading,smart")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    algorithms = parse_algorithms(args.algorithms)
    figures = []
    for size in (int(s) for s in args.sizes.split(",")):
        calls = 0

        def counted(view: RecoveryView, now: datetime, config: RetryConfig, rng: random.Random) -> Decision:
            nonlocal calls
            calls += 1
            return decide_next(view, now, config, rng)

        started = time.perf_counter()
        payments = generate_population(size, args.seed)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        comparison = compare(payments, algorithms, TableModel(), seed=args.seed, planner=counted)
        wall = time.perf_counter() - started
        raw = baseline(calls)
        figure = {
            "payments": size,
            "algorithms": [a.value for a in algorithms],
            "population_s": round(generated, 2),
            "simulate_s": round(wall, 2),
            "planner_calls": calls,
            "baseline_decide_next_s": round(raw, 2),
            "per_payment_ms": round(1000 * wall / (size * len(algorithms)), 3),
            "recovery_rates": {r.algorithm: round(r.recovery_rate, 4) for r in comparison.results},
        }
        figures.append(figure)
        print(json.dumps(figure), flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"at": datetime.now(UTC).isoformat(), "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
