"""In-memory stand-ins for the dispatcher's adapters, with the same claim, lease and compare-and-set rules as the
MongoDB ones, a sender that answers from a script, and the dispatcher built around them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from faststream.rabbit import RabbitBroker

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_contracts.envelope import Envelope
from recovery_contracts.messages import ProfileUpdated
from recovery_dispatcher.app import DispatcherAdapters, build_service
from recovery_dispatcher.dependencies import HeadersForAttempt
from recovery_dispatcher.domain.attempt import DeliveryResult
from recovery_dispatcher.domain.breaker import CircuitBreaker, EndpointKey
from recovery_dispatcher.domain.endpoint import Endpoint, switched_off
from recovery_dispatcher.domain.event import Claim, DuplicateEvent, EarlierEvent, WebhookEvent
from recovery_dispatcher.domain.policy import classify_response
from recovery_dispatcher.domain.status import FINAL_STATUSES, EventStatus
from recovery_dispatcher.settings import DispatcherSettings
from recovery_runtime.secrets import SecretBox
from recovery_runtime.service import Service
from recovery_runtime.testing import FixedClock, InMemoryUnitOfWork, RecordingPublisher, publish

from .messages import MASTER_KEY


@dataclass(frozen=True)
class AttemptRecord:
    """An attempt as the fake records it: which event, which kind, what came back."""

    event_id: str
    kind: WebhookDeliveryAttempt
    status_code: int | None


class InMemoryEvents:
    """Claims numbered within their payment, records by key; `take` and `take_claim` compare and set."""

    def __init__(self) -> None:
        self.claims: dict[str, Claim] = {}
        self.records: dict[str, WebhookEvent] = {}
        self.attempts: list[AttemptRecord] = []

    # -- what another dispatcher did meanwhile --------------------------------------------------------

    def claimed_elsewhere(self, event: WebhookEvent, *, lease_until: datetime | None) -> WebhookEvent:
        """Store `event`'s claim as another dispatcher would have (leased to it until `lease_until`)."""
        numbered = event.numbered(self._next_number(event.payment_id))
        self._store_claim(replace(numbered, lease_until=lease_until, lease_owner="another-dispatcher"))
        return numbered

    def recorded_elsewhere(self, event: WebhookEvent) -> None:
        self.records[event.key] = event

    # -- EventRepository ------------------------------------------------------------------------------

    async def claim(self, event: WebhookEvent) -> WebhookEvent:
        if any(c.idempotent_event_id == event.idempotent_event_id for c in self.claims.values()):
            raise DuplicateEvent(event.idempotent_event_id)
        numbered = event.numbered(self._next_number(event.payment_id))
        self._store_claim(numbered)
        return numbered

    def _next_number(self, payment_id: str) -> int:
        return 1 + sum(1 for c in self.claims.values() if c.payment_id == payment_id)

    def _store_claim(self, event: WebhookEvent) -> None:
        key = f"{event.payment_id}#{event.sequence}"
        self.claims[key] = Claim(
            key=key,
            idempotent_event_id=event.idempotent_event_id,
            event_id=event.event_id,
            payment_id=event.payment_id,
            created_at=event.created_at,
            body=event.body,
            sequence=event.sequence,
            lease_until=event.lease_until,
            lease_owner=event.lease_owner,
        )

    async def claim_of(self, payment_id: str, idempotent_id: str) -> Claim | None:
        return next(
            (c for c in self.claims.values() if c.payment_id == payment_id and c.idempotent_event_id == idempotent_id),
            None,
        )

    async def claimed(self, payment_id: str, idempotent_ids: list[str]) -> set[str]:
        wanted = set(idempotent_ids)
        return {c.idempotent_event_id for c in self.claims.values() if c.payment_id == payment_id} & wanted

    async def take_claim(self, claim: Claim, lease_until: datetime, owner: str) -> bool:
        current = self.claims.get(claim.key)
        if current is None or current.lease_until != claim.lease_until:
            return False
        self.claims[claim.key] = replace(current, lease_until=lease_until, lease_owner=owner)
        return True

    async def load(self, merchant_id: str, event_id: str) -> WebhookEvent | None:
        return next((e for e in self.records.values() if e.merchant_id == merchant_id and e.event_id == event_id), None)

    async def load_initial(self, merchant_id: str, event_id: str) -> WebhookEvent | None:
        return await self.load(merchant_id, event_id)

    async def take(
        self,
        event: WebhookEvent,
        from_statuses: tuple[EventStatus, ...],
        now: datetime,
        lease_until: datetime,
        owner: str,
    ) -> bool:
        current = self.records.get(event.key)
        if current is None or current.retry_index != event.retry_index:
            return False
        expired = current.status is EventStatus.DELIVERING and (current.lease_until or now) < now
        if current.status not in from_statuses and not expired:
            return False
        self.records[event.key] = current.leased(lease_until, owner)
        return True

    async def earlier_unfinished(self, event: WebhookEvent) -> EarlierEvent | None:
        earlier = sorted(
            (c for c in self.claims.values() if c.payment_id == event.payment_id and c.sequence < event.sequence),
            key=lambda c: c.sequence,
        )
        for claim in earlier:
            record = await self.load(event.merchant_id, claim.event_id)
            if record is None:
                return EarlierEvent(claim.event_id, claim.sequence, None)
            if record.status not in FINAL_STATUSES:
                return EarlierEvent(record.event_id, record.sequence, record.next_retry_at)
        return None

    async def insert(self, event: WebhookEvent) -> None:
        if event.key in self.records:
            raise DuplicateEvent(event.idempotent_event_id)
        self.records[event.key] = event

    async def update(self, before: WebhookEvent, after: WebhookEvent, session: Any) -> bool:
        current = self.records.get(after.key)
        if current is not None and current.status is EventStatus.DELIVERED:
            return False
        self.records[after.key] = after
        return True

    async def reopen(self, before: WebhookEvent, after: WebhookEvent, session: Any) -> bool:
        current = self.records.get(after.key)
        if current is None or current.status is not EventStatus.FAILED:
            return False
        self.records[after.key] = after
        return True

    async def record_attempts(
        self, before: WebhookEvent, after: WebhookEvent, results: Sequence[DeliveryResult], *, recorded: bool
    ) -> None:
        for number, result in enumerate(results):
            kind = before.first_attempt_kind if number == 0 else WebhookDeliveryAttempt.AUTOMATIC_RETRY
            self.attempts.append(AttemptRecord(after.event_id, kind, result.status_code))
        self.records[after.key] = after

    async def record_manual_attempt(
        self, before: WebhookEvent, after: WebhookEvent, result: DeliveryResult
    ) -> dict[str, Any]:
        self.attempts.append(AttemptRecord(after.event_id, WebhookDeliveryAttempt.MANUAL_RETRY, result.status_code))
        self.records[after.key] = after
        return {"event_id": after.event_id, "delivery_attempt": WebhookDeliveryAttempt.MANUAL_RETRY.value}

    async def close(self) -> None:
        return None

    def initial_events(self) -> list[WebhookEvent]:
        return list(self.records.values())


