"""Learned hours in the simulator, as the scheduler learns them: the retry statistics of the simulated merchant,
counted from every simulated attempt of one algorithm's run (in the population's order), and, before each
planner call, the hour rates of the key of the payment's next attempt (`TokenState.hour_rates`).

Nothing of the statistics is re-implemented here: each simulated payment is also kept as the scheduler's
`Recovery` (its card, the billing system's first failure, this system's attempts), an attempt is counted by
`retry_stats.retry_outcomes` (the scheduler's key and buckets), and the next attempt's key is
`retry_stats.attempt_key`, as `steps.planner_view` asks it; `learned_hours.hour_rates` turns a key's counters into
rates. Only the asked key's rates are computed, and kept until that key counted a hundredth more attempts."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime

from recovery_contracts.payments import ErrorDetails
from recovery_contracts.recovery import PaymentToken, RecoveryPayment, RetryAlgorithm, RetrySettings
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.learned_hours import MIN_KEY_ATTEMPTS, HourRates, hour_rates
from recovery_scheduler.domain.model import Algorithm, Attempt, AttemptOutcome
from recovery_scheduler.domain.planning import Change
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.retry_stats import RetryOutcome, RetryStats, StatsKey, attempt_key, retry_outcomes
from recovery_simulator.population import FailedPayment

# The simulated population is one merchant's.
MERCHANT = "merchant_simulated"


def recovery_of(payment: FailedPayment, algorithm: Algorithm, token: str) -> Recovery:
    """The scheduler's `Recovery` of a simulated payment before this system's first attempt: what the statistics'
    keys read of it (the card's network and funding, the billing system's first failure) as intake would carry
    it; the rest is placeholder."""
    card = PaymentToken(token=token, card_network=payment.card_network, card_type=payment.funding)
    first = ErrorDetails(
        code=payment.decline_code, message=payment.decline_code, network_advice_code=payment.network_advice_code
    )
    snapshot = RecoveryPayment(
        payment_id=payment.invoice,
        merchant_id=MERCHANT,
        profile_id="profile_simulated",
        merchant_reference_id=payment.invoice,
        amount=payment.amount,
        currency=payment.currency,
        created_at=payment.failed_at,
        billing_connector_id="billing_simulated",
        payment_connector_id="connector_simulated",
        connector="simulated",
        connector_customer_id=None,
        payment_method_type="card",
        payment_method_subtype=payment.funding,
        tokens=(card,),
        first_error=first,
        billing_retry_count=1,
        retry=RetrySettings(algorithm=RetryAlgorithm(algorithm.value)),
    )
    return Recovery.new(snapshot, payment.failed_at)


def with_attempt(
    recovery: Recovery, token: str, number: int, at: datetime, approved: bool, codes: DeclineCodes
) -> Recovery:
    """`recovery` with one more attempt of this system, as the executor's report adds it."""
    outcome = AttemptOutcome.SUCCEEDED if approved else AttemptOutcome.DECLINED
    attempt = Attempt(
        number=number,
        token=token,
        at=at,
        outcome=outcome,
        codes=codes,
        attempt_id=f"{recovery.payment_id}_att_{number}",
    )
    return replace(recovery, attempts=(*recovery.attempts, attempt))


class RetryLearning:
    """The simulated merchant's retry statistics: each key's counters (`RetryOutcome.increments` summed), and
    each key's hour rates, computed when asked.

    A key's rates are kept until its attempts grew by `refresh_share` (at least one attempt): like the
    scheduler's five-minute cache of learned hours, evidence that moved by a hundredth is not read again, and a
    run does not pay for reading a key's counters on every plan. `refresh_share=0`: read again after every new
    attempt of the key."""

    def __init__(self, refresh_share: float = 0.01) -> None:
        self.refresh_share = refresh_share
        self._counters: dict[StatsKey, Counter[str]] = {}
        # Per key: its rates, and the attempts counted when they were read (a key absent: to read).
        self._rates: dict[StatsKey, tuple[HourRates | None, int]] = {}

    def record(self, before: Recovery, after: Recovery) -> tuple[RetryOutcome, ...]:
        """Count the attempts `after` adds to `before`, each under its key (as the scheduler does in the same write
        as the change); returns them."""
        outcomes = retry_outcomes(Change(before, after))
        for outcome in outcomes:
            self._counters.setdefault(outcome.key, Counter()).update(outcome.increments())
        return outcomes

    def hour_rates(self, recovery: Recovery, token: str) -> HourRates | None:
        """What the attempts counted so far learned, by UTC hour, for the next attempt of `recovery` on `token`
        (None: fewer than `learned_hours.MIN_KEY_ATTEMPTS` attempts like it)."""
        key = self.next_key(recovery, token)
        attempts = self.attempts(key)
        if attempts < MIN_KEY_ATTEMPTS:
            return None  # what `hour_rates` says below the evidence threshold: no need to read the counters
        cached = self._rates.get(key)
        if cached is not None and attempts < cached[1] + max(1.0, cached[1] * self.refresh_share):
            return cached[0]
        rates = hour_rates(RetryStats.from_increments(key, self._counters[key]))
        self._rates[key] = (rates, attempts)
        return rates

    @staticmethod
    def next_key(recovery: Recovery, token: str) -> StatsKey:
        """The key the next attempt of `recovery` on `token` is like (as `steps.planner_view` asks it)."""
        return attempt_key(recovery, token, len(recovery.attempts) + 1)

    def attempts(self, key: StatsKey) -> int:
        """The attempts counted under `key`."""
        counters = self._counters.get(key)
        return counters["attempts"] if counters is not None else 0

    @property
    def keys(self) -> tuple[StatsKey, ...]:
        return tuple(self._counters)
