"""A profile's webhook endpoint as the dispatcher knows it (projected from `profile.updated`), and its rules:
whether deliveries may go to it, which retry schedule it follows, when long failure disables it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from recovery_contracts.messages import ProfileUpdated
from recovery_dispatcher.domain.breaker import EndpointKey
from recovery_dispatcher.domain.outgoing_webhook import DEFAULT_USER_AGENT, Headers, build_headers
from recovery_dispatcher.domain.policy import RetrySchedule
from recovery_dispatcher.domain.status import EventOutcome

NO_ENDPOINT_REASON = "no enabled webhook endpoint on the profile"
# Why no delivery is attempted to a profile: the outcome it finishes its events with, and the reason recorded.
Refusal = tuple[EventOutcome, str]


@dataclass(frozen=True, slots=True)
class Endpoint:
    profile_id: str
    merchant_id: str | None = None
    url: str | None = None
    enabled: bool = True
    # Signing keys and custom header values: sealed as stored and as `profile.updated` carries them; in the clear
    # (in memory only) once `opened`, for building requests.
    hash_key: str | None = None
    whsec_secrets: tuple[str, ...] = ()
    custom_headers: Mapping[str, str] = field(default_factory=dict)
    # The profile's own schedule (seconds); None: the dispatcher's default.
    retry_schedule_seconds: tuple[float, ...] | None = None
    # Set by the dispatcher (410 Gone, long failure); cleared by a newer profile version.
    disabled_reason: str | None = None
    # The first failed delivery after the last success (cleared by any success).
    failing_since: datetime | None = None
    # Event types the profile switched off (`webhook_details.<type>_enabled: false`): never raised for it.
    disabled_event_types: frozenset[str] = frozenset()
    # Deliveries per second to the URL (in each dispatcher); None: no limit.
    max_deliveries_per_second: int | None = None

    def opened(self, open_: Callable[[str], str]) -> Endpoint:
        """This endpoint with its secrets readable (`open_` opens one stored value), to sign and send with."""
        return replace(
            self,
            hash_key=open_(self.hash_key) if self.hash_key is not None else None,
            whsec_secrets=tuple(open_(secret) for secret in self.whsec_secrets),
            custom_headers={name: open_(value) for name, value in self.custom_headers.items()},
        )

    @property
    def key(self) -> EndpointKey:
        """Whose endpoint and where: health, slots and the rate limit are kept per (profile, URL)."""
        return self.profile_id, self.url or ""

    def sends(self, event_type: str) -> bool:
        """Does the profile want events of this type? (Hyperswitch's toggles: unset means yes.)"""
        return event_type not in self.disabled_event_types

    def refusal(self) -> Refusal | None:
        """Why deliveries to this endpoint are not attempted, or None."""
        if not self.url or not self.enabled:
            return EventOutcome.NO_ENDPOINT, NO_ENDPOINT_REASON
        if self.disabled_reason:
            return EventOutcome.ENDPOINT_DISABLED, f"endpoint disabled: {self.disabled_reason}"
        return None

    def schedule(self, default: RetrySchedule) -> RetrySchedule:
        if self.retry_schedule_seconds is None:
            return default
        return RetrySchedule.from_seconds(
            self.retry_schedule_seconds, max_retry_after_seconds=default.max_retry_after.total_seconds()
        )

    def failing_too_long(self, now: datetime, disable_after: timedelta) -> bool:
        """Failing without a single success for `disable_after` (wall-clock): time to disable it (Svix's rule)."""
        return self.failing_since is not None and now - self.failing_since >= disable_after

    def headers(
        self,
        body: bytes,
        *,
        webhook_id: str,
        timestamp: int,
        sequence: int | None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> Headers:
        """The signed headers of one attempt to this endpoint."""
        return build_headers(
            body=body,
            webhook_id=webhook_id,
            timestamp=timestamp,
            hash_key=self.hash_key,
            whsec_secrets=self.whsec_secrets,
            custom_headers=self.custom_headers,
            user_agent=user_agent,
            sequence=sequence,
        )


def refusal_of(endpoint: Endpoint | None) -> Refusal | None:
    """Why no delivery goes to a profile whose endpoint is `endpoint` (None: the profile has none)."""
    if endpoint is None:
        return EventOutcome.NO_ENDPOINT, NO_ENDPOINT_REASON
    return endpoint.refusal()


def switched_off(update: ProfileUpdated) -> tuple[str, ...]:
    """The event types a profile version switched off (its toggles set to false; unset ones stay on)."""
    toggles = {
        "payment_created": update.payment_created_enabled,
        "payment_succeeded": update.payment_succeeded_enabled,
        "payment_failed": update.payment_failed_enabled,
    }
    return tuple(event_type for event_type, enabled in toggles.items() if enabled is False)
