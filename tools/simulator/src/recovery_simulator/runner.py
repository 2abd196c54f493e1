"""A whole comparison: each algorithm on the same payments and the same issuer model, side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.model import Algorithm
from recovery_scheduler.domain.planner import decide_next
from recovery_simulator.issuer import IssuerModel
from recovery_simulator.learning import RetryLearning
from recovery_simulator.population import FailedPayment
from recovery_simulator.results import AlgorithmResult
from recovery_simulator.rules import RuleChecker
from recovery_simulator.simulation import Planner, simulate_payment

# Called after each payment of each algorithm with (done, total).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Comparison:
    results: tuple[AlgorithmResult, ...]
    model: str
    seed: int
    days: int
    source: str  # "generated" or the history file
    learned_hours: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "results": [r.summary() for r in self.results],
            "model": self.model,
            "seed": self.seed,
            "days": self.days,
            "population": self.source,
            "learned_hours": self.learned_hours,
            "amounts": "USD minor units (fixed conversion rates for other currencies)",
        }


def parse_algorithms(text: str) -> tuple[Algorithm, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("no algorithm given")
    return tuple(Algorithm(name) for name in names)


def compare(
    payments: Sequence[FailedPayment],
    algorithms: Sequence[Algorithm],
    model: IssuerModel,
    *,
    seed: int,
    days: int = 60,
    config: RetryConfig | None = None,
    progress: Progress | None = None,
    source: str = "generated",
    planner: Planner = decide_next,
    learned_hours: bool = False,
) -> Comparison:
    """`learned_hours`: smart reads the hours the merchant's statistics learned (the scheduler's
    SMART_LEARNED_HOURS); each algorithm's run learns from its own attempts only, in the payments' order."""
    total, done = len(payments) * len(algorithms), 0
    results = []
    for algorithm in algorithms:
        result, checker = AlgorithmResult(algorithm.value), RuleChecker()
        learning = RetryLearning()
        for payment in payments:
            run = simulate_payment(
                payment,
                algorithm,
                model,
                seed=seed,
                horizon=timedelta(days=days),
                config=config,
                planner=planner,
                learned_hours=learned_hours,
                learning=learning,
            )
            result.add(run, checker)
            done += 1
            if progress is not None and (done % 100 == 0 or done == total):
                progress(done, total)
        results.append(result)
    name = getattr(model, "name", type(model).__name__)
    return Comparison(tuple(results), name, seed, days, source, learned_hours)


def table(comparison: Comparison) -> str:
    """The results as a plain-text table."""
    header = (
        "algorithm",
        "recovered",
        "rate",
        "amount (USD)",
        "attempts/pay",
        "attempts/rec",
        "median days",
        "violations",
        "fees (USD)",
        "busiest minute",
    )
    rows = [header]
    for r in comparison.results:
        s = r.summary()
        rows.append(
            (
                r.algorithm,
                f"{r.recovered}/{r.payments}",
                f"{r.recovery_rate:.1%}",
                f"{r.recovered_amount / 100:,.2f}",
                f"{s['attempts_per_payment']:.2f}",
                "-" if s["attempts_per_recovered_payment"] is None else f"{s['attempts_per_recovered_payment']:.2f}",
                "-" if s["median_days_to_recover"] is None else f"{s['median_days_to_recover']:.2f}",
                str(r.network_rule_violations),
                f"{r.retry_fees / 100:.2f}",
                str(r.busiest_minute_attempts),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    errors = [
        f"{r.algorithm}: {r.planner_errors} runs ended by a planner error"
        for r in comparison.results
        if r.planner_errors
    ]
    footer = [
        f"model {comparison.model}, seed {comparison.seed}, {comparison.days} days, population {comparison.source}, "
        f"learned hours {'on' if comparison.learned_hours else 'off'}"
    ]
    return "\n".join([*lines, "", *footer, *errors])
