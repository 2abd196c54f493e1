"""Per-endpoint circuit breaker: sustained failure pauses deliveries to an endpoint, one probe at a time tests it.

An endpoint is a profile's URL (`EndpointKey`): one merchant's failures never pause another's deliveries to the
same URL. The breaker is a value shared by every dispatcher (stored with a version, changed by compare-and-set);
each transition returns the new value, the caller passes the time and the policy.

Closed -> open after `failure_threshold` consecutive failed deliveries; open -> half-open once `cooldown` has
passed (one probe delivery is let through: the dispatcher that stores the half-open state sends it); a probe
that succeeds closes the circuit (the held backlog drains), one that fails opens it again with the cooldown
doubled, up to `max_cooldown`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

# (profile id, URL): whose endpoint, and where it is.
EndpointKey = tuple[str, str]


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


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """An endpoint's circuit. `version` is the stored version it was read at (0: never stored); transitions
    keep it, the repository's compare-and-set moves it on."""

    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    cooldown: timedelta | None = None
    probe_started_at: datetime | None = None
    version: int = 0

    @property
    def is_closed(self) -> bool:
        return self.state is CircuitState.CLOSED

    def retry_at(self) -> datetime | None:
        """When a held delivery should come back (the end of the cooldown); None while closed."""
        if self.opened_at is None or self.cooldown is None:
            return None
        return self.opened_at + self.cooldown

    def hold_until(self, now: datetime, policy: BreakerPolicy) -> datetime:
        """When a delivery the circuit refused comes back: the end of the cooldown, and never sooner than a
        quarter of the first cooldown (the deliveries refused while one probe is out)."""
        return max(self.retry_at() or now, now + policy.cooldown / 4)

    def admit(self, now: datetime, policy: BreakerPolicy) -> CircuitBreaker | None:
        """The breaker after letting a delivery go now: itself when that changes nothing (closed), a new state
        when the delivery is the probe (to store first: only the dispatcher whose store wins sends it), None
        when the delivery must wait (`hold_until`)."""
        if self.state is CircuitState.CLOSED:
            return self
        if self.state is CircuitState.OPEN:
            retry_at = self.retry_at()
            if retry_at is not None and now >= retry_at:
                return replace(self, state=CircuitState.HALF_OPEN, probe_started_at=now)
            return None
        # Half-open: a probe is out; let another through only if that one went silent.
        if self.probe_started_at is not None and now - self.probe_started_at >= policy.probe_timeout:
            return replace(self, probe_started_at=now)
        return None

    def succeeded(self) -> CircuitBreaker:
        """After a successful delivery: closed, the count reset (itself when it was so already)."""
        if self.state is CircuitState.CLOSED and self.consecutive_failures == 0:
            return self
        return CircuitBreaker(version=self.version)

    def failed(self, now: datetime, policy: BreakerPolicy) -> CircuitBreaker:
        """After a failed delivery: one more in the count; opened (or re-opened) when the count or the probe
        says so (`opened_by`)."""
        failures = self.consecutive_failures + 1
        if self.state is CircuitState.HALF_OPEN:
            previous = self.cooldown or policy.cooldown
            return self._opened(now, min(previous * 2, policy.max_cooldown), failures)
        if self.state is CircuitState.CLOSED and failures >= policy.failure_threshold:
            return self._opened(now, policy.cooldown, failures)
        return replace(self, consecutive_failures=failures)

    def opened_by(self, before: CircuitBreaker) -> bool:
        """Did the transition from `before` open (or re-open) the circuit?"""
        return self.state is CircuitState.OPEN and self.opened_at != before.opened_at

    def _opened(self, now: datetime, cooldown: timedelta, failures: int) -> CircuitBreaker:
        return replace(
            self,
            state=CircuitState.OPEN,
            consecutive_failures=failures,
            opened_at=now,
            cooldown=cooldown,
            probe_started_at=None,
        )
