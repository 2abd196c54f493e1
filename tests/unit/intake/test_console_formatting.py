"""How the console writes money, rates and durations."""

from __future__ import annotations

import pytest

from recovery_intake.console.formatting import currency_exponent, duration, major_units, percentage, timestamp


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (9000, "USD", "USD 90.00"),
        (2250, "usd", "USD 22.50"),
        (5, "EUR", "EUR 0.05"),
        (0, "GBP", "GBP 0.00"),
        (1234567, "USD", "USD 12,345.67"),
        (500, "JPY", "JPY 500"),
        (1500, "KRW", "KRW 1,500"),
        (12345, "KWD", "KWD 12.345"),
        (1000, "BHD", "BHD 1.000"),
        (10000, "CLF", "CLF 1.0000"),
        (-250, "USD", "USD -2.50"),
    ],
)
def test_minor_units_are_shown_in_major_units_with_the_currency(minor: int, currency: str, shown: str) -> None:
    assert major_units(minor, currency) == shown


def test_exponents_follow_iso_4217() -> None:
    assert [currency_exponent(c) for c in ("USD", "JPY", "KWD", "EUR", "VND", "TND")] == [2, 0, 3, 2, 0, 3]


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(2 / 3, "66.7%"), (1.0, "100.0%"), (0.0, "0.0%"), (0.0005, "0.1%"), (0.12345, "12.3%"), (None, "—")],
)
def test_rates_are_percentages_with_one_decimal(rate: float | None, shown: str) -> None:
    assert percentage(rate) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "—"), (0, "0 s"), (42, "42 s"), (90, "1 min"), (5400, "1 h 30 min"), (3 * 86_400 + 7200, "3 d 2 h")],
)
def test_durations(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


def test_timestamps_are_utc() -> None:
    assert timestamp("2026-12-03T14:05:09.123Z") == "2026-12-03 14:05:09 UTC"
    assert timestamp("2026-12-03T15:05:09+01:00") == "2026-12-03 14:05:09 UTC"
    assert timestamp(None) == "—"
    assert timestamp("not a time") == "not a time"
