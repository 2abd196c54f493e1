"""A plug-in issuer model for the tests: approves every attempt made on the customer's payday (1st or 15th)."""

from __future__ import annotations

import random

from recovery_simulator import AttemptContext, IssuerOutcome


class PaydayOnly:
    name = "payday-only"

    def outcome(self, attempt: AttemptContext, rng: random.Random) -> IssuerOutcome:
        if attempt.declines[0].decline_code in ("lost_card", "stolen_card"):
            return IssuerOutcome.decline(attempt.declines[0].decline_code, "do_not_try_again")
        if attempt.day_of_month in (1, 15):
            return IssuerOutcome.approve()
        return IssuerOutcome.decline("insufficient_funds")


class NotAModel:
    name = "nothing"
