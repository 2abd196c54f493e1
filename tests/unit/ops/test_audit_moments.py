"""How `recovery audit --since/--until` read a time: ISO 8601 (UTC where it names no offset; a date is its first
moment, for --until its last) or an age before now; anything else is refused in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from recovery_cli.audit_trail import TrailQuery, moment_of
from recovery_cli.main import main

NOW = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("7d", NOW - timedelta(days=7)),
        ("0m", NOW),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T09:30", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01T09:30:00.250Z", datetime(2026, 12, 1, 9, 30, 0, 250000, tzinfo=UTC)),
        ("2026-12-01T10:30+01:00", datetime(2026, 12, 1, 10, 30, tzinfo=timezone(timedelta(hours=1)))),
    ],
)
def test_a_time_or_an_age_before_now(text: str, expected: datetime) -> None:
    assert moment_of(text, NOW) == expected
    assert moment_of(text, NOW).tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "12", "1w", "-3h", "3 h", "2026-13-01", ""])
def test_anything_else_is_refused_in_words(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected an ISO 8601 time .* or an age"):
        moment_of(text, NOW)


@pytest.mark.parametrize("text", ["2026-12-01", "20261201"])
def test_a_date_alone_ends_at_its_last_moment_for_until(text: str) -> None:
    assert moment_of(text, NOW, day_ends=True) == datetime(2026, 12, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert moment_of(text, NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    # A time, or an age, is that moment either way.
    assert moment_of("2026-12-01T00:00", NOW, day_ends=True) == datetime(2026, 12, 1, tzinfo=UTC)
    assert moment_of("3h", NOW, day_ends=True) == NOW - timedelta(hours=3)


def test_a_time_with_no_utc_time_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="is outside the calendar once in UTC"):
        moment_of("0001-01-01T00:00:00+01:00", NOW)


def test_an_age_further_back_than_any_time_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="'99999999d' is further back than any time"):
        moment_of("99999999d", NOW)


def test_the_window_goes_to_the_api_in_its_format() -> None:
    query = TrailQuery(since=datetime(2026, 12, 1, 10, 30, tzinfo=timezone(timedelta(hours=1))), until=NOW)
    params = query.params(20, None)
    assert params["created_after"] == "2026-12-01T09:30:00.000Z"
    assert params["created_before"] == "2026-12-06T09:30:00.000Z"
    assert "created_after" not in TrailQuery().params(20, None)


def test_the_command_line_refuses_a_time_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["audit", "--intake-url", "http://127.0.0.1:1", "--since", "last week"])
    assert ended.value.code == 2
    assert "--since: expected an ISO 8601 time" in capsys.readouterr().err