@dataclass
class HandlerQueries:
    """The events API's reads, unused by the handlers' tests but the recover's: the failed events of `events`."""

    events: InMemoryEvents

    async def failed_since(
        self, merchant_id: str, since: datetime, until: datetime, profile_id: str | None, after: str | None, limit: int
    ) -> list[WebhookEvent]:
        failed = sorted(
            (
                e
                for e in self.events.records.values()
                if e.merchant_id == merchant_id
                and e.status is EventStatus.FAILED
                and since <= e.created_at <= until
                and profile_id in (None, e.profile_id)
                and (after is None or e.event_id > after)
            ),
            key=lambda e: e.event_id,
        )
        return failed[:limit]

    async def event_ids_of_payment(self, payment_id: str) -> list[str]:
        return []

    async def attempts_of(self, merchant_id: str, initial_event_id: str) -> list[dict[str, Any]]:
        return []

    async def list_initial(
        self, merchant_id: str, query: dict[str, Any], offset: int, limit: int, **bounds: Any
    ) -> Any:
        return [], 0, False


@dataclass
class RecordQueries:
    """The events API's reads over initial records (`docs`, as the repository writes them), matching the list's
    filters as MongoDB would (a value, or `$in` a list); `filters` keeps every list query asked."""

    docs: list[dict[str, Any]]
    filters: list[dict[str, Any]] = field(default_factory=list)

    async def event_ids_of_payment(self, payment_id: str) -> list[str]:
        return [d["event_id"] for d in self.docs if d["payment_id"] == payment_id]

    async def attempts_of(self, merchant_id: str, initial_event_id: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["merchant_id"] == merchant_id and d["event_id"] == initial_event_id]

    async def list_initial(
        self, merchant_id: str, query: dict[str, Any], offset: int, limit: int, **bounds: Any
    ) -> tuple[list[dict[str, Any]], int, bool]:
        self.filters.append(query)
        found = sorted((d for d in self.docs if _matches(d, query)), key=lambda d: d["_id"], reverse=True)
        return found[offset : offset + limit], len(found), len(found) > offset + limit


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    def holds(value: Any, condition: Any) -> bool:
        return value in condition["$in"] if isinstance(condition, dict) else bool(value == condition)

    return all(holds(doc.get(name), condition) for name, condition in query.items())


