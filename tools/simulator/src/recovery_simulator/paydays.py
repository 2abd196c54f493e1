"""Paydays at the customer: the 1st, the 15th and the last day of the month, local time."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta


def is_payday(day: int, year: int, month: int) -> bool:
    return day in (1, 15, calendar.monthrange(year, month)[1])


def next_local_payday(at: datetime, offset: timedelta) -> datetime:
    """The start of the customer's first payday (local midnight + 6 h, when wages have landed) at or after `at`,
    in UTC."""
    local = at + offset
    day = local.replace(hour=6, minute=0, second=0, microsecond=0)
    if day < local:
        day += timedelta(days=1)
    while not is_payday(day.day, day.year, day.month):
        day += timedelta(days=1)
    return day - offset
