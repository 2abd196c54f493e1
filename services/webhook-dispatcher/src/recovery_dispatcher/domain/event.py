"""The webhook event aggregate: one initial event per (primary object, event type), its delivery's state and the
transitions that move it on, each returning the new state and the messages to emit. The primary object is the
payment attempt (payment_succeeded, payment_failed), the payment (payment_cancelled) or the dispute
(dispute_opened, ..., dispute_lost), as Hyperswitch's; every event belongs to a payment, within which it is
numbered and delivered in order."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from recovery_contracts.api.events import WebhookDeliveryAttempt
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.ids import idempotent_event_id
from recovery_contracts.messages import DeliverWebhook, WebhookDeliveryFailed, WebhookEndpointDisabled, timer_for
from recovery_dispatcher.domain.event_types import ContentObject, payment_id_of, raised_type
from recovery_dispatcher.domain.ids import initial_event_id, millis, record_key
from recovery_dispatcher.domain.outgoing_webhook import build_body
from recovery_dispatcher.domain.policy import DeliveryVerdict, RetrySchedule, next_retry_delay
from recovery_dispatcher.domain.status import EventOutcome, EventStatus

TIMER_KIND = "webhook_retry"
# A newer event of a payment waits until this long (schedule time) after the older one's next try.
ORDERING_PAUSE = timedelta(seconds=5)
# The events API's recover (the merchant's "deliver my failed events again"): how far back, as Svix's, and how many
# a call takes (one transaction for them all; the answer's cursor takes the next).
RECOVER_WINDOW = timedelta(days=14)
RECOVER_BATCH = 200
RECOVERED = "delivered again at the merchant's request"

Payload = TypeVar("Payload", bound=BaseModel)


class DuplicateEvent(Exception):
    """An initial event with this `idempotent_event_id` is already claimed or recorded (a duplicate message, a
    race between dispatchers)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """An initial event's claim (`webhook_claims`): what was fixed when the event was raised (its id, body and
    number within its payment) and who holds its delivery."""

    key: str
    idempotent_event_id: str
    event_id: str
    payment_id: str
    created_at: datetime
    body: bytes
    sequence: int
    lease_until: datetime | None
    lease_owner: str | None