class InMemoryEndpoints:
    """Profiles' endpoints by profile id, stored as `profile.updated` carried them (secrets sealed) and read with
    them opened, as the MongoDB repository does; a profile version applies only when newer."""

    def __init__(self, box: SecretBox = MASTER_KEY) -> None:
        self.endpoints: dict[str, Endpoint] = {}
        self.versions: dict[str, int] = {}
        self._box = box

    async def get(self, profile_id: str) -> Endpoint | None:
        stored = self.endpoints.get(profile_id)
        return None if stored is None else stored.opened(self._box.open_if_sealed)

    async def apply(self, update: ProfileUpdated, session: Any) -> bool:
        if self.versions.get(update.profile_id, 0) >= update.version:
            return False
        self.versions[update.profile_id] = update.version
        schedule = update.webhook_retry_schedule_seconds
        self.endpoints[update.profile_id] = Endpoint(
            profile_id=update.profile_id,
            merchant_id=update.merchant_id,
            url=update.webhook_url,
            enabled=update.webhooks_enabled,
            hash_key=update.payment_response_hash_key,
            whsec_secrets=tuple(update.standard_webhooks_secrets),
            custom_headers=dict(update.custom_headers),
            retry_schedule_seconds=tuple(schedule) if schedule is not None else None,
            disabled_event_types=frozenset(switched_off(update)),
            max_deliveries_per_second=update.webhook_max_deliveries_per_second,
        )
        return True

    def forget(self, profile_id: str) -> None:
        return None

    async def disable(self, profile_id: str, reason: str, session: Any = None) -> bool:
        endpoint = self.endpoints.get(profile_id)
        if endpoint is None or endpoint.disabled_reason is not None:
            return False
        self.endpoints[profile_id] = replace(endpoint, disabled_reason=reason)
        return True

    async def mark_failing(self, profile_id: str, since: datetime) -> None:
        endpoint = self.endpoints[profile_id]
        if endpoint.failing_since is None:
            self.endpoints[profile_id] = replace(endpoint, failing_since=since)

    async def mark_healthy(self, profile_id: str) -> None:
        self.endpoints[profile_id] = replace(self.endpoints[profile_id], failing_since=None)


