"""The default issuer model: a table of parameters per decline class, and one small interpreter of it.

How an outcome is decided (the same for every row; the rows are data, fitted by `history.fit_model`):

- Each payment has a latent *resolution time*: the moment its cause goes away (funds arrive, the issuer's system
  recovers, the fraud hold lifts). With probability `recoverable` it resolves, at an exponentially distributed
  time of mean `mean_days` after the first failure; otherwise never within the horizon. A share `payday_share` of
  resolutions waits for the customer's next payday (1st, 15th, last day of the month, local time) instead.
  The latent draws come from the payment's own seed, so every algorithm faces the same world (common random
  numbers: the comparison measures the algorithms, not the dice).
- An attempt before the resolution is declined (again with `later_code`), except with probability `luck`.
- An attempt after it is approved, except: with probability `night_penalty` between 00:00 and 06:00 local time,
  and with probability `burst_penalty` per decline of this payment in the 24 hours before (issuers' velocity and
  risk rules score repeated attempts).
- Hard declines never resolve; `fix` declines (expired card) resolve when the card data is refreshed (account
  updater: the population says whether and when), `customer` declines never off-session.

Sources and assumptions: the rates are ASSUMPTIONS, set to be consistent with public figures, not measured:
Recurly's 61-70% of failed renewals recovered and Churnkey's 70% (vendor claims, recovery-rules.md section 4)
bound the overall ceiling; insufficient funds dominating soft declines and resolving around paydays follows
Stripe's and Chargebee's guidance (retry insufficient funds days later, near paydays); technical declines
(issuer unavailable, 96) clear within hours (recovery-rules.md: "retry soon"); velocity declines (61/65) need
>= 24 h; security / restricted declines rarely recover ("few retries"). Fit the table to your own history
(`recovery simulate --history`) rather than trusting these numbers.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypedDict

from recovery_simulator.codes import CUSTOMER, FIX, LATER, NEVER, TECHNICAL, decline_class
from recovery_simulator.issuer import AttemptContext, IssuerOutcome
from recovery_simulator.paydays import next_local_payday


@dataclass(frozen=True)
class ClassParameters:
    """One row of the table: how payments first declined with one of `codes` recover."""

    name: str
    codes: tuple[str, ...]
    recoverable: float  # share of payments whose cause goes away (the ceiling of recovery)
    mean_days: float  # mean time to that, after the first failure (exponential)
    payday_share: float  # share of resolutions that wait for the customer's next payday
    luck: float  # chance an attempt before the resolution is approved anyway
    burst_penalty: float  # per decline in the previous 24 h: chance a resolved payment is still declined
    night_penalty: float  # 00:00-06:00 local: chance a resolved payment is still declined
    later_code: str  # the decline code of a later decline
    mastercard_advice: str | None = None  # the MAC a Mastercard issuer adds to a later decline
    source: str = "assumption"


DEFAULT_TABLE: tuple[ClassParameters, ...] = (
    ClassParameters(
        "insufficient_funds",
        ("insufficient_funds",),
        0.62,
        7.0,
        0.6,
        0.02,
        0.10,
        0.15,
        "insufficient_funds",
        source="assumption: most funds arrive on paydays; Stripe/Chargebee: retry days later, near paydays",
    ),
    ClassParameters(
        "generic_soft",
        ("do_not_honor", "generic_decline", "card_declined", "try_again_later", "call_issuer"),
        0.45,
        3.0,
        0.15,
        0.04,
        0.15,
        0.05,
        "do_not_honor",
        source="assumption: generic 05 declines mix funds, risk and issuer trouble; Recurly/Churnkey ceilings",
    ),
    ClassParameters(
        "velocity",
        ("card_velocity_exceeded", "withdrawal_count_limit_exceeded"),
        0.65,
        1.5,
        0.0,
        0.0,
        0.35,
        0.05,
        "card_velocity_exceeded",
        mastercard_advice="25",
        source="recovery-rules.md: 61/65 retry after >= 24 h; bursts are what the issuer counts",
    ),
    ClassParameters(
        "technical",
        ("processing_error", "issuer_not_available", "reenter_transaction"),
        0.90,
        0.15,
        0.0,
        0.25,
        0.02,
        0.0,
        "processing_error",
        source="recovery-rules.md: issuer/processor trouble, retry in minutes to hours",
    ),
    ClassParameters(
        "risk",
        ("security_violation", "restricted_card", "account_blocked", "invalid_amount", "invalid_merchant"),
        0.20,
        6.0,
        0.0,
        0.01,
        0.25,
        0.05,
        "do_not_honor",
        source="recovery-rules.md: 59/62/78 later, few retries; assumption: rarely recover",
    ),
    ClassParameters(
        "expired",
        ("expired_card", "incorrect_cvc"),
        0.85,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        "expired_card",
        source="assumption: a refreshed card (account updater) is approved 85% of the time",
    ),
    ClassParameters(
        "customer",
        ("authentication_required",),
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        "authentication_required",
        source="recovery-rules.md: the customer must authenticate on-session",
    ),
)
# Hard declines (the never class) never recover and are answered with themselves.
HARD = ClassParameters("hard", (), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, "do_not_honor", source="recovery-rules.md: never")
# A code no row names takes the row of its class's representative code (its class as codes.decline_class reads
# recovery-rules.md): an unlisted soft code (`approve_with_id`, `no_action_taken`...) recovers as the generic soft
# declines do, as the planner retries it as one; without a row for its class, it is hard.
CLASS_FALLBACK = {
    LATER: "generic_decline",
    TECHNICAL: "processing_error",
    FIX: "expired_card",
    CUSTOMER: "authentication_required",
}


def _seeded(invoice: str, salt: str) -> random.Random:
    return random.Random(zlib.crc32(f"{invoice}:{salt}".encode()))


class TableModel:
    """The default issuer model: `DEFAULT_TABLE` (or any table) interpreted as the module docstring says."""

    name = "default"

    def __init__(self, table: tuple[ClassParameters, ...] = DEFAULT_TABLE, name: str | None = None) -> None:
        self.table = table
        self._by_code = {code: row for row in table for code in row.codes}
        if name is not None:
            self.name = name

    def row_for(self, code: str) -> ClassParameters:
        cls = decline_class(code)
        if cls == NEVER:
            return HARD
        listed = self._by_code.get(code)
        if listed is not None:
            return listed
        return self._by_code.get(CLASS_FALLBACK.get(cls, ""), HARD)

    def resolution_time(self, attempt: AttemptContext) -> datetime | None:
        """When this payment's cause goes away (latent, from the payment alone), or None: never."""
        first = attempt.declines[0]
        row = self.row_for(first.decline_code)
        draw = _seeded(attempt.invoice, "resolution")
        if draw.random() >= row.recoverable:
            return None
        days = -row.mean_days * math.log(1.0 - draw.random()) if row.mean_days > 0 else 0.0
        at = first.at + timedelta(days=days)
        if draw.random() < row.payday_share:
            offset = attempt.local_time - attempt.at
            at = next_local_payday(at, offset)
        return at

    def outcome(self, attempt: AttemptContext, rng: random.Random) -> IssuerOutcome:
        first = attempt.declines[0]
        row = self.row_for(first.decline_code)
        first_class = decline_class(first.decline_code, first.advice_code, first.network_advice_code)
        if first_class in (NEVER, CUSTOMER) or row is HARD:
            return self._declined(first.decline_code, attempt)
        if first_class == FIX or row.name == "expired":
            refreshed = attempt.card_updated_at is not None and attempt.card_updated_at <= attempt.at
            if refreshed and _seeded(attempt.invoice, "refreshed").random() < row.recoverable:
                return IssuerOutcome.approve()
            return IssuerOutcome.decline(first.decline_code, "confirm_card_data" if not refreshed else None)
        resolved = self.resolution_time(attempt)
        u = rng.random()
        if resolved is None or attempt.at < resolved:
            return IssuerOutcome.approve() if u < row.luck else self._declined(row.later_code, attempt, row)
        recent = sum(1 for d in attempt.declines if attempt.at - d.at < timedelta(hours=24))
        still_declined = 1.0 - (1.0 - row.burst_penalty) ** recent
        if attempt.local_time.hour < 6:
            still_declined = 1.0 - (1.0 - still_declined) * (1.0 - row.night_penalty)
        if u < still_declined:
            return self._declined(row.later_code, attempt, row)
        return IssuerOutcome.approve()

    def _declined(self, code: str, attempt: AttemptContext, row: ClassParameters | None = None) -> IssuerOutcome:
        mac = row.mastercard_advice if row is not None and attempt.card_network == "Mastercard" else None
        if decline_class(code) == NEVER:
            return IssuerOutcome.decline(
                code, "do_not_try_again", "03" if attempt.card_network == "Mastercard" else None
            )
        return IssuerOutcome.decline(code, None, mac)


class RowChanges(TypedDict, total=False):
    """The fields of a row `with_rows` replaces: its numbers (ClassParameters' fields of the same names)."""

    recoverable: float
    mean_days: float
    payday_share: float
    luck: float
    burst_penalty: float
    night_penalty: float


def with_rows(model: TableModel, **changes: RowChanges) -> tuple[ClassParameters, ...]:
    """The model's table with some rows' fields replaced: `with_rows(m, insufficient_funds={"payday_share": 0.9})`."""
    return tuple(replace(row, **changes[row.name]) if row.name in changes else row for row in model.table)
