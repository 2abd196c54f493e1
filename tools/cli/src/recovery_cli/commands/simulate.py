"""`recovery simulate`: the real retry planner against simulated failed payments (or a merchant's history), each
algorithm side by side, with an independent network-rule check (docs/simulator.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recovery_cli.commands.options import Subcommands, fail


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "simulate",
        help="simulate (or backtest) the retry algorithms against an issuer model and compare recovery",
        description=(
            "Run the scheduler's planner for each failed payment under a simulated clock, answered by an issuer "
            "model, for each algorithm on the same payments. Amounts are USD minor units."
        ),
    )
    parser.add_argument("--algorithms", default="monitoring,cascading,smart", help="comma-separated (default: all)")
    parser.add_argument("--payments", type=int, default=5000, help="generated failed payments (default 5000)")
    parser.add_argument("--seed", type=int, default=11, help="the population's and the dice's seed (default 11)")
    parser.add_argument(
        "--issuer-model", default=None, metavar="MODULE:CLASS", help="an IssuerModel class (default: the table model)"
    )
    parser.add_argument(
        "--history", type=Path, default=None, help="a CSV of past failed payments: fit the model to it and backtest"
    )
    parser.add_argument("--days", type=int, default=60, help="how long each payment is followed (default 60)")
    parser.add_argument(
        "--learned-hours",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="smart reads the hours its own simulated retries learned, as the scheduler's SMART_LEARNED_HOURS "
        "(default: off, as there)",
    )
    parser.add_argument(
        "--unknown-country-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share (0-1) of generated payments whose billing country the billing system does not send (default 0)",
    )
    parser.add_argument(
        "--morning-spread-minutes",
        type=int,
        default=None,
        metavar="MINUTES",
        help="smart spreads retries it aims at a morning (a payday's hour, the daytime's start) over this long, each "
        "card at its own minute (default: the planner's, 60; 0: all at the hour)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--report", type=Path, default=None, help="write an HTML report with plots here")
    parser.set_defaults(handler=handle)


def _progress(done: int, total: int) -> None:
    width = 40
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def handle(args: argparse.Namespace) -> int:
    try:
        import recovery_simulator  # noqa: F401  (a development tool: in the workspace, not in the production image)
    except ImportError:
        return fail("recovery simulate needs the recovery-simulator package (tools/simulator; `uv sync` installs it)")
    from recovery_simulator.default_model import TableModel
    from recovery_simulator.history import fit_model, observed, read_history
    from recovery_simulator.issuer import IssuerModel, load_issuer_model
    from recovery_simulator.population import generate_population
    from recovery_simulator.report import render
    from recovery_simulator.runner import compare, parse_algorithms, table

    try:
        algorithms = parse_algorithms(args.algorithms)
    except ValueError as error:
        return fail(f"--algorithms: {error} (monitoring, cascading, smart)")
    if args.payments < 1 or args.days < 1:
        return fail("--payments and --days must be positive")
    if not 0.0 <= args.unknown_country_share <= 1.0:
        return fail("--unknown-country-share must be between 0 and 1")
    if args.history is not None and args.unknown_country_share > 0:
        return fail("--unknown-country-share applies to a generated population, not to --history")
    config = None
    if args.morning_spread_minutes is not None:
        from datetime import timedelta

        from recovery_scheduler.domain.config import RetryConfig

        try:
            config = RetryConfig(smart_morning_spread=timedelta(minutes=args.morning_spread_minutes))
        except ValueError as error:
            return fail(f"--morning-spread-minutes: {error}")
    model: IssuerModel
    try:
        model = load_issuer_model(args.issuer_model) if args.issuer_model else TableModel()
    except (ValueError, ImportError) as error:
        return fail(f"--issuer-model: {error}")
    fits, seen = None, None
    if args.history is not None:
        try:
            history = read_history(args.history)
        except (OSError, ValueError, KeyError) as error:
            return fail(f"--history: {error}")
        payments = [h.payment for h in history]
        seen = observed(history)
        source = f"history {args.history.name} ({len(payments)} invoices)"
        if args.issuer_model is None:
            model, fits = fit_model(history, name=f"fitted:{args.history.name}")
    else:
        payments = generate_population(args.payments, args.seed, unknown_country_share=args.unknown_country_share)
        source = "generated"
        if args.unknown_country_share > 0:
            source += f" ({args.unknown_country_share:.0%} without a billing country)"
    comparison = compare(
        payments,
        algorithms,
        model,
        seed=args.seed,
        days=args.days,
        config=config,
        progress=None if args.json else _progress,
        source=source,
        learned_hours=args.learned_hours,
    )
    text = table(comparison)
    if seen is not None:
        text += (
            f"\nthe history itself: {seen['recovered']}/{seen['invoices']} recovered ({seen['recovery_rate']:.1%}), "
            f"{seen['attempts_per_payment']} attempts per payment"
        )
    if args.report is not None:
        args.report.write_text(render(comparison, text))
    if args.json:
        document = comparison.to_json()
        if seen is not None:
            document["history"] = seen
        if fits is not None:
            document["fit"] = [
                {
                    "class": f.name,
                    "invoices": f.invoices,
                    "recovered": f.recovered,
                    "fitted": f.fitted,
                    "recoverable": f.row.recoverable,
                    "mean_days": f.row.mean_days,
                    "payday_share": f.row.payday_share,
                }
                for f in fits
            ]
        print(json.dumps(document, indent=2))
    else:
        print(text)
        if args.report is not None:
            print(f"report: {args.report}")
    return 0