class InMemoryBreakers:
    """Breakers by (profile, URL), compare-and-set on their version as the `endpoint_health` collection; `saves`
    counts the writes (a healthy endpoint must cost none)."""

    def __init__(self) -> None:
        self.breakers: dict[EndpointKey, CircuitBreaker] = {}
        self.slow: dict[EndpointKey, int] = {}
        self.saves = 0
        # What another dispatcher does just before this one's compare-and-set (a race), when set.
        self.before_save: Callable[[EndpointKey, CircuitBreaker, CircuitBreaker, datetime], None] | None = None

    async def get(self, key: EndpointKey, *, fresh: bool = False) -> CircuitBreaker:
        return self.breakers.get(key) or CircuitBreaker()

    async def save(
        self, key: EndpointKey, before: CircuitBreaker, after: CircuitBreaker, now: datetime
    ) -> CircuitBreaker | None:
        if self.before_save is not None:
            self.before_save(key, before, after, now)
        if (self.breakers.get(key) or CircuitBreaker()).version != before.version:
            return None
        self.saves += 1
        saved = self.breakers[key] = replace(after, version=before.version + 1)
        return saved

    async def count_slow(self, key: EndpointKey, now: datetime) -> None:
        self.slow[key] = self.slow.get(key, 0) + 1


@dataclass(frozen=True)
class SentRequest:
    url: str
    body: bytes
    headers: dict[str, str]


class ScriptedSender:
    """Records every request and answers with the scripted statuses in order (200 once the script runs out).
    One attempt per delivery (in-process retries are the real sender's, tested against HTTP). While `gate` is
    set, a request waits until it is opened; a URL in `gates` waits for its own gate (a slow endpoint)."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.statuses: list[int] = []
        self.requests: list[SentRequest] = []
        self.gate: asyncio.Event | None = None
        self.gates: dict[str, asyncio.Event] = {}
        self.requested = asyncio.Event()
        # How long each answer takes, as the attempt records it.
        self.duration_ms = 1

    def answer(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    def sent_to(self, url: str) -> list[SentRequest]:
        return [request for request in self.requests if request.url == url]

    async def send(self, url: str, body: bytes, headers: Sequence[tuple[str, str]]) -> DeliveryResult:
        self.requests.append(SentRequest(url, body, {name.lower(): value for name, value in headers}))
        self.requested.set()
        gate = self.gates.get(url, self.gate)
        if gate is not None:
            await gate.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return DeliveryResult(
            url=url,
            request_headers=tuple(headers),
            started_at=self.clock.now(),
            duration_ms=self.duration_ms,
            status_code=status,
            response_headers=(),
            response_body="",
            response_body_truncated=False,
            error_message=None,
            verdict=classify_response(status, None),
        )

    async def send_with_retries(
        self, url: str, body: bytes, headers_for_attempt: HeadersForAttempt
    ) -> list[DeliveryResult]:
        return [await self.send(url, body, headers_for_attempt(1))]

    async def aclose(self) -> None:
        return None


@dataclass
class Dispatcher:
    """The dispatcher service on in-memory adapters, and those adapters to arrange and inspect."""

    service: Service
    events: InMemoryEvents
    endpoints: InMemoryEndpoints
    breakers: InMemoryBreakers
    sender: ScriptedSender
    published: RecordingPublisher
    clock: FixedClock
    settings: DispatcherSettings = field(repr=False)
    broker: RabbitBroker | None = None

    async def send(self, queue_name: str, envelope: Envelope[Any] | bytes) -> None:
        """Publish to a queue of the dispatcher as a producer would; returns once it is handled."""
        assert self.broker is not None, "under TestRabbitBroker only"
        await publish(self.broker, queue_name, envelope)


def in_memory_dispatcher(**settings: Any) -> Dispatcher:
    clock = FixedClock()
    publisher = RecordingPublisher()
    events, endpoints, breakers, sender = (
        InMemoryEvents(),
        InMemoryEndpoints(),
        InMemoryBreakers(),
        ScriptedSender(clock),
    )
    adapters = DispatcherAdapters(
        events=events,
        queries=HandlerQueries(events),
        endpoints=endpoints,
        breakers=breakers,
        sender=sender,
        unit_of_work=InMemoryUnitOfWork(publisher),
        publisher=publisher,
        clock=clock,
    )
    configured = DispatcherSettings(service_instance_id="dispatcher-1", **settings)
    service = build_service(configured, adapters)
    return Dispatcher(service, events, endpoints, breakers, sender, publisher, clock, configured)
