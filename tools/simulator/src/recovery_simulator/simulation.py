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
from recovery_simulator.learning import RetryLearning, recovery_of, with_attempt
from recovery_simulator.population import FailedPayment

Planner = Callable[[RecoveryView, datetime, RetryConfig, random.Random], Decision]
MAX_STEPS = 1000
# What a planner's reason says when learned hours moved the attempt (learned_hours.HourRates.better_time).
LEARNED_HOURS_REASON = "learned hours:"


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
    learned_hour_moves: int = 0  # attempts made at an hour learned hours moved them to

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


def token_of(payment: FailedPayment) -> str:
    """The payment's saved card: one of its own, as a billing system's customers each have theirs (the planner
    spreads payday retries by card: `customer_time.morning_spread`)."""
    return f"pm_card_{payment.invoice}"


def _past_decline(at: datetime, codes: DeclineCodes) -> PastDecline:
    return PastDecline(at, codes.decline_code or "", codes.advice_code, codes.network_advice_code)


def _view(payment: FailedPayment, algorithm: Algorithm) -> RecoveryView:
    return RecoveryView(
        algorithm,
        (TokenState(token_of(payment), payment.card_network),),
        payment.failed_at,
        billing_retry_count=1,
        first_codes=DeclineCodes.of(payment),
        # The billing address is taken to be in the card's issuer country, when the billing system sent one.
        customer_country=payment.issuer_country if payment.billing_country_known else None,
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
    learned_hours: bool = False,
    learning: RetryLearning | None = None,
) -> PaymentRun:
    """One recovery from its first failure to its end. The planner's and the issuer's random numbers come from
    the payment and the seed only: every algorithm meets the same issuer dice for the same payment.

    `learned_hours` (the scheduler's SMART_LEARNED_HOURS): before each planner call the token's `hour_rates` are
    what `learning` (the merchant's statistics of the payments simulated before; a fresh one when None) learned
    for the next attempt, and this payment's attempts are counted into it. Cascading neither reads nor, here,
    counts them (the scheduler reads none for it, and each algorithm's run learns only from its own attempts)."""
    config = config or RetryConfig()
    planner_rng = random.Random(f"{seed}:{payment.invoice}:planner")
    connector = SimulatedConnector(model, random.Random(f"{seed}:{payment.invoice}:issuer"))
    clock = SimulatedClock(payment.failed_at)
    end = payment.failed_at + horizon
    view = _view(payment, algorithm)
    attempts: list[SimulatedAttempt] = []
    updated_at: datetime | None = None
    moves = 0
    if not learned_hours or algorithm is Algorithm.CASCADING:
        learning = None
    elif learning is None:
        learning = RetryLearning()
    # The scheduler's own record of this recovery, which the statistics' keys read.
    recovery = recovery_of(payment, algorithm, token_of(payment)) if learning is not None else None

    def run(ended: str, recovered_at: datetime | None = None) -> PaymentRun:
        return PaymentRun(payment, algorithm.value, tuple(attempts), recovered_at, ended, updated_at, moves)

    for _ in range(MAX_STEPS):
        if learning is not None and recovery is not None:
            rates = learning.hour_rates(recovery, token_of(payment))
            if rates is not view.tokens[0].hour_rates:
                view = replace(view, tokens=(replace(view.tokens[0], hour_rates=rates),))
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
            if LEARNED_HOURS_REASON in decision.reason:
                moves += 1
            if learning is not None and recovery is not None:
                before = recovery
                recovery = with_attempt(
                    before, decision.token, decision.attempt_number, decision.at, answer.approved, codes
                )
                learning.record(before, recovery)
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
            # scheduler plans again (Recovery._with_snapshot / _reopened).
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
    learned_hours: bool = False,
) -> Iterator[PaymentRun]:
    """Each payment in turn; with `learned_hours`, each planner call reads what the attempts simulated so far in
    this run taught (one merchant's statistics, as the scheduler's)."""
    learning = RetryLearning() if learned_hours else None
    for payment in payments:
        yield simulate_payment(
            payment,
            algorithm,
            model,
            seed=seed,
            horizon=horizon,
            config=config,
            planner=planner,
            learned_hours=learned_hours,
            learning=learning,
        )
