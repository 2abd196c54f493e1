"""Time as a dependency: services read the clock only through a `Clock`, so tests and the demo can bend it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class TimeScale:
    """Maps schedule durations (seconds of business time) to wall-clock durations: divide by the scale."""

    def __init__(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale

    def wall(self, business: timedelta) -> timedelta:
        return business / self.scale

    def business(self, wall: timedelta) -> timedelta:
        return wall * self.scale
