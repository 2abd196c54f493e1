"""The customer's local time and calendar, from the billing address country: smart aims retries of customer-funded
declines at the customer's daytime and at the morning of their paydays, not at a fixed UTC hour (14:00 UTC is
midnight in Sydney), each card at its own minute of that morning. Depends on nothing else in the domain."""

from __future__ import annotations

import calendar
import zlib
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

# Standard UTC offset (hours) of each country's main population centre, for the card markets a merchant sees most.
# Daylight saving is ignored: an hour off for half the year does not move a retry out of the day. A country not
# listed (or no billing country) gets no local adjustment: smart then falls back to `payday_hour_utc`.
UTC_OFFSET_HOURS: Mapping[str, float] = {
    "US": -5, "CA": -5, "MX": -6, "BR": -3, "AR": -3, "CL": -4, "CO": -5, "PE": -5,
    "GB": 0, "IE": 0, "PT": 0, "IS": 0,
    "DE": 1, "FR": 1, "ES": 1, "IT": 1, "NL": 1, "BE": 1, "LU": 1, "AT": 1, "CH": 1, "SE": 1, "NO": 1, "DK": 1,
    "PL": 1, "CZ": 1, "SK": 1, "HU": 1, "HR": 1, "SI": 1,
    "FI": 2, "EE": 2, "LV": 2, "LT": 2, "GR": 2, "RO": 2, "BG": 2, "UA": 2, "IL": 2, "ZA": 2, "EG": 2,
    "TR": 3, "SA": 3, "KE": 3, "AE": 4, "PK": 5, "IN": 5.5, "BD": 6, "TH": 7, "VN": 7, "ID": 7,
    "SG": 8, "MY": 8, "PH": 8, "CN": 8, "HK": 8, "TW": 8, "JP": 9, "KR": 9, "AU": 10, "NZ": 12, "NG": 1,
}  # fmt: skip


def utc_offset(country: str | None) -> timedelta | None:
    """The customer's UTC offset from an ISO 3166 alpha-2 country, or None when unknown."""
    hours = UTC_OFFSET_HOURS.get((country or "").strip().upper())
    return None if hours is None else timedelta(hours=hours)


def in_daytime(at: datetime, offset: timedelta, start_hour: int, end_hour: int) -> datetime:
    """`at`, or the next `start_hour` at the customer when `at` falls outside [start_hour, end_hour) local time."""
    local = at + offset
    if start_hour <= local.hour < end_hour:
        return at
    morning = datetime.combine(local.date(), time(start_hour), tzinfo=local.tzinfo)
    if morning < local:
        morning += timedelta(days=1)
    return morning - offset


def _next_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _last_business_day(year: int, month: int) -> date:
    day = date(year, month, calendar.monthrange(year, month)[1])
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def paydays(year: int, month: int) -> tuple[date, ...]:
    """The 1st and the 15th (next business day when on a weekend) and the last business day of a month."""
    return tuple(
        sorted(
            {
                _next_weekday(date(year, month, 1)),
                _next_weekday(date(year, month, 15)),
                _last_business_day(year, month),
            }
        )
    )


def morning_spread(token: str, spread: timedelta) -> timedelta:
    """Where in a morning's spread this card's retries go: a whole minute of it, the same on every plan of the card
    (CRC-32 of the token, not Python's salted hash), so that a merchant's retries aimed at a payday's hour or at the
    daytime's start reach the connector spread over the morning instead of in one minute."""
    minutes = int(spread.total_seconds() // 60)
    return timedelta(minutes=zlib.crc32(token.encode()) % minutes) if minutes else timedelta(0)


def next_payday_slot(earliest: datetime, hour_utc: int) -> datetime:
    """The first payday at `hour_utc` (UTC) at or after `earliest`."""
    year, month = earliest.year, earliest.month
    while True:
        for day in paydays(year, month):
            slot = datetime.combine(day, time(hour_utc), tzinfo=earliest.tzinfo)
            if slot >= earliest:
                return slot
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
