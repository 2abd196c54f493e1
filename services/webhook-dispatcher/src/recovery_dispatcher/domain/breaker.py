"""Per-endpoint circuit breaker: sustained failure pauses deliveries to a URL, one probe at a time tests it.

Pure: the caller passes the time. Closed -> open after `failure_threshold` consecutive failed deliveries;
open -> half-open once `cooldown` has passed (one probe delivery is let through); a probe that succeeds closes
the circuit (the held backlog drains), one that fails opens it again with the cooldown doubled, up to
`max_cooldown`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int = 5
    cooldown: timedelta = timedelta(seconds=30)
    max_cooldown: timedelta = timedelta(minutes=10)
    # A probe that never reports back (the process died) frees the half-open slot after this long.
    probe_timeout: timedelta = timedelta(seconds=60)


@dataclass(slots=True)
class CircuitBreaker:
    policy: BreakerPolicy
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    cooldown: timedelta | None = None
    probe_started_at: datetime | None = None

    def retry_at(self) -> datetime | None:
        """When a held delivery should come back (the end of the cooldown); None while closed."""
        if self.opened_at is None or self.cooldown is None:
            return None
        return self.opened_at + self.cooldown

    def hold_until(self, now: datetime) -> datetime:
        """When a delivery the circuit refused comes back: the end of the cooldown, and never sooner than a
        quarter of the first cooldown (the deliveries refused while one probe is out)."""
        return max(self.retry_at() or now, now + self.policy.cooldown / 4)

    def allow(self, now: datetime) -> bool:
        """May a delivery go out now? In half-open state only the one probe may."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            retry_at = self.retry_at()
            if retry_at is not None and now >= retry_at:
                self.state = CircuitState.HALF_OPEN
                self.probe_started_at = now
                return True
            return False
        # Half-open: a probe is out; let another through only if that one went silent.
        if self.probe_started_at is not None and now - self.probe_started_at >= self.policy.probe_timeout:
            self.probe_started_at = now
            return True
        return False

    def record_success(self) -> None:
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self.opened_at = None
        self.cooldown = None
        self.probe_started_at = None

    def record_failure(self, now: datetime) -> bool:
        """Count a failed delivery; True when this failure opened (or re-opened) the circuit."""
        self.consecutive_failures += 1
        if self.state is CircuitState.HALF_OPEN:
            previous = self.cooldown or self.policy.cooldown
            self._open(now, min(previous * 2, self.policy.max_cooldown))
            return True
        if self.state is CircuitState.CLOSED and self.consecutive_failures >= self.policy.failure_threshold:
            self._open(now, self.policy.cooldown)
            return True
        return False

    def _open(self, now: datetime, cooldown: timedelta) -> None:
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.cooldown = cooldown
        self.probe_started_at = None
