"""An independent checker of the network rules (recovery-rules.md section 3 and the never / fix / customer
classes of section 2), read from the attempts as the networks would see them: it knows nothing of the planner's
standings or budgets.

One merchant, one card, one amount per payment: every attempt of a run is on the same card, amount and currency.
The billing system's failed charge is the original authorization; every attempt after it is a reattempt.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from recovery_scheduler.domain.declines import DeclineCodes
from recovery_simulator.codes import CUSTOMER, FIX, MASTERCARD_WAITS, NEVER, decline_class
from recovery_simulator.simulation import PaymentRun

DAY = timedelta(days=1)
THIRTY_DAYS = timedelta(days=30)
# Fees, USD cents (recovery-rules.md section 3): Visa excess reattempt 0.10 domestic (0.15 -> 0.25 interregional);
# Mastercard MAC 03/21 resubmission and 35-in-30-days excess 0.50.
VISA_EXCESS_FEE = 10
VISA_EXCESS_FEE_INTERREGIONAL = 25
MASTERCARD_FEE = 50
# The acquirer's region, for Visa's interregional fee: the simulated merchant acquires in the US.
ACQUIRER_COUNTRY = "US"


@dataclass(frozen=True)
class Violation:
    invoice: str
    attempt_number: int
    at: datetime
    rule: str
    fee: int  # USD cents


@dataclass(frozen=True)
class _Auth:
    at: datetime
    declined: bool
    codes: DeclineCodes

    @property
    def decline_class(self) -> str:
        return decline_class(self.codes.decline_code, self.codes.advice_code, self.codes.network_advice_code)

    @property
    def mac(self) -> str | None:
        return self.codes.network_advice_code


def _network(name: str) -> str:
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return {"mc": "mastercard", "americanexpress": "amex"}.get(key, key)


class RuleChecker:
    """Counts violations over runs: `check(run)` returns one run's; `totals` and `fees` accumulate."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.fees = 0

    def check(self, run: PaymentRun) -> list[Violation]:
        payment = run.payment
        network = _network(payment.card_network)
        history = [_Auth(payment.failed_at, True, DeclineCodes.of(payment))]
        found: list[Violation] = []

        def flag(attempt_number: int, at: datetime, rule: str, fee: int = 0) -> None:
            found.append(Violation(payment.invoice, attempt_number, at, rule, fee))

        for attempt in run.attempts:
            at, n = attempt.at, attempt.number
            if any(not h.declined for h in history):
                flag(n, at, "charged after an approval")
            classes = [(h, h.decline_class) for h in history if h.declined]
            if any(cls == NEVER for _, cls in classes):
                mac_never = any(h.mac in ("03", "21") for h, _ in classes)
                fee = MASTERCARD_FEE if network == "mastercard" and mac_never else 0
                if network == "visa":
                    fee = self._visa_fee(payment.issuer_country)
                flag(n, at, "retried a hard decline (never class)", fee)
            if any(cls == CUSTOMER for _, cls in classes):
                flag(n, at, "off-session retry of a decline that needs the customer")
            fixes = [h.at for h, cls in classes if cls == FIX]
            if fixes and (run.card_updated_at is None or run.card_updated_at <= max(fixes) or run.card_updated_at > at):
                flag(n, at, "retried a fix decline before the card data changed")
            last = history[-1]
            if last.declined and last.mac in MASTERCARD_WAITS and at - last.at < MASTERCARD_WAITS[last.mac]:
                flag(n, at, f"before Mastercard advice {last.mac}'s wait")
            reattempts_30d = sum(1 for h in history[1:] if at - h.at < THIRTY_DAYS) + 1
            all_30d = sum(1 for h in history if at - h.at < THIRTY_DAYS) + 1
            declines_24h = sum(1 for h in history if h.declined and at - h.at < DAY)
            all_24h = sum(1 for h in history if at - h.at < DAY) + 1
            if network == "visa" and reattempts_30d > 20:
                flag(
                    n, at, "Visa: over 20 reattempts in 30 days (card, amount)", self._visa_fee(payment.issuer_country)
                )
            if network == "mastercard":
                if declines_24h >= 10:
                    flag(n, at, "Mastercard: an attempt after 10 declines in 24 h")
                if all_30d > 35:
                    flag(n, at, "Mastercard: over 35 attempts in 30 days (card, merchant, amount)", MASTERCARD_FEE)
            if network in ("amex", "discover") and (all_24h > 20 or all_30d > 20):
                flag(n, at, f"{network}: over the common 20 per day / 20 per 30 days budget")
            history.append(_Auth(at, not attempt.approved, attempt.codes))
        for violation in found:
            self.totals[violation.rule] += 1
            self.fees += violation.fee
        return found

    @staticmethod
    def _visa_fee(country: str) -> int:
        return VISA_EXCESS_FEE if country == ACQUIRER_COUNTRY else VISA_EXCESS_FEE_INTERREGIONAL

    @property
    def count(self) -> int:
        return sum(self.totals.values())
