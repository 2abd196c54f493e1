"""Time arithmetic every algorithm shares: jitter, the retry window, payday slots."""

from __future__ import annotations

import calendar
import random
from datetime import date, datetime, time, timedelta

from .config import RetryConfig
from .model import RecoveryView


def draw_jitter(config: RetryConfig, rng: random.Random) -> timedelta:
    """A whole number of seconds in [min_jitter, max_jitter], as Hyperswitch's random schedule delay."""
    low = int(config.min_jitter.total_seconds())
    high = int(config.max_jitter.total_seconds())
    return timedelta(seconds=rng.randint(low, max(low, high)))


def window_end(view: RecoveryView, config: RetryConfig) -> datetime:
    return view.created_at + config.retry_window


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


def next_payday_slot(earliest: datetime, hour_utc: int) -> datetime:
    """The first payday at `hour_utc` (UTC) at or after `earliest`."""
    year, month = earliest.year, earliest.month
    while True:
        for day in paydays(year, month):
            slot = datetime.combine(day, time(hour_utc), tzinfo=earliest.tzinfo)
            if slot >= earliest:
                return slot
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
