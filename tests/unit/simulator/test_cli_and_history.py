"""`recovery simulate --json` in-process, and the backtest's CSV round trip: write a history, read it, fit, simulate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recovery_cli.main import main
from recovery_scheduler.domain.model import Algorithm
from recovery_simulator import generate_population, simulate
from recovery_simulator.default_model import HARD, TableModel
from recovery_simulator.history import fit_model, read_history, write_history
from recovery_simulator.models import PaydayHeavy

pytestmark = pytest.mark.unit

FIELDS = {
    "algorithm",
    "recovery_rate",
    "recovered_amount",
    "payments",
    "recovered",
    "attempts_per_payment",
    "attempts_per_recovered_payment",
    "median_days_to_recover",
    "network_rule_violations",
    "retry_fees",
}


def test_simulate_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    code = main(
        [
            "simulate",
            "--algorithms",
            "monitoring,cascading,smart",
            "--payments",
            "60",
            "--seed",
            "11",
            "--json",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["seed"] == 11 and document["model"] == "default"
    assert [r["algorithm"] for r in document["results"]] == ["monitoring", "cascading", "smart"]
    for result in document["results"]:
        assert FIELDS <= set(result)
        assert result["payments"] == 60
    assert document["results"][0]["recovered"] == 0  # monitoring charges nothing
    page = report.read_text()
    assert (
        page.count("<svg") == 4
        and "<script" not in page
        and "http" not in page.split("<svg", 1)[1].replace("http://www.w3.org/2000/svg", "")
    )


def test_simulate_refuses_an_unknown_algorithm(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--algorithms", "greedy", "--payments", "5"]) == 1
    assert "--algorithms" in capsys.readouterr().err


def test_a_history_round_trips_and_the_fit_follows_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    population = generate_population(160, 21)
    runs = list(simulate(population, Algorithm.SMART, PaydayHeavy(), seed=21))
    path = tmp_path / "history.csv"
    assert write_history(path, runs) == 160
    history = read_history(path)
    assert [h.payment for h in history] == [r.payment for r in runs]
    assert [h.attempts for h in history] == [r.attempts for r in runs]
    assert [h.recovered_at for h in history] == [r.recovered_at for r in runs]
    model, fits = fit_model(history)
    funds = next(f for f in fits if f.name == "insufficient_funds")
    assert model.row_for("insufficient_funds") == funds.row
    assert funds.fitted and funds.invoices > 40
    recovered_share = sum(r.recovered for r in runs if r.payment.decline_code == "insufficient_funds") / funds.invoices
    assert 0 < funds.row.recoverable <= recovered_share  # less what the issuer's luck explains
    # PaydayHeavy approves on paydays (its share is 0.95): smart's history (a daily first week, then paydays and
    # every four days between) shows a clear payday lift.
    assert funds.row.payday_share > 0.4
    assert main(["simulate", "--history", str(path), "--algorithms", "cascading,smart", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model"] == "fitted:history.csv"
    assert [r["payments"] for r in document["results"]] == [160, 160]
    assert any(f["fitted"] for f in document["fit"])
    assert document["history"]["recovered"] == sum(r.recovered for r in runs)


def test_a_soft_code_the_table_does_not_list_recovers_as_a_generic_soft_decline_not_as_a_hard_one() -> None:
    # Real histories hold codes no row names; the planner retries them as soft declines (their class is `later`),
    # so the model must not make them unrecoverable, nor leave their invoices out of the fit.
    model = TableModel()
    generic = model.row_for("generic_decline")
    assert model.row_for("approve_with_id") == model.row_for("no_action_taken") == generic
    assert model.row_for("lost_card") is HARD and model.row_for("pickup_card") is HARD
    assert model.row_for("insufficient_funds").name == "insufficient_funds"
    # A table without a row for the class leaves the code hard.
    assert TableModel(tuple(r for r in model.table if r is not generic)).row_for("approve_with_id") is HARD
