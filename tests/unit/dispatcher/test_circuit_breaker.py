"""The per-endpoint circuit breaker (pure, immutable: the test passes the time, each transition returns the new
breaker, and `admit` tells apart "go, nothing to store", "go as the probe, store first" and "wait")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery_dispatcher.domain.breaker import BreakerPolicy, CircuitBreaker, CircuitState

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
POLICY = BreakerPolicy(
    failure_threshold=3,
    cooldown=timedelta(seconds=30),
    max_cooldown=timedelta(seconds=100),
    probe_timeout=timedelta(seconds=60),
)


def failed(breaker: CircuitBreaker, times: int, at: datetime = T0) -> CircuitBreaker:
    for _ in range(times):
        breaker = breaker.failed(at, POLICY)
    return breaker


def opened(at: datetime = T0) -> CircuitBreaker:
    return failed(CircuitBreaker(), POLICY.failure_threshold, at)


def test_closed_until_the_threshold_of_consecutive_failures() -> None:
    closed = CircuitBreaker()
    twice = failed(closed, 2)
    assert twice.state is CircuitState.CLOSED and twice.consecutive_failures == 2
    assert twice.admit(T0, POLICY) is twice  # goes, nothing to store
    thrice = twice.failed(T0, POLICY)
    assert thrice.state is CircuitState.OPEN and thrice.opened_by(twice)
    assert thrice.retry_at() == T0 + POLICY.cooldown
    # Transitions return new values: the old one is untouched.
    assert closed == CircuitBreaker() and twice.state is CircuitState.CLOSED


def test_a_success_resets_the_count_and_on_a_healthy_breaker_changes_nothing() -> None:
    healthy = CircuitBreaker(version=7)
    assert healthy.succeeded() is healthy  # nothing to store: the delivery path's common case
    reset = failed(healthy, 2).succeeded()
    assert reset == CircuitBreaker(version=7)
    assert failed(reset, 2).state is CircuitState.CLOSED


def test_open_refuses_until_the_cooldown_then_admits_exactly_one_probe() -> None:
    breaker = opened()
    assert breaker.admit(T0 + POLICY.cooldown - timedelta(milliseconds=1), POLICY) is None
    probe = breaker.admit(T0 + POLICY.cooldown, POLICY)
    assert probe is not None and probe is not breaker  # the probe: store it first (one dispatcher wins)
    assert probe.state is CircuitState.HALF_OPEN and probe.probe_started_at == T0 + POLICY.cooldown
    # The probe is out: nobody else, until it reports or goes silent for the probe timeout.
    assert probe.admit(T0 + POLICY.cooldown + timedelta(seconds=1), POLICY) is None
    silent = probe.admit(T0 + POLICY.cooldown + POLICY.probe_timeout, POLICY)
    assert silent is not None and silent.probe_started_at == T0 + POLICY.cooldown + POLICY.probe_timeout


def test_a_refused_delivery_comes_back_at_the_end_of_the_cooldown_or_a_quarter_of_it() -> None:
    breaker = opened()
    assert breaker.hold_until(T0, POLICY) == T0 + POLICY.cooldown
    late = T0 + POLICY.cooldown + timedelta(seconds=1)
    assert breaker.hold_until(late, POLICY) == late + POLICY.cooldown / 4


def test_a_successful_probe_closes_the_circuit() -> None:
    probe = opened().admit(T0 + POLICY.cooldown, POLICY)
    assert probe is not None
    closed = probe.succeeded()
    assert closed.state is CircuitState.CLOSED and closed.retry_at() is None
    assert closed.admit(T0 + POLICY.cooldown, POLICY) is closed


def test_a_failed_probe_reopens_with_the_cooldown_doubled_up_to_the_maximum() -> None:
    breaker = opened()
    now = T0 + POLICY.cooldown
    for cooldown in [timedelta(seconds=60), timedelta(seconds=100), timedelta(seconds=100)]:
        probe = breaker.admit(now, POLICY)
        assert probe is not None
        breaker = probe.failed(now, POLICY)
        assert breaker.opened_by(probe)
        assert breaker.state is CircuitState.OPEN and breaker.cooldown == cooldown
        assert breaker.retry_at() == now + cooldown
        assert breaker.admit(now + cooldown - timedelta(milliseconds=1), POLICY) is None
        now += cooldown


def test_a_failure_while_open_counts_without_reopening() -> None:
    breaker = opened()
    later = breaker.failed(T0 + timedelta(seconds=5), POLICY)
    assert later.state is CircuitState.OPEN and later.opened_at == T0 and not later.opened_by(breaker)
    assert later.consecutive_failures == POLICY.failure_threshold + 1
