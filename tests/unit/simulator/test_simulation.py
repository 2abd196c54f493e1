"""The simulator: deterministic for a seed, the independent rule checker catches a broken planner, plug-in models."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.model import Algorithm, Decision, EndRecovery, RecoveryView, ScheduleAttempt
from recovery_scheduler.domain.planner import decide_next
from recovery_simulator import RuleChecker, generate_population, load_issuer_model, simulate
from recovery_simulator.default_model import TableModel
from recovery_simulator.results import AlgorithmResult, collect

pytestmark = pytest.mark.unit


def _summaries(seed: int, count: int = 60) -> list[dict[str, object]]:
    population = generate_population(count, seed)
    model = TableModel()
    return [
        collect(a.value, simulate(population, a, model, seed=seed)).summary()
        for a in (Algorithm.CASCADING, Algorithm.SMART)
    ]


def test_a_seed_gives_the_same_population_and_the_same_results() -> None:
    assert generate_population(50, 3) == generate_population(50, 3)
    assert generate_population(50, 3) != generate_population(50, 4)
    first = _summaries(5)
    assert first == _summaries(5)
    assert first[0]["recovered"] > 0


def test_the_real_planner_keeps_the_network_rules() -> None:
    population = generate_population(80, 8)
    for algorithm in (Algorithm.CASCADING, Algorithm.SMART):
        result = collect(algorithm.value, simulate(population, algorithm, TableModel(), seed=8))
        assert result.network_rule_violations == 0, result.violations_by_rule


def _reckless(view: RecoveryView, now: datetime, config: RetryConfig, rng: random.Random) -> Decision:
    """A broken planner: where the real one ends the recovery (hard decline, budget, ladder), it charges again in
    ten minutes, 40 attempts in all."""
    decision = decide_next(view, now, config, rng)
    if isinstance(decision, EndRecovery) and len(view.attempts) < 40:
        return ScheduleAttempt(now + timedelta(minutes=10), view.tokens[0].token, len(view.attempts) + 1, "reckless")
    if isinstance(decision, ScheduleAttempt):
        return replace(decision, at=now + timedelta(minutes=10))
    return decision


def test_the_rule_checker_catches_a_planner_that_retries_hard_declines_and_ignores_budgets() -> None:
    population = [
        p for p in generate_population(150, 2) if p.decline_code in ("lost_card", "stolen_card", "do_not_honor")
    ]
    runs = list(simulate(population, Algorithm.CASCADING, TableModel(), seed=2, planner=_reckless))
    checker = RuleChecker()
    for run in runs:
        checker.check(run)
    rules = set(checker.totals)
    assert "retried a hard decline (never class)" in rules
    assert "Mastercard: an attempt after 10 declines in 24 h" in rules
    assert "Visa: over 20 reattempts in 30 days (card, amount)" in rules
    assert checker.fees > 0
    honest = collect("cascading", simulate(population, Algorithm.CASCADING, TableModel(), seed=2))
    assert honest.network_rule_violations == 0


PLUGIN_DIR = Path(__file__).parent


@pytest.fixture
def plugin_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))


@pytest.mark.usefixtures("plugin_path")
def test_a_plug_in_model_loads_from_a_module_path() -> None:
    model = load_issuer_model("plugin_model:PaydayOnly")
    assert model.name == "payday-only"
    population = [p for p in generate_population(120, 4) if p.decline_code == "insufficient_funds"]
    runs = list(simulate(population, Algorithm.SMART, model, seed=4))
    recovered = [r for r in runs if r.recovered_at is not None]
    assert recovered
    for run in recovered:
        local = run.recovered_at + timedelta(hours=run.payment.utc_offset_hours)  # type: ignore[operator]
        assert local.day in (1, 15)


@pytest.mark.usefixtures("plugin_path")
@pytest.mark.parametrize("spec", ["plugin_model:NotAModel", "plugin_model", "no.such.module:X"])
def test_a_spec_that_is_not_a_model_is_refused(spec: str) -> None:
    with pytest.raises((ValueError, ImportError)):
        load_issuer_model(spec)


def test_the_morning_spread_takes_the_busiest_minute_down_without_costing_recovery() -> None:
    payments = generate_population(1000, 5)
    model = TableModel()

    def smart(spread_minutes: int) -> AlgorithmResult:
        config = RetryConfig(smart_morning_spread=timedelta(minutes=spread_minutes))
        return collect("smart", simulate(payments, Algorithm.SMART, model, seed=5, config=config))

    at_the_hour, spread = smart(0), smart(60)
    # Each card at its own minute of the hour: the peak falls to well under half, the payments recovered stay.
    assert spread.busiest_minute_attempts * 2 < at_the_hour.busiest_minute_attempts
    assert abs(spread.recovered - at_the_hour.recovered) <= 15
    assert spread.summary()["busiest_minute_attempts"] == spread.busiest_minute_attempts
    assert sum(spread.attempts_by_minute.values()) == spread.attempts
