"""What the handlers need of the outside world, as small protocols (MongoDB, aiohttp and in-process state in
production, in-memory fakes in unit tests). `session` is the unit of work's transaction (None in memory)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from recovery_contracts.messages import ProfileUpdated
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.breaker import CircuitBreaker, EndpointKey
from recovery_dispatcher.domain.endpoint import Endpoint
from recovery_dispatcher.domain.endpoint_status import EndpointStatus
from recovery_dispatcher.domain.event import Claim, EarlierEvent, WebhookEvent
from recovery_dispatcher.domain.fairness import Busy
from recovery_dispatcher.domain.status import EventStatus

HeadersForAttempt = Callable[[int], Sequence[tuple[str, str]]]


class EventRepository(Protocol):
    """Webhook events: their claims (one per event, numbered within its payment) and their records."""

    async def claim(self, event: WebhookEvent) -> WebhookEvent:
        """The event numbered; raises DuplicateEvent when it is claimed already."""
        ...

    async def claim_of(self, payment_id: str, idempotent_id: str) -> Claim | None: ...

    async def claimed(self, payment_id: str, idempotent_ids: list[str]) -> set[str]:
        """Which of these initial events of the payment are claimed (one read)."""
        ...

    async def take_claim(self, claim: Claim, lease_until: datetime, owner: str) -> bool: ...

    async def load(self, merchant_id: str, event_id: str) -> WebhookEvent | None: ...

    async def load_initial(self, merchant_id: str, event_id: str) -> WebhookEvent | None: ...

    async def take(
        self,
        event: WebhookEvent,
        from_statuses: tuple[EventStatus, ...],
        now: datetime,
        lease_until: datetime,
        owner: str,
    ) -> bool: ...

    async def earlier_unfinished(self, event: WebhookEvent) -> EarlierEvent | None: ...

    async def insert(self, event: WebhookEvent) -> None:
        """Raises DuplicateEvent when the event is recorded already."""
        ...

    async def update(self, before: WebhookEvent, after: WebhookEvent, session: Any) -> bool:
        """Write the change unless the event was delivered meanwhile (compare-and-set); False when it was."""
        ...

    async def reopen(self, before: WebhookEvent, after: WebhookEvent, session: Any) -> bool:
        """Write a failed event's change if it is still failed (compare-and-set); False when it moved on."""
        ...

    async def record_attempts(
        self, before: WebhookEvent, after: WebhookEvent, results: Sequence[DeliveryResult], *, recorded: bool
    ) -> None: ...

    async def record_manual_attempt(
        self, before: WebhookEvent, after: WebhookEvent, result: DeliveryResult
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class EventQueries(Protocol):
    """What the events API reads (records as stored)."""

    async def event_ids_of_payment(self, payment_id: str) -> list[str]: ...

    async def attempts_of(self, merchant_id: str, initial_event_id: str) -> list[dict[str, Any]]: ...

    async def list_initial(
        self,
        merchant_id: str,
        query: dict[str, Any],
        offset: int,
        limit: int,
        *,
        after: datetime | None = None,
        before: datetime | None = None,
        below: str | None = None,
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """A page of the merchant's initial records, newest first, how many match (up to a cap), and whether any
        record follows the page."""
        ...

    async def failed_since(
        self, merchant_id: str, since: datetime, until: datetime, profile_id: str | None, after: str | None, limit: int
    ) -> list[WebhookEvent]:
        """The merchant's failed initial events created in [since, until] (of one profile, when given), oldest
        first, after the event id `after`."""
        ...


class EndpointStatusReads(Protocol):
    """Endpoint health as the merchant's operators read it (the internal `/internal/endpoints/{merchant_id}`)."""

    async def of_merchant(self, merchant_id: str) -> list[EndpointStatus]: ...


class EndpointRepository(Protocol):
    """Profiles' webhook endpoints (a projection of `profile.updated`) and the dispatcher's marks on them."""

    async def get(self, profile_id: str) -> Endpoint | None: ...

    async def apply(self, update: ProfileUpdated, session: Any) -> bool: ...

    def forget(self, profile_id: str) -> None: ...

    async def disable(self, profile_id: str, reason: str, session: Any = None) -> bool: ...

    async def mark_failing(self, profile_id: str, since: datetime) -> None: ...

    async def mark_healthy(self, profile_id: str) -> None: ...


class Sender(Protocol):
    """Sends a signed body; a merchant's failure is a result, never an exception."""

    async def send(self, url: str, body: bytes, headers: Sequence[tuple[str, str]]) -> DeliveryResult: ...

    async def send_with_retries(
        self, url: str, body: bytes, headers_for_attempt: HeadersForAttempt
    ) -> list[DeliveryResult]: ...

    async def aclose(self) -> None: ...


class BreakerRepository(Protocol):
    """Endpoints' circuit breakers, shared by every dispatcher (compare-and-set on their version)."""

    async def get(self, key: EndpointKey, *, fresh: bool = False) -> CircuitBreaker:
        """The breaker (a closed one when none is stored); `fresh` bypasses any cache."""
        ...

    async def save(
        self, key: EndpointKey, before: CircuitBreaker, after: CircuitBreaker, now: datetime
    ) -> CircuitBreaker | None:
        """`after` stored if the stored breaker is still `before`; None when another dispatcher changed it."""
        ...

    async def count_slow(self, key: EndpointKey, now: datetime) -> None: ...


class EndpointHealth(Protocol):
    """Per endpoint (profile, URL): whether a delivery may go now (circuit breaker), and the failing period that
    disables an endpoint."""

    async def held_until(self, key: EndpointKey, now: datetime) -> datetime | None:
        """None when a delivery to the endpoint may go now, else when to try again."""
        ...

    async def record(
        self, event: WebhookEvent, endpoint: Endpoint, results: list[DeliveryResult], now: datetime
    ) -> None:
        """Count a delivery's outcome (its last attempt's) towards the endpoint's health."""
        ...

    async def disable(self, event: WebhookEvent, endpoint: Endpoint, reason: str, now: datetime) -> None: ...


class Slot(Protocol):
    def release(self, seconds: float | None) -> None:
        """The delivery is over: it took `seconds` (None: nothing was sent)."""
        ...


class DeliverySlots(Protocol):
    """The in-flight bounds (per endpoint, per merchant, prompt and slow endpoints) and the endpoint's rate limit:
    a slot (at once, or after a brief wait), or until when the delivery is parked."""

    async def take(self, endpoint: Endpoint, merchant_id: str, now: datetime) -> Slot | Busy: ...
