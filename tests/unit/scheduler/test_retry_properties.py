"""Schedule invariants over random histories (the cards' retries before this system included): budgets,
never-declines, monotonic times, monitoring."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery_scheduler.domain.budgets import CardUse, budget_for
from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.declines import DECLINE_RULES, MASTERCARD_ADVICE_RULES, DeclineClass, DeclineCodes
from recovery_scheduler.domain.model import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    Observe,
    Recheck,
    RecoveryView,
    ScheduleAttempt,
    TokenState,
)
from recovery_scheduler.domain.planner import decide_next

from .retry_builders import T0

pytestmark = pytest.mark.unit

CODES = sorted({c for rule in DECLINE_RULES for c in (*rule.iso_codes, *rule.stripe_codes)})
NETWORKS = ["Visa", "Mastercard", "AmericanExpress", "Discover", None]

optional_code = st.none() | st.sampled_from(CODES)
optional_mac = st.none() | st.sampled_from(sorted(MASTERCARD_ADVICE_RULES))
optional_advice = st.none() | st.sampled_from(["do_not_try_again", "try_again_later", "confirm_card_data"])


# The card's retries before this system (the merchant's backfill): up to 40 days back, a few in each day or hour.
prior_uses = st.lists(st.tuples(st.integers(0, 40 * 24 * 60), st.integers(1, 12)), max_size=6).map(
    lambda periods: tuple(CardUse(T0 - timedelta(minutes=back)) for back, count in periods for _ in range(count))
)


@st.composite
def recoveries(draw: st.DrawFn) -> tuple[RecoveryView, datetime, RetryConfig]:
    tokens = tuple(
        TokenState(
            f"pm_{i}",
            draw(st.sampled_from(NETWORKS)),
            hard_declined=draw(st.booleans()) and i > 0,
            prior_uses=draw(prior_uses),
            # The merchant's "not before" on the card (`scheduled_at`): none, or up to 120 days from T0.
            not_before=draw(st.none() | st.integers(0, 120 * 24).map(lambda h: T0 + timedelta(hours=h))),
        )
        for i in range(draw(st.integers(1, 3)))
    )
    at = T0
    attempts = []
    for number in range(1, draw(st.integers(0, 30)) + 1):
        at += timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
        attempts.append(
            AttemptRecord(
                number,
                draw(st.sampled_from(tokens)).token,
                at,
                draw(st.sampled_from([AttemptOutcome.DECLINED, AttemptOutcome.DECLINED, AttemptOutcome.ERROR])),
                DeclineCodes(
                    decline_code=draw(optional_code),
                    advice_code=draw(optional_advice),
                    network_advice_code=draw(optional_mac),
                    network_decline_code=draw(optional_code),
                ),
            )
        )
    recovery = RecoveryView(
        draw(st.sampled_from(list(Algorithm))),
        tokens,
        T0,
        attempts=tuple(attempts),
        billing_retry_count=draw(st.integers(0, 12)),
        first_codes=DeclineCodes(error_code=draw(optional_code), network_advice_code=draw(optional_mac)),
    )
    now = at + timedelta(minutes=draw(st.integers(0, 2 * 24 * 60)))
    config = RetryConfig(
        ladder=draw(st.sampled_from([RetryConfig().ladder, (timedelta(minutes=10),) * 40])),
        max_retry_count=draw(st.none() | st.integers(1, 40)),
        switch_retry_threshold=draw(st.none() | st.integers(0, 5)),
        switch_time_threshold_after_creation=draw(st.none() | st.just(timedelta(days=2))),
        active_algorithm=draw(st.sampled_from([Algorithm.CASCADING, Algorithm.SMART])),
    )
    return recovery, now, config


def _never_declined(recovery: RecoveryView, token: TokenState) -> bool:
    if token.hard_declined:
        return True
    if token is recovery.tokens[0] and (
        recovery.first_codes.assessment(token.card_network).decline_class is DeclineClass.NEVER
    ):
        return True
    return any(
        a.token == token.token
        and a.outcome is AttemptOutcome.DECLINED
        and a.codes.assessment(token.card_network).decline_class is DeclineClass.NEVER
        for a in recovery.attempts
    )


def _authorizations(recovery: RecoveryView, token: TokenState) -> list[datetime]:
    times = [a.at for a in recovery.attempts if a.token == token.token] + [u.at for u in token.prior_uses]
    if token is recovery.tokens[0]:
        times += [recovery.created_at] * max(recovery.billing_retry_count, 1)
    return times


def _within_budget(recovery: RecoveryView, token: TokenState, at: datetime) -> bool:
    times = _authorizations(recovery, token)
    for limit in budget_for(token.card_network).limits:
        if limit.utc_day:
            used = sum(1 for t in times if t.date() == at.date() and t <= at)
        else:
            used = sum(1 for t in times if at - limit.window < t <= at)
        if used + 1 > limit.max_attempts:
            return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recoveries(), st.integers(0, 2**32))
def test_every_plan_keeps_the_rules(case: tuple[RecoveryView, datetime, RetryConfig], seed: int) -> None:
    recovery, now, config = case
    decision = decide_next(recovery, now, config, random.Random(seed))
    if recovery.algorithm is Algorithm.MONITORING:
        # Monitoring never charges: it only observes.
        assert isinstance(decision, Observe)
        decision = decision.shadow
    assert not isinstance(decision, Observe)
    last = recovery.attempts[-1].at if recovery.attempts else now
    if isinstance(decision, ScheduleAttempt):
        token = next(t for t in recovery.tokens if t.token == decision.token)
        assert not _never_declined(recovery, token)
        assert _within_budget(recovery, token, decision.at)
        assert decision.at >= now
        assert decision.at > last
        assert decision.at <= recovery.created_at + config.retry_window
        assert token.not_before is None or decision.at >= token.not_before
        assert decision.attempt_number == len(recovery.attempts) + 1
        if config.max_retry_count is not None:
            assert recovery.billing_retry_count + len(recovery.attempts) < config.max_retry_count
    if isinstance(decision, Recheck):
        assert decision.at >= now
