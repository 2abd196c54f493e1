"""Smart against cascading on every shipped issuer model: at least as much recovered, fewer attempts, no network
rule broken, no hard decline charged (a small population and a fixed seed: the full figures are in
docs/simulator.md)."""

from __future__ import annotations

import pytest

from recovery_scheduler.domain.model import Algorithm
from recovery_simulator import generate_population
from recovery_simulator.codes import NEVER, decline_class
from recovery_simulator.default_model import TableModel
from recovery_simulator.issuer import IssuerModel
from recovery_simulator.models import BusinessDays, Churning, PaydayHeavy, QuickTechnical
from recovery_simulator.results import collect
from recovery_simulator.simulation import simulate

pytestmark = pytest.mark.unit

PAYMENTS, SEED = 300, 11


@pytest.mark.parametrize(
    "model", [TableModel(), PaydayHeavy(), QuickTechnical(), BusinessDays(), Churning()], ids=lambda m: m.name
)
def test_smart_recovers_at_least_as_much_as_cascading_with_fewer_attempts(model: IssuerModel) -> None:
    population = generate_population(PAYMENTS, SEED)
    cascading = collect("cascading", simulate(population, Algorithm.CASCADING, model, seed=SEED))
    runs = list(simulate(population, Algorithm.SMART, model, seed=SEED))
    smart = collect("smart", runs)
    assert smart.recovered >= cascading.recovered, (smart.recovered, cascading.recovered)
    assert smart.recovered_amount >= cascading.recovered_amount
    assert smart.attempts < cascading.attempts, (smart.attempts, cascading.attempts)
    assert smart.network_rule_violations == 0, smart.violations_by_rule
    assert smart.planner_errors == 0
    # A payment hard-declined (lost, stolen, fraud, do not try again) is never charged again, nor is any payment
    # after a hard decline of a retry.
    for run in runs:
        first = run.payment
        if decline_class(first.decline_code, first.advice_code, first.network_advice_code) == NEVER:
            assert run.attempts == (), run
        hard = [
            a
            for a in run.attempts
            if decline_class(a.codes.decline_code, a.codes.advice_code, a.codes.network_advice_code) == NEVER
        ]
        assert not hard or run.attempts[-1] == hard[0], run
