"""A simulated clock: time moves only when the simulation moves it, and never backwards."""

from __future__ import annotations

from datetime import datetime


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock runs in timezone-aware UTC")
        self._now = start

    @property
    def now(self) -> datetime:
        return self._now

    def advance_to(self, at: datetime) -> datetime:
        """Move to `at` (a timer firing); a time in the past leaves the clock where it is."""
        if at > self._now:
            self._now = at
        return self._now