@dataclass(frozen=True, slots=True)
class EarlierEvent:
    """An older event of the same payment that is not delivered or failed yet (a newer one must wait for it)."""

    event_id: str
    sequence: int | None
    next_retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """An initial webhook event and where its delivery stands. Its first attempt is recorded with it; every
    later attempt is a record of its own (counted in `attempts`)."""

    event_id: str
    idempotent_event_id: str
    event_type: str
    primary_object_id: str
    payment_id: str
    merchant_id: str
    profile_id: str
    created_at: datetime
    # Built once; every attempt sends and signs exactly these bytes.
    body: bytes
    # Its number within its payment (1, 2, ...): given by its claim; 0 until claimed.
    sequence: int = 0
    status: EventStatus = EventStatus.DELIVERING
    status_reason: str | None = None
    # Durable retries of its schedule used so far; holds (ordering, open circuit) use none.
    retry_index: int = 0
    holds: int = 0
    # Rounds of its schedule the merchant asked for again (`recovered`): a round's retry timers are named apart from
    # an earlier round's, which the scheduler keeps, and would otherwise take for the same timer and drop.
    rounds: int = 0
    attempts: int = 0
    # Its first attempt is recorded (on the initial record; later ones are `automatic_retry` records).
    attempted: bool = False
    # Hyperswitch's `is_webhook_notified` and `is_overall_delivery_successful`.
    notified: bool = False
    delivered: bool = False
    next_retry_at: datetime | None = None
    # A dispatcher delivering it holds it until `lease_until`; another may take it over after that.
    lease_until: datetime | None = None
    lease_owner: str | None = None
    finished_at: datetime | None = None

    @classmethod
    def raised(
        cls,
        *,
        event_type: str,
        primary_object_id: str,
        content: ContentObject,
        merchant_id: str,
        profile_id: str,
        now: datetime,
        lease_until: datetime,
        lease_owner: str,
    ) -> WebhookEvent:
        """A new initial event for a message, its body built around `content` (the payment, or the dispute lost on
        it), leased to the dispatcher raising it. KeyError for an event type the dispatcher does not raise."""
        idempotent_id = idempotent_event_id(primary_object_id, event_type)
        event_id = initial_event_id(idempotent_id, now)
        body = build_body(
            merchant_id=merchant_id,
            event_id=event_id,
            event_type=event_type,
            content_type=raised_type(event_type).content_type,
            content_object=content.model_dump_json().encode(),
            timestamp=now,
        )
        return cls(
            event_id=event_id,
            idempotent_event_id=idempotent_id,
            event_type=event_type,
            primary_object_id=primary_object_id,
            payment_id=payment_id_of(content),
            merchant_id=merchant_id,
            profile_id=profile_id,
            created_at=now,
            body=body,
            lease_until=lease_until,
            lease_owner=lease_owner,
        )

    @classmethod
    def of_claim(
        cls, claim: Claim, *, event_type: str, primary_object_id: str, merchant_id: str, profile_id: str
    ) -> WebhookEvent:
        """The event a claim was made for, not recorded yet (its first attempt never finished)."""
        return cls(
            event_id=claim.event_id,
            idempotent_event_id=claim.idempotent_event_id,
            event_type=event_type,
            primary_object_id=primary_object_id,
            payment_id=claim.payment_id,
            merchant_id=merchant_id,
            profile_id=profile_id,
            created_at=claim.created_at,
            body=claim.body,
            sequence=claim.sequence,
            lease_until=claim.lease_until,
            lease_owner=claim.lease_owner,
        )

    @property
    def key(self) -> str:
        return record_key(self.merchant_id, self.event_id)

    @property
    def event_class(self) -> str:
        """Hyperswitch's event class of its type (`payments`, `disputes`): the events API lists by it."""
        return raised_type(self.event_type).event_class.value

    @property
    def content_type(self) -> str:
        """What its body's `content.object` is (`payment_details`, `dispute_details`): the record's
        `primary_object_type`."""
        return raised_type(self.event_type).content_type.value

    @property
    def first_attempt_kind(self) -> WebhookDeliveryAttempt:
        """The kind of the next delivery's first attempt."""
        return WebhookDeliveryAttempt.AUTOMATIC_RETRY if self.attempted else WebhookDeliveryAttempt.INITIAL_ATTEMPT

    def numbered(self, sequence: int) -> WebhookEvent:
        return self._evolve(sequence=sequence)

    def being_delivered(self, now: datetime) -> bool:
        """A dispatcher holds it for delivery and its lease still runs (it may also have died holding it: the
        lease runs out, and another dispatcher takes the event over)."""
        return self.status is EventStatus.DELIVERING and self.lease_until is not None and self.lease_until > now

    def leased(self, until: datetime, owner: str) -> WebhookEvent:
        """Taken for delivery by `owner` (after a compare-and-set on the stored lease)."""
        return self._evolve(status=EventStatus.DELIVERING, lease_until=until, lease_owner=owner)

    def attempts_made(self, count: int, *, first_succeeded: bool, delivered_at: datetime | None) -> WebhookEvent:
        """After one delivery's `count` attempts; `delivered_at` when the last one succeeded."""
        notified = self.notified if self.attempted else first_succeeded
        if delivered_at is None:
            return self._evolve(attempts=self.attempts + count, attempted=True, notified=notified)
        return self._evolve(
            attempts=self.attempts + count,
            attempted=True,
            status=EventStatus.DELIVERED,
            status_reason="delivered",
            notified=True,
            delivered=True,
            lease_until=None,
            finished_at=delivered_at,
        )

    def delivered_manually(self) -> WebhookEvent:
        """A merchant's manual retry succeeded: pending automatic retries then stop (they find it delivered)."""
        return self._evolve(
            status=EventStatus.DELIVERED,
            status_reason="delivered by a manual retry",
            notified=True,
            delivered=True,
            lease_until=None,
        )

    def failed(
        self, reason: str, *, outcome: EventOutcome, url: str | None, attempts: int, now: datetime
    ) -> Transition:
        """A final failure: the record says why, and `webhook.delivery-failed` tells operations."""
        notice = self._about_payment(
            MessageType.WEBHOOK_DELIVERY_FAILED,
            WebhookDeliveryFailed(
                event_id=self.event_id,
                idempotent_event_id=self.idempotent_event_id,
                event_type=self.event_type,
                payment_id=self.payment_id,
                profile_id=self.profile_id,
                url=url,
                reason=reason,
                attempts=attempts,
                failed_at=now,
            ),
        )
        failed = self._evolve(status=EventStatus.FAILED, status_reason=reason, lease_until=None, finished_at=now)
        return Transition(failed, (notice,), outcome)

    def after_failed_delivery(
        self, verdict: DeliveryVerdict, *, schedule: RetrySchedule, url: str, now: datetime, time_scale: float
    ) -> Transition:
        """The last attempt failed: fail for good when the verdict or the schedule says so, else the next
        durable retry (its time from the schedule, a Retry-After pushing it later)."""
        if verdict.disables_endpoint:
            reason = "endpoint answered 410 Gone: disabled"
            return self.failed(reason, outcome=EventOutcome.ENDPOINT_GONE, url=url, attempts=self.attempts, now=now)
        if not verdict.should_retry:
            return self.failed(verdict.reason, outcome=EventOutcome.BLOCKED, url=url, attempts=self.attempts, now=now)
        delay = next_retry_delay(self.retry_index, schedule, verdict.retry_after)
        if delay is None:
            reason = f"RETRIES_EXCEEDED: {verdict.reason}"
            return self.failed(reason, outcome=EventOutcome.RETRIES_EXCEEDED, url=url, attempts=self.attempts, now=now)
        next_index = self.retry_index + 1
        suffix = str(next_index) if self.rounds == 0 else f"round{self.rounds}-{next_index}"
        return self._scheduled(next_index, now + delay / time_scale, verdict.reason, suffix, self.holds)

    def recovered(self, now: datetime) -> Transition:
        """A failed event the merchant asked for again: a new round of its schedule from now, its retries counted
        afresh; its body, `webhook-id` and place in its payment's order stay. ValueError unless it failed."""
        if self.status is not EventStatus.FAILED:
            raise ValueError(f"event {self.event_id} is {self.status.value}, not failed")
        # A timer id of its own: the scheduler keeps one timer per id, and an event may be recovered again.
        again = self._scheduled(0, now, RECOVERED, f"recover{millis(now)}", self.holds)
        return Transition(again.event._evolve(finished_at=None, rounds=self.rounds + 1), again.messages)

    def held(self, due: datetime, reason: str) -> Transition:
        """Parked (ordering, open circuit) until `due` without using up a retry of its schedule."""
        holds = self.holds + 1
        return self._scheduled(self.retry_index, due, reason, f"hold{holds}", holds)

    def waiting_for(self, earlier: EarlierEvent, now: datetime, time_scale: float) -> Transition:
        """Never overtake an older event of the same payment: come back after its next try."""
        due = max(earlier.next_retry_at or now, now) + ORDERING_PAUSE / time_scale
        return self.held(due, f"waiting for {earlier.event_id} (sequence {earlier.sequence})")

    def endpoint_disabled(
        self, *, url: str | None, failing_since: datetime | None, reason: str, now: datetime
    ) -> Envelope[WebhookEndpointDisabled]:
        """The notice that this event's delivery disabled its profile's endpoint (410 Gone, long failure)."""
        return envelope_for(
            MessageType.WEBHOOK_ENDPOINT_DISABLED,
            WebhookEndpointDisabled(
                profile_id=self.profile_id,
                merchant_id=self.merchant_id,
                url=url,
                reason=reason,
                failing_since=failing_since,
                disabled_at=now,
            ),
            merchant_id=self.merchant_id,
            profile_id=self.profile_id,
        )

    def _about_payment(self, message_type: MessageType, payload: Payload) -> Envelope[Payload]:
        """A message about this event's payment (its correlation id), merchant and profile."""
        return envelope_for(message_type, payload, about=self)

    def _evolve(self, **changes: Any) -> WebhookEvent:
        """This event with `changes`: `dataclasses.replace` without its per-call field introspection and
        re-validation (the delivery path makes two such copies per message)."""
        evolved = object.__new__(WebhookEvent)
        for name in _FIELD_NAMES:
            object.__setattr__(evolved, name, changes[name] if name in changes else getattr(self, name))
        return evolved

    def _scheduled(self, retry_index: int, due: datetime, reason: str, timer_suffix: str, holds: int) -> Transition:
        """Waiting for a timer that delivers it again (`webhook.deliver` through the scheduler) at `due`."""
        command = self._about_payment(
            MessageType.DELIVER_WEBHOOK, DeliverWebhook(initial_attempt_id=self.event_id, retry_index=retry_index)
        )
        timer = timer_for(command, timer_id=f"webhook:{self.event_id}:{timer_suffix}", due_at=due, kind=TIMER_KIND)
        scheduled = self._evolve(
            status=EventStatus.RETRY_SCHEDULED,
            retry_index=retry_index,
            next_retry_at=due,
            status_reason=reason,
            lease_until=None,
            holds=holds,
        )
        return Transition(scheduled, (timer,))


_FIELD_NAMES = tuple(field.name for field in fields(WebhookEvent))


@dataclass(frozen=True, slots=True)
class Transition:
    """An event's new state and the messages its change emits (stored with it, published after the commit)."""

    event: WebhookEvent
    messages: tuple[Envelope[Any], ...] = ()
    # How the event finished, when this transition finished it.
    outcome: EventOutcome | None = None
