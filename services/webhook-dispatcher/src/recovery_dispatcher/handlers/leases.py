"""The leases this dispatcher process holds on the events it delivers, and the events it is delivering now."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta

from recovery_dispatcher.domain.event import Claim


class DeliveryLeases:
    """`owner` names this process in leases (host names repeat across processes on one machine); `duration` is
    how long it may hold an event it is delivering before another dispatcher may take it over."""

    def __init__(self, owner: str, duration: timedelta) -> None:
        self.owner = owner
        self.duration = duration
        # Idempotent ids of the events this process claimed and is delivering now.
        self._delivering: set[str] = set()

    def until(self, now: datetime) -> datetime:
        return now + self.duration

    @contextlib.contextmanager
    def delivering(self, idempotent_id: str) -> Iterator[None]:
        self._delivering.add(idempotent_id)
        try:
            yield
        finally:
            self._delivering.discard(idempotent_id)

    def may_take_over(self, claim: Claim, now: datetime) -> bool:
        """A claim whose event is not recorded is free when its lease ran out (the dispatcher that claimed it
        died), or at once when it is this process's and no delivery here holds it (its delivery failed before
        recording: a database outage)."""
        orphaned_here = claim.lease_owner == self.owner and claim.idempotent_event_id not in self._delivering
        return claim.lease_until is None or claim.lease_until <= now or orphaned_here
