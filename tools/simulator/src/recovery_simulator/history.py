"""Backtesting on a merchant's history: the CSV of past failed payments and the retries that followed, fitting the
default model's table to it, and writing a simulated history in the same format.

Columns (one row per later attempt; an invoice with no later attempt has one row with the attempt columns empty):

    invoice, amount (minor units), currency, card_network, funding (credit|debit|prepaid), country (ISO 3166
    alpha-2), first_failure_at (ISO 8601 with offset), first_decline_code, first_advice_code,
    first_network_advice_code, attempt_at, attempt_outcome ("approved" or a decline code), attempt_advice_code,
    attempt_network_advice_code, card_updated_at (optional: when the account updater refreshed the card)
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from recovery_scheduler.domain.declines import DeclineCodes
from recovery_simulator.default_model import ClassParameters, TableModel
from recovery_simulator.paydays import is_payday
from recovery_simulator.population import COUNTRIES, FailedPayment
from recovery_simulator.simulation import PaymentRun, SimulatedAttempt

COLUMNS = (
    "invoice",
    "amount",
    "currency",
    "card_network",
    "funding",
    "country",
    "first_failure_at",
    "first_decline_code",
    "first_advice_code",
    "first_network_advice_code",
    "attempt_at",
    "attempt_outcome",
    "attempt_advice_code",
    "attempt_network_advice_code",
    "card_updated_at",
)
OFFSETS = {country: offset for country, _, offset, _ in COUNTRIES}
MIN_INVOICES_TO_FIT = 20  # a class with fewer keeps the default row


@dataclass(frozen=True)
class HistoricalPayment:
    payment: FailedPayment
    attempts: tuple[SimulatedAttempt, ...]

    @property
    def recovered_at(self) -> datetime | None:
        return next((a.at for a in self.attempts if a.approved), None)


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"time without an offset: {text!r}")
    return at


def read_history(path: Path) -> list[HistoricalPayment]:
    payments: dict[str, FailedPayment] = {}
    attempts: dict[str, list[SimulatedAttempt]] = defaultdict(list)
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = set(COLUMNS[:8]) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            invoice = row["invoice"]
            if invoice not in payments:
                country = row["country"].upper()
                updated = row.get("card_updated_at") or ""
                payments[invoice] = FailedPayment(
                    invoice=invoice,
                    card_network=row["card_network"],
                    funding=row["funding"] or "credit",
                    issuer_country=country,
                    utc_offset_hours=OFFSETS.get(country, 0),
                    amount=int(row["amount"]),
                    currency=row["currency"].upper(),
                    failed_at=_time(row["first_failure_at"]),
                    decline_code=row["first_decline_code"],
                    advice_code=row.get("first_advice_code") or None,
                    network_advice_code=row.get("first_network_advice_code") or None,
                    card_updated_at=_time(updated) if updated else None,
                )
            if row.get("attempt_at"):
                outcome = row.get("attempt_outcome") or ""
                if not outcome:
                    raise ValueError(f"{path}:{line}: an attempt without an outcome")
                approved = outcome == "approved"
                attempts[invoice].append(
                    SimulatedAttempt(
                        len(attempts[invoice]) + 1,
                        _time(row["attempt_at"]),
                        approved,
                        DeclineCodes(
                            decline_code=None if approved else outcome,
                            advice_code=row.get("attempt_advice_code") or None,
                            network_advice_code=row.get("attempt_network_advice_code") or None,
                        ),
                    )
                )
    return [HistoricalPayment(p, tuple(sorted(attempts[i], key=lambda a: a.at))) for i, p in payments.items()]


def write_history(path: Path, runs: Iterable[PaymentRun | HistoricalPayment]) -> int:
    """Write runs (simulated or read) as a history CSV; returns the number of invoices."""
    count = 0
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for run in runs:
            count += 1
            p = run.payment
            updated = run.card_updated_at if isinstance(run, PaymentRun) else p.card_updated_at
            head = [
                p.invoice,
                p.amount,
                p.currency,
                p.card_network,
                p.funding,
                p.issuer_country,
                p.failed_at.isoformat(),
                p.decline_code,
                p.advice_code or "",
                p.network_advice_code or "",
            ]
            tail = [updated.isoformat() if updated else ""]
            if not run.attempts:
                writer.writerow([*head, "", "", "", "", *tail])
            for a in run.attempts:
                codes = a.codes
                outcome = "approved" if a.approved else codes.decline_code or "declined"
                writer.writerow(
                    [*head, a.at.isoformat(), outcome, codes.advice_code or "", codes.network_advice_code or "", *tail]
                )
    return count


@dataclass(frozen=True)
class ClassFit:
    name: str
    invoices: int
    recovered: int
    fitted: bool
    row: ClassParameters


def fit_model(
    history: Iterable[HistoricalPayment], base: TableModel | None = None, name: str = "fitted"
) -> tuple[TableModel, list[ClassFit]]:
    """The default model's table fitted to a history, per decline class:

    - recoverable: the share of invoices recovered, less the share the row's `luck` explains at the history's
      mean number of attempts (a lower bound: the history's own retries may have stopped before a cause went away);
    - mean_days: the mean time to recovery of the recovered ones (biased low by the same censoring);
    - payday_share: how much more approvals concentrate on the customer's paydays than attempts do
      ((share of approvals on paydays - share of attempts on paydays) / (1 - share of attempts on paydays)).

    Classes with fewer than MIN_INVOICES_TO_FIT invoices keep the base row. The other parameters (luck, burst and
    night penalties) keep the base values: a history rarely holds enough attempts to fit them.
    """
    base = base or TableModel()
    by_row: dict[str, list[HistoricalPayment]] = defaultdict(list)
    for item in history:
        by_row[base.row_for(item.payment.decline_code).name].append(item)
    rows, fits = [], []
    for row in base.table:
        items = by_row.get(row.name, [])
        # Each recovered payment with the moment it was recovered.
        recovered = [(h, h.recovered_at) for h in items if h.recovered_at is not None]
        if len(items) < MIN_INVOICES_TO_FIT or row.name in ("expired", "customer"):
            rows.append(row)
            fits.append(ClassFit(row.name, len(items), len(recovered), False, row))
            continue
        days = [(recovered_at - h.payment.failed_at).total_seconds() / 86400 for h, recovered_at in recovered]
        mean_days = sum(days) / len(days) if days else row.mean_days
        on_payday = attempts = approvals = approvals_on_payday = 0
        for h in items:
            for a in h.attempts:
                local = a.at + timedelta(hours=h.payment.utc_offset_hours)
                payday = is_payday(local.day, local.year, local.month)
                attempts += 1
                on_payday += payday
                if a.approved:
                    approvals += 1
                    approvals_on_payday += payday
        payday_share = row.payday_share
        if approvals and attempts and on_payday < attempts:
            attempt_share = on_payday / attempts
            payday_share = max(0.0, min(1.0, (approvals_on_payday / approvals - attempt_share) / (1 - attempt_share)))
        # Some recoveries are the issuer's `luck` on an unresolved payment, not a resolution: take them out.
        mean_attempts = sum(len(h.attempts) for h in items) / len(items)
        lucky = 1.0 - (1.0 - row.luck) ** mean_attempts
        recoverable = max(0.0, (len(recovered) / len(items) - lucky) / (1.0 - lucky))
        fitted = replace(
            row,
            recoverable=round(recoverable, 4),
            mean_days=round(max(0.01, mean_days), 3),
            payday_share=round(payday_share, 3),
            source=f"fitted to {len(items)} invoices ({len(recovered)} recovered)",
        )
        rows.append(fitted)
        fits.append(ClassFit(row.name, len(items), len(recovered), True, fitted))
    return TableModel(tuple(rows), name=name), fits


def observed(history: list[HistoricalPayment]) -> dict[str, object]:
    """What the history itself shows (its own algorithm): the figure a backtest of that algorithm should come near."""
    recovered = sum(1 for h in history if h.recovered_at is not None)
    attempts = sum(len(h.attempts) for h in history)
    return {
        "invoices": len(history),
        "recovered": recovered,
        "recovery_rate": round(recovered / len(history), 4) if history else 0.0,
        "attempts_per_payment": round(attempts / len(history), 3) if history else 0.0,
    }
