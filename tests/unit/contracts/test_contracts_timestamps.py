"""Hyperswitch's timestamp format (`2025-09-07T20:02:09.947Z`) for every kind of datetime the services hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from recovery_contracts.timestamps import format_ms


def test_utc_milliseconds_truncated_with_z() -> None:
    assert format_ms(datetime(2025, 9, 7, 20, 2, 9, 947_999, tzinfo=UTC)) == "2025-09-07T20:02:09.947Z"
    assert format_ms(datetime(2025, 9, 7, 20, 2, 9, tzinfo=UTC)) == "2025-09-07T20:02:09.000Z"


def test_other_offsets_are_converted_and_naive_values_are_utc() -> None:
    paris = timezone(timedelta(hours=2))
    assert format_ms(datetime(2025, 9, 7, 22, 2, 9, 5_000, tzinfo=paris)) == "2025-09-07T20:02:09.005Z"
    assert format_ms(datetime(2025, 9, 7, 20, 2, 9, 5_000)) == "2025-09-07T20:02:09.005Z"


def test_years_before_1000_keep_four_digits() -> None:
    assert format_ms(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05.000Z"


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
    )
)
def test_the_same_text_as_fields_formatted_one_by_one(moment: datetime) -> None:
    utc = moment.astimezone(UTC)
    expected = f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"
    assert format_ms(moment) == expected
