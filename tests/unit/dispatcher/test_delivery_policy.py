"""Which answers succeed, retry, throttle or disable the endpoint; when the next automatic retry is due."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery_dispatcher.domain.policy import (
    HYPERSWITCH_RETRY_SCHEDULE,
    DeliveryOutcome,
    RetrySchedule,
    classify_response,
    next_retry_delay,
    parse_retry_after,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 9, 7, 20, 5, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "error", "outcome", "transient"),
    [
        (200, None, DeliveryOutcome.SUCCEEDED, False),
        (201, None, DeliveryOutcome.SUCCEEDED, False),
        (204, None, DeliveryOutcome.SUCCEEDED, False),
        (299, None, DeliveryOutcome.SUCCEEDED, False),
        (301, None, DeliveryOutcome.FAILED, False),
        (302, None, DeliveryOutcome.FAILED, False),
        (307, None, DeliveryOutcome.FAILED, False),
        (400, None, DeliveryOutcome.FAILED, False),
        (401, None, DeliveryOutcome.FAILED, False),
        (404, None, DeliveryOutcome.FAILED, False),
        (410, None, DeliveryOutcome.ENDPOINT_GONE, False),
        (429, None, DeliveryOutcome.THROTTLED, True),
        (500, None, DeliveryOutcome.FAILED, True),
        (501, None, DeliveryOutcome.FAILED, True),
        (502, None, DeliveryOutcome.THROTTLED, True),
        (503, None, DeliveryOutcome.THROTTLED, True),
        (504, None, DeliveryOutcome.THROTTLED, True),
        (None, "Unable to send request to merchant server: connection refused", DeliveryOutcome.FAILED, True),
    ],
)
def test_classification_table(status: int | None, error: str | None, outcome: DeliveryOutcome, transient: bool) -> None:
    verdict = classify_response(status, error)
    assert verdict.outcome is outcome
    assert verdict.transient is transient
    assert verdict.is_success is (outcome is DeliveryOutcome.SUCCEEDED)
    assert verdict.should_retry is (outcome in (DeliveryOutcome.FAILED, DeliveryOutcome.THROTTLED))
    assert verdict.disables_endpoint is (outcome is DeliveryOutcome.ENDPOINT_GONE)


def test_redirect_is_a_failure_that_says_it_was_not_followed() -> None:
    assert "not followed" in classify_response(301, None).reason


def test_blocked_destination_is_final_and_keeps_the_reason() -> None:
    reason = "blocked: 10.0.0.1 is a private address (not in WEBHOOK_ALLOWED_CIDRS)"
    verdict = classify_response(None, reason, blocked=True)
    assert verdict.outcome is DeliveryOutcome.BLOCKED
    assert not verdict.should_retry
    assert not verdict.transient
    assert verdict.reason == reason


def test_throttle_carries_retry_after() -> None:
    verdict = classify_response(429, None, retry_after=timedelta(seconds=30))
    assert verdict.retry_after == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("120", timedelta(seconds=120)),
        (" 0 ", timedelta(0)),
        ("Sun, 07 Sep 2025 20:06:02 GMT", timedelta(seconds=60)),
        ("Sun, 07 Sep 2025 20:00:00 GMT", timedelta(0)),  # in the past: now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("99999999999999999999", timedelta(seconds=10**9)),
    ],
)
def test_retry_after_parsing(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_hyperswitch_schedule_is_sixteen_retries_over_about_a_day() -> None:
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    assert HYPERSWITCH_RETRY_SCHEDULE.delays == (
        (minute,) + (5 * minute,) * 2 + (10 * minute,) * 5 + (hour,) * 5 + (6 * hour,) * 3
    )
    assert HYPERSWITCH_RETRY_SCHEDULE.max_retries == 16
    assert HYPERSWITCH_RETRY_SCHEDULE.total == timedelta(hours=23, minutes=61)


def test_next_retry_delay_walks_the_schedule_then_retries_are_exceeded() -> None:
    delays = [next_retry_delay(index) for index in range(17)]
    assert delays[:16] == list(HYPERSWITCH_RETRY_SCHEDULE.delays)
    assert delays[16] is None


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (None, timedelta(seconds=60)),
        (timedelta(0), timedelta(seconds=60)),  # never earlier than the schedule
        (timedelta(seconds=10), timedelta(seconds=60)),
        (timedelta(minutes=30), timedelta(minutes=30)),  # honoured
        (timedelta(days=3), timedelta(hours=6)),  # bounded
    ],
)
def test_retry_after_only_pushes_the_retry_later_within_bounds(
    retry_after: timedelta | None, expected: timedelta
) -> None:
    assert next_retry_delay(0, retry_after=retry_after) == expected


def test_schedule_is_configurable() -> None:
    schedule = RetrySchedule.from_seconds([1, 2], max_retry_after_seconds=5)
    assert next_retry_delay(0, schedule) == timedelta(seconds=1)
    assert next_retry_delay(1, schedule, retry_after=timedelta(minutes=1)) == timedelta(seconds=5)
    assert next_retry_delay(2, schedule) is None
    assert next_retry_delay(0, RetrySchedule(delays=())) is None  # deliver once (Hyperswitch v2)
    with pytest.raises(ValueError):
        RetrySchedule.from_seconds([-1])


@given(
    delays=st.lists(st.integers(min_value=0, max_value=10**6), max_size=30),
    index=st.integers(min_value=0, max_value=40),
    retry_after=st.none() | st.integers(min_value=0, max_value=10**7).map(lambda s: timedelta(seconds=s)),
)
def test_next_retry_delay_is_bounded_and_stops(delays: list[int], index: int, retry_after: timedelta | None) -> None:
    schedule = RetrySchedule.from_seconds(delays, max_retry_after_seconds=3600)
    delay = next_retry_delay(index, schedule, retry_after)
    if index >= len(delays):
        assert delay is None
        return
    base = timedelta(seconds=delays[index])
    assert delay is not None
    assert delay >= base
    assert delay <= max(base, schedule.max_retry_after)
