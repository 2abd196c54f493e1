"""The per-endpoint circuit breaker (pure: the test passes the time)."""

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


def opened(at: datetime = T0) -> CircuitBreaker:
    breaker = CircuitBreaker(POLICY)
    for _ in range(POLICY.failure_threshold):
        breaker.record_failure(at)
    return breaker


def test_closed_until_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(POLICY)
    assert breaker.record_failure(T0) is False
    assert breaker.record_failure(T0) is False
    assert breaker.allow(T0)
    assert breaker.record_failure(T0) is True
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_at() == T0 + POLICY.cooldown


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(POLICY)
    breaker.record_failure(T0)
    breaker.record_failure(T0)
    breaker.record_success()
    breaker.record_failure(T0)
    breaker.record_failure(T0)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow(T0)


def test_open_refuses_until_the_cooldown_then_lets_exactly_one_probe_through() -> None:
    breaker = opened()
    assert not breaker.allow(T0 + POLICY.cooldown - timedelta(milliseconds=1))
    assert breaker.allow(T0 + POLICY.cooldown)
    assert breaker.state is CircuitState.HALF_OPEN
    # The probe is out: nobody else, until it reports or goes silent for the probe timeout.
    assert not breaker.allow(T0 + POLICY.cooldown + timedelta(seconds=1))
    assert breaker.allow(T0 + POLICY.cooldown + POLICY.probe_timeout)


def test_a_successful_probe_closes_the_circuit() -> None:
    breaker = opened()
    assert breaker.allow(T0 + POLICY.cooldown)
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.retry_at() is None
    assert breaker.allow(T0 + POLICY.cooldown)


def test_a_failed_probe_reopens_with_the_cooldown_doubled_up_to_the_maximum() -> None:
    breaker = opened()
    now = T0 + POLICY.cooldown
    expected = [timedelta(seconds=60), timedelta(seconds=100), timedelta(seconds=100)]
    for cooldown in expected:
        assert breaker.allow(now)
        assert breaker.record_failure(now) is True
        assert breaker.state is CircuitState.OPEN
        assert breaker.cooldown == cooldown
        assert breaker.retry_at() == now + cooldown
        assert not breaker.allow(now + cooldown - timedelta(milliseconds=1))
        now += cooldown
