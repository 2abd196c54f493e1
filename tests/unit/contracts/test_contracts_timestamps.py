"""Hyperswitch's timestamp format (`2025-09-07T20:02:09.947Z`) for every kind of datetime the services hold, and
every time read held in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from recovery_contracts.timestamps import UtcMillis, format_ms, in_utc


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


def test_a_time_read_is_held_in_utc_and_one_without_a_utc_time_is_refused() -> None:
    paris = timezone(timedelta(hours=2))
    held = TypeAdapter(UtcMillis)
    assert held.validate_python(datetime(2025, 9, 7, 22, 2, 9, tzinfo=paris)) == datetime(
        2025, 9, 7, 20, 2, 9, tzinfo=UTC
    )
    assert held.validate_python("2025-09-07T22:02:09+02:00").tzinfo is UTC
    assert held.validate_python("2025-09-07T20:02:09").tzinfo is UTC
    summer_in_paris = datetime(2025, 9, 7, 22, 2, 9, tzinfo=ZoneInfo("Europe/Paris"))  # an offset that varies
    assert held.validate_python(summer_in_paris) == datetime(2025, 9, 7, 20, 2, 9, tzinfo=UTC)
    assert held.validate_python(summer_in_paris).tzinfo is UTC
    already = datetime(2025, 9, 7, 20, 2, 9, tzinfo=UTC)
    assert in_utc(already) is already
    for edge in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(ValidationError, match="is outside the calendar once in UTC"):
            held.validate_python(edge)
    # The calendar's ends themselves, in UTC, are times like any other.
    assert held.validate_python("0001-01-01T00:00:00Z") == datetime(1, 1, 1, tzinfo=UTC)
    assert held.validate_python("9999-12-31T23:59:59-00:00") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
