"""Alternative issuer models with different assumptions, for checking a conclusion against more than one world
(`--issuer-model recovery_simulator.models:PaydayHeavy`)."""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import replace
from datetime import datetime, timedelta

from recovery_simulator.default_model import TableModel, with_rows
from recovery_simulator.issuer import AttemptContext, IssuerOutcome


class PaydayHeavy(TableModel):
    """Customers live paycheck to paycheck: nearly every insufficient-funds and generic soft decline resolves on a
    payday (payday_share 0.95 / 0.6), later than in the default model, and soft declines recover less (ceilings
    0.45 / 0.30); issuers punish bursts harder."""

    name = "payday-heavy"

    def __init__(self) -> None:
        base = TableModel()
        super().__init__(
            with_rows(
                base,
                insufficient_funds={"recoverable": 0.45, "mean_days": 10.0, "payday_share": 0.95, "burst_penalty": 0.2},
                generic_soft={"recoverable": 0.30, "mean_days": 5.0, "payday_share": 0.6, "burst_penalty": 0.25},
            ),
            name=self.name,
        )


class QuickTechnical(TableModel):
    """Soft declines resolve within a day or two and rarely on paydays (prepaid top-ups, instant transfers): a world
    where a fast ladder should do well."""

    name = "quick"

    def __init__(self) -> None:
        base = TableModel()
        super().__init__(
            with_rows(
                base,
                insufficient_funds={"mean_days": 1.0, "payday_share": 0.1, "burst_penalty": 0.02},
                generic_soft={"mean_days": 0.7, "payday_share": 0.0, "burst_penalty": 0.02},
            ),
            name=self.name,
        )


class Churning(TableModel):
    """Customers do not wait: each one moves on (cancels, empties or abandons the card) at an exponential time of mean
    `mean_churn_days` after the first failure, and from then on every attempt is declined (do not honor). Issuers
    also punish rapid retries harder (burst penalties doubled). A world where recovering late is worth nothing and
    a slow strategy pays for its patience; otherwise the default table."""

    name = "churning"
    mean_churn_days = 10.0

    def __init__(self) -> None:
        base = TableModel()
        super().__init__(
            tuple(replace(row, burst_penalty=min(1.0, 2 * row.burst_penalty)) for row in base.table),
            name=self.name,
        )

    def churn_time(self, attempt: AttemptContext) -> datetime:
        draw = random.Random(zlib.crc32(f"{attempt.invoice}:churn".encode()))
        return attempt.declines[0].at + timedelta(days=-self.mean_churn_days * math.log(1.0 - draw.random()))

    def outcome(self, attempt: AttemptContext, rng: random.Random) -> IssuerOutcome:
        answer = super().outcome(attempt, rng)
        if attempt.at >= self.churn_time(attempt) and answer.approved:
            return IssuerOutcome.decline("do_not_honor")
        return answer


class BusinessDays(TableModel):
    """Day-of-week effects: money moves on business days only (a resolution that falls on a Saturday or Sunday at the
    customer waits for Monday 06:00 local), and issuers decline a third more of resolved payments at the weekend
    (weekend fraud rules, batch systems offline); otherwise the default table."""

    name = "business-days"
    weekend_penalty = 0.3

    def resolution_time(self, attempt: AttemptContext) -> datetime | None:
        at = super().resolution_time(attempt)
        if at is None:
            return None
        offset = attempt.local_time - attempt.at
        local = at + offset
        if local.weekday() >= 5:
            monday = (local + timedelta(days=7 - local.weekday())).replace(hour=6, minute=0, second=0, microsecond=0)
            return monday - offset
        return at

    def outcome(self, attempt: AttemptContext, rng: random.Random) -> IssuerOutcome:
        answer = super().outcome(attempt, rng)
        weekend = attempt.local_time.weekday() >= 5
        if answer.approved and weekend and rng.random() < self.weekend_penalty:
            return IssuerOutcome.decline("do_not_honor")
        return answer
