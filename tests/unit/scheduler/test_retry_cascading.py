"""Cascading: Hyperswitch's ladder with jitter, same token until hard-declined or out of budget."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from recovery_scheduler.domain.config import HYPERSWITCH_CASCADING_LADDER, RetryConfig
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import (
    Algorithm,
    AttemptOutcome,
    AttemptRecord,
    AwaitBillingSystem,
    EndOutcome,
    EndRecovery,
    Recheck,
    ScheduleAttempt,
    TokenState,
)
from recovery_scheduler.domain.planner import decide_next

from .retry_builders import T0, declined, view, with_attempt

pytestmark = pytest.mark.unit

H = timedelta(hours=1)
VISA = TokenState("pm_visa", "Visa")
MC = TokenState("pm_mc", "Mastercard")


def test_the_default_ladder_is_hyperswitchs() -> None:
    expected = [timedelta(seconds=60)] + [3 * H] * 2 + [6 * H] * 3 + [9 * H] * 3 + [12 * H] * 3 + [18 * H] * 3
    assert list(HYPERSWITCH_CASCADING_LADDER) == expected
    assert sum(expected, timedelta()) == timedelta(hours=141, seconds=60)


def test_each_retry_is_the_last_attempt_plus_its_ladder_step_plus_seeded_jitter() -> None:
    rng, twin = random.Random(42), random.Random(42)
    recovery = view(tokens=(VISA,))
    now = T0
    for k, step in enumerate(HYPERSWITCH_CASCADING_LADDER):
        decision = decide_next(recovery, now, RetryConfig(), rng)
        base = recovery.attempts[-1].at if recovery.attempts else now
        assert decision == ScheduleAttempt(
            base + step + timedelta(seconds=twin.randint(1, 300)),
            "pm_visa",
            k + 1,
            decision.reason if isinstance(decision, ScheduleAttempt) else "",
        )
        assert isinstance(decision, ScheduleAttempt)
        recovery = with_attempt(recovery, declined(k + 1, "pm_visa", decision.at, decline_code="do_not_honor"))
        now = decision.at
    end = decide_next(recovery, now, RetryConfig(), rng)
    assert isinstance(end, EndRecovery)
    assert end.outcome is EndOutcome.RETRIES_EXHAUSTED
    assert end.emits_payment_failed


@pytest.mark.parametrize("seed", range(50))
def test_jitter_stays_within_its_bounds(seed: int) -> None:
    config = RetryConfig(min_jitter=timedelta(seconds=10), max_jitter=timedelta(seconds=20))
    decision = decide_next(view(tokens=(VISA,)), T0, config, random.Random(seed))
    assert isinstance(decision, ScheduleAttempt)
    assert timedelta(seconds=70) <= decision.at - T0 <= timedelta(seconds=80)


def test_a_hard_decline_moves_to_the_next_token() -> None:
    recovery = view(tokens=(VISA, MC), attempts=(declined(1, "pm_visa", T0, decline_code="stolen_card"),))
    decision = decide_next(recovery, T0, RetryConfig(), random.Random(1))
    assert isinstance(decision, ScheduleAttempt)
    assert decision.token == "pm_mc"
    assert decision.attempt_number == 2


def test_every_token_hard_declined_ends_the_recovery() -> None:
    recovery = view(
        tokens=(VISA, MC),
        attempts=(
            declined(1, "pm_visa", T0, decline_code="stolen_card"),
            declined(2, "pm_mc", T0 + H, network_advice_code="03"),
        ),
    )
    decision = decide_next(recovery, T0 + H, RetryConfig(), random.Random(1))
    assert isinstance(decision, EndRecovery)
    assert decision.outcome is EndOutcome.FAILED_HARD_DECLINE
    assert decision.business_status == "FAILED_DUE_TO_HARD_DECLINE_ERROR"
    assert decision.emits_payment_failed


def test_a_hard_decline_at_the_billing_system_ends_without_payment_failed() -> None:
    recovery = view(tokens=(VISA,), first_codes=DeclineCodes(error_code="lost_card"), billing_retry_count=1)
    decision = decide_next(recovery, T0, RetryConfig(), random.Random(1))
    assert isinstance(decision, EndRecovery)
    assert decision.outcome is EndOutcome.FAILED_HARD_DECLINE
    assert not decision.emits_payment_failed  # no attempt of ours: "not a failure from our side"


def test_a_token_flagged_hard_declined_is_never_charged() -> None:
    recovery = view(tokens=(TokenState("pm_a", "Visa", hard_declined=True), MC))
    decision = decide_next(recovery, T0, RetryConfig(), random.Random(1))
    assert isinstance(decision, ScheduleAttempt)
    assert decision.token == "pm_mc"


def test_customer_action_stops_off_session_retries() -> None:
    recovery = view(tokens=(VISA,), attempts=(declined(1, "pm_visa", T0, decline_code="authentication_required"),))
    decision = decide_next(recovery, T0, RetryConfig(), random.Random(1))
    assert isinstance(decision, EndRecovery)
    assert decision.outcome is EndOutcome.ACTION_REQUIRED


def test_an_updated_card_lifts_a_fix_block() -> None:
    attempts = (declined(1, "pm_visa", T0, decline_code="expired_card"),)
    blocked = decide_next(view(tokens=(VISA,), attempts=attempts), T0, RetryConfig(), random.Random(1))
    assert isinstance(blocked, EndRecovery)
    updated = TokenState("pm_visa", "Visa", card_updated_at=T0 + H)
    decision = decide_next(view(tokens=(updated,), attempts=attempts), T0 + H, RetryConfig(), random.Random(1))
    assert isinstance(decision, ScheduleAttempt)


def test_max_retry_count_counts_the_billing_systems_retries() -> None:
    config = RetryConfig(max_retry_count=5)
    recovery = view(tokens=(VISA,), billing_retry_count=3, attempts=(declined(1, "pm_visa", T0),))
    assert isinstance(decide_next(recovery, T0, config, random.Random(1)), ScheduleAttempt)
    recovery = with_attempt(recovery, declined(2, "pm_visa", T0 + H))
    decision = decide_next(recovery, T0 + H, config, random.Random(1))
    assert isinstance(decision, EndRecovery)
    assert decision.outcome is EndOutcome.RETRIES_EXHAUSTED
    assert decision.business_status == "FAILED_DUE_TO_RETRIES_EXHAUSTED"


def test_below_the_billing_threshold_this_system_waits_for_the_billing_system() -> None:
    config = RetryConfig(billing_connector_retry_threshold=3)
    for count in (0, 1, 3):
        decision = decide_next(view(billing_retry_count=count), T0, config, random.Random(1))
        assert isinstance(decision, AwaitBillingSystem)
    assert isinstance(decide_next(view(billing_retry_count=4), T0, config, random.Random(1)), ScheduleAttempt)


def test_a_success_ends_the_recovery() -> None:
    recovery = view(attempts=(AttemptRecord(1, "pm_primary", T0, AttemptOutcome.SUCCEEDED),))
    decision = decide_next(recovery, T0, RetryConfig(), random.Random(1))
    assert isinstance(decision, EndRecovery)
    assert decision.outcome is EndOutcome.SUCCEEDED
    assert not decision.emits_payment_failed


def test_an_unknown_outcome_never_leads_to_a_new_charge() -> None:
    recovery = view(attempts=(AttemptRecord(1, "pm_primary", T0, AttemptOutcome.UNKNOWN),))
    decision = decide_next(recovery, T0, RetryConfig(), random.Random(1))
    assert isinstance(decision, Recheck)
    assert decision.at > T0


def test_a_mastercard_advice_wait_is_a_floor() -> None:
    recovery = view(tokens=(MC,), attempts=(declined(1, "pm_mc", T0, network_advice_code="27"),))
    decision = decide_next(recovery, T0, RetryConfig(), random.Random(1))
    assert isinstance(decision, ScheduleAttempt)
    assert decision.at >= T0 + timedelta(days=4)


def _mastercard_attempts(count: int, day: datetime) -> tuple[AttemptRecord, ...]:
    return tuple(declined(i + 1, "pm_mc", day + i * timedelta(minutes=5)) for i in range(count))


def test_an_out_of_budget_token_switches_to_the_next_one() -> None:
    day = datetime(2026, 5, 4, 1, 0, tzinfo=UTC)
    recovery = view(tokens=(MC, VISA), created_at=day, attempts=_mastercard_attempts(9, day))
    # Billing's failed charge (count 1) plus 9 of ours: Mastercard's 10 a day are used.
    decision = decide_next(recovery, day + H, RetryConfig(), random.Random(1))
    assert isinstance(decision, ScheduleAttempt)
    assert decision.token == "pm_visa"


def test_with_every_token_out_of_budget_it_waits_until_the_next_utc_midnight() -> None:
    day = datetime(2026, 5, 4, 1, 0, tzinfo=UTC)
    recovery = view(tokens=(MC,), created_at=day, attempts=_mastercard_attempts(9, day))
    decision = decide_next(recovery, day + H, RetryConfig(), random.Random(1))
    assert isinstance(decision, Recheck)
    # Both the UTC day (midnight) and Mastercard's rolling 24 h (the billing charge at 01:00 leaves it) allow.
    assert decision.at == day + timedelta(days=1)


def test_the_ladder_is_configurable() -> None:
    config = RetryConfig(ladder=(timedelta(days=1),), min_jitter=timedelta(0), max_jitter=timedelta(0))
    decision = decide_next(view(), T0, config, random.Random(1))
    assert isinstance(decision, ScheduleAttempt)
    assert decision.at == T0 + timedelta(days=1)
    recovery = with_attempt(view(), declined(1, "pm_primary", decision.at))
    end = decide_next(recovery, decision.at, config, random.Random(1))
    assert isinstance(end, EndRecovery)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        decide_next(view(), datetime(2026, 5, 4), RetryConfig(), random.Random(1))


def test_algorithm_field_is_respected() -> None:
    assert view().algorithm is Algorithm.CASCADING
