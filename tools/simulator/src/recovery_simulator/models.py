"""Alternative issuer models with different assumptions, for checking a conclusion against more than one world
(`--issuer-model recovery_simulator.models:PaydayHeavy`)."""

from __future__ import annotations

from recovery_simulator.default_model import TableModel, with_rows


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
