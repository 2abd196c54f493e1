"""Per-algorithm results: what the runs recovered, at what cost in attempts, and the rule checker's count."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from recovery_simulator.codes import report_group
from recovery_simulator.rules import RuleChecker
from recovery_simulator.simulation import PaymentRun

# Local night: 00:00 until this hour at the customer (the default model's `night_penalty` hours).
NIGHT_ENDS_HOUR = 6


@dataclass
class AlgorithmResult:
    algorithm: str
    payments: int = 0
    recovered: int = 0
    recovered_amount: int = 0  # USD minor units (fixed rates, population.USD_PER_MINOR)
    attempts: int = 0
    attempts_of_recovered: int = 0
    network_rule_violations: int = 0
    retry_fees: int = 0  # USD minor units
    planner_errors: int = 0  # runs the planner raised on (a bug: the run ends there)
    attempts_at_local_night: int = 0  # made between 00:00 and 06:00 at the customer (the default model's night)
    learned_hour_moves: int = 0  # attempts learned hours moved to another hour
    # Attempts per UTC minute: what reaches the connector at once (a payday morning's burst).
    attempts_by_minute: Counter[datetime] = field(default_factory=Counter)
    days_to_recover: list[float] = field(default_factory=list)
    violations_by_rule: Counter[str] = field(default_factory=Counter)
    payments_by_group: Counter[str] = field(default_factory=Counter)
    recovered_by_group: Counter[str] = field(default_factory=Counter)
    recovered_by_attempt: Counter[int] = field(default_factory=Counter)
    attempts_histogram: Counter[int] = field(default_factory=Counter)
    ended: Counter[str] = field(default_factory=Counter)

    def add(self, run: PaymentRun, checker: RuleChecker) -> None:
        group = report_group(run.payment.decline_code)
        self.payments += 1
        self.payments_by_group[group] += 1
        self.attempts += len(run.attempts)
        self.attempts_histogram[len(run.attempts)] += 1
        offset = timedelta(hours=run.payment.utc_offset_hours)
        self.attempts_at_local_night += sum(1 for a in run.attempts if (a.at + offset).hour < NIGHT_ENDS_HOUR)
        self.learned_hour_moves += run.learned_hour_moves
        self.attempts_by_minute.update(a.at.replace(second=0, microsecond=0) for a in run.attempts)
        self.ended[run.ended] += 1
        if run.ended.startswith("planner_error"):
            self.planner_errors += 1
        violations = checker.check(run)
        self.network_rule_violations += len(violations)
        self.retry_fees += sum(v.fee for v in violations)
        for violation in violations:
            self.violations_by_rule[violation.rule] += 1
        if run.recovered_at is not None:
            self.recovered += 1
            self.recovered_amount += run.payment.usd_minor
            self.attempts_of_recovered += len(run.attempts)
            self.days_to_recover.append((run.recovered_at - run.payment.failed_at).total_seconds() / 86400)
            self.recovered_by_group[group] += 1
            self.recovered_by_attempt[len(run.attempts)] += 1

    @property
    def busiest_minute_attempts(self) -> int:
        """The most attempts any one UTC minute saw."""
        return max(self.attempts_by_minute.values(), default=0)

    @property
    def recovery_rate(self) -> float:
        return self.recovered / self.payments if self.payments else 0.0

    def cumulative_by_day(self, days: int) -> list[float]:
        """Share of payments recovered by the end of each day 0..days."""
        counts = Counter(int(d) for d in self.days_to_recover)
        total, out = 0, []
        for day in range(days + 1):
            total += counts.get(day, 0)
            out.append(total / self.payments if self.payments else 0.0)
        return out

    def summary(self) -> dict[str, object]:
        return {
            "algorithm": self.algorithm,
            "recovery_rate": round(self.recovery_rate, 4),
            "recovered_amount": self.recovered_amount,
            "payments": self.payments,
            "recovered": self.recovered,
            "attempts_per_payment": round(self.attempts / self.payments, 3) if self.payments else 0.0,
            "attempts_per_recovered_payment": (
                round(self.attempts_of_recovered / self.recovered, 3) if self.recovered else None
            ),
            "median_days_to_recover": (
                round(statistics.median(self.days_to_recover), 2) if self.days_to_recover else None
            ),
            "network_rule_violations": self.network_rule_violations,
            "retry_fees": self.retry_fees,
            "attempts": self.attempts,
            "planner_errors": self.planner_errors,
            "attempts_at_local_night": self.attempts_at_local_night,
            "learned_hour_moves": self.learned_hour_moves,
            "busiest_minute_attempts": self.busiest_minute_attempts,
            "violations_by_rule": dict(sorted(self.violations_by_rule.items())),
            "recovery_by_decline_group": {
                group: round(self.recovered_by_group[group] / n, 4)
                for group, n in sorted(self.payments_by_group.items())
            },
            "recovered_by_attempt_number": {str(k): v for k, v in sorted(self.recovered_by_attempt.items())},
            "ended": dict(sorted(self.ended.items())),
        }


def collect(algorithm: str, runs: Iterable[PaymentRun]) -> AlgorithmResult:
    result, checker = AlgorithmResult(algorithm), RuleChecker()
    for run in runs:
        result.add(run, checker)
    return result


__all__ = ["AlgorithmResult", "asdict", "collect"]
