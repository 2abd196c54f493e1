"""The loop: for each failed payment, the scheduler's real planner (`decide_next`, the code path `Recovery`
uses) decides, the simulated clock moves to the decision's time, and the simulated connector answers from the
issuer model, until the recovery ends or the horizon passes."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.declines import NO_DECLINE_CODES, DeclineCodes
from recovery_scheduler.domain.model import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    AwaitBillingSystem,
    Decision,
    EndOutcome,
    EndRecovery,
    Observe,
    Recheck,
    RecoveryView,
    ScheduleAttempt,
    TokenState,
)
from recovery_scheduler.domain.planner import decide_next
from recovery_simulator.clock import SimulatedClock
from recovery_simulator.issuer import AttemptContext, IssuerModel, IssuerOutcome, PastDecline
from recovery_simulator.population import FailedPayment

Planner = Callable[[RecoveryView, datetime, RetryConfig, random.Random], Decision]
TOKEN = "pm_card"
MAX_STEPS = 1000


@dataclass(frozen=True)
class SimulatedAttempt:
    number: int
    at: datetime
    approved: bool
    codes: DeclineCodes = NO_DECLINE_CODES  # what the issuer declined with (none when approved)


@dataclass(frozen=True)
class PaymentRun:
    payment: FailedPayment
    algorithm: str
    attempts: tuple[SimulatedAttempt, ...]
    recovered_at: datetime | None
    ended: str  # the planner's end outcome, "observing", "awaiting_billing" or "horizon"
    card_updated_at: datetime | None  # when the simulated account updater refreshed the card, if it did

    @property
    def recovered(self) -> bool:
        return self.recovered_at is not None


class SimulatedConnector:
    """Charges nothing real: asks the issuer model about each attempt and answers like the executor reports."""

    def __init__(self, model: IssuerModel, rng: random.Random) -> None:
        self.model = model
        self.rng = rng

    def charge(
        self,
        payment: FailedPayment,
        plan: ScheduleAttempt,
        history: Iterable[SimulatedAttempt],
        card_updated_at: datetime | None,
    ) -> IssuerOutcome:
        first = _past_decline(payment.failed_at, DeclineCodes.of(payment))
        declines = (first, *(_past_decline(a.at, a.codes) for a in history if not a.approved))
        local = plan.at + timedelta(hours=payment.utc_offset_hours)
        context = AttemptContext(
            invoice=payment.invoice,
            card_network=payment.card_network,
            funding=payment.funding,
            issuer_country=payment.issuer_country,
            amount=payment.amount,
            currency=payment.currency,
            attempt_number=plan.attempt_number,
            at=plan.at,
            since_first_failure=plan.at - payment.failed_at,
            local_time=local,
            day_of_month=local.day,
            declines=declines,
            card_updated_at=card_updated_at,
        )
        return self.model.outcome(context, self.rng)


def _past_decline(at: datetime, codes: DeclineCodes) -> PastDecline:
    return PastDecline(at, codes.decline_code or "", codes.advice_code, codes.network_advice_code)


def _view(payment: FailedPayment, algorithm: Algorithm) -> RecoveryView:
    return RecoveryView(
        algorithm,
        (TokenState(TOKEN, payment.card_network),),
        payment.failed_at,
        billing_retry_count=1,
        first_codes=DeclineCodes.of(payment),
        # The billing address is taken to be in the card's issuer country.
        customer_country=payment.issuer_country,
    )


def simulate_payment(
    payment: FailedPayment,
    algorithm: Algorithm,
    model: IssuerModel,
    *,
    seed: int,
    horizon: timedelta,
    config: RetryConfig | None = None,
    planner: Planner = decide_next,
) -> PaymentRun:
    """One recovery from its first failure to its end. The planner's and the issuer's random numbers come from
    the payment and the seed only: every algorithm meets the same issuer dice for the same payment."""
    config = config or RetryConfig()
    planner_rng = random.Random(f"{seed}:{payment.invoice}:planner")
    connector = SimulatedConnector(model, random.Random(f"{seed}:{payment.invoice}:issuer"))
    clock = SimulatedClock(payment.failed_at)
    end = payment.failed_at + horizon
    view = _view(payment, algorithm)
    attempts: list[SimulatedAttempt] = []
    updated_at: datetime | None = None

    def run(ended: str, recovered_at: datetime | None = None) -> PaymentRun:
        return PaymentRun(payment, algorithm.value, tuple(attempts), recovered_at, ended, updated_at)

    for _ in range(MAX_STEPS):
        try:
            decision = planner(view, clock.now, config, planner_rng)
        except Exception as error:  # a planner bug ends this payment's run; the results count it
            return run(f"planner_error: {type(error).__name__} {error}".strip())
        if isinstance(decision, ScheduleAttempt):
            if decision.at > end:
                return run("horizon")
            clock.advance_to(decision.at)
            answer = connector.charge(payment, decision, attempts, updated_at)
            codes = DeclineCodes.of(answer)
            attempts.append(SimulatedAttempt(decision.attempt_number, decision.at, answer.approved, codes))
            outcome = AttemptOutcome.SUCCEEDED if answer.approved else AttemptOutcome.DECLINED
            record = AttemptRecord(decision.attempt_number, decision.token, decision.at, outcome, codes)
            view = replace(view, attempts=(*view.attempts, record))
            if answer.approved:
                return run(EndOutcome.SUCCEEDED.value, decision.at)
        elif isinstance(decision, Recheck):
            if decision.at > end:
                return run("horizon")
            clock.advance_to(decision.at)
        elif isinstance(decision, EndRecovery):
            # The account updater refreshes the card later: intake's new snapshot lifts the fix block and the
            # scheduler plans again (Recovery._with_snapshot / _failure_reported).
            refresh = payment.card_updated_at
            if (
                decision.outcome is EndOutcome.ACTION_REQUIRED
                and updated_at is None
                and refresh is not None
                and clock.now <= refresh <= end
            ):
                updated_at = clock.advance_to(refresh)
                view = replace(view, tokens=(replace(view.tokens[0], card_updated_at=updated_at),))
                continue
            return run(decision.outcome.value)
        elif isinstance(decision, Observe):
            return run("observing")
        elif isinstance(decision, AwaitBillingSystem):
            return run("awaiting_billing")
    raise RuntimeError(f"{payment.invoice}: the planner did not end the recovery in {MAX_STEPS} steps")


def simulate(
    payments: Iterable[FailedPayment],
    algorithm: Algorithm,
    model: IssuerModel,
    *,
    seed: int,
    horizon: timedelta = timedelta(days=60),
    config: RetryConfig | None = None,
    planner: Planner = decide_next,
) -> Iterator[PaymentRun]:
    for payment in payments:
        yield simulate_payment(payment, algorithm, model, seed=seed, horizon=horizon, config=config, planner=planner)
