"""What a delivery attempt's outcome means (success, retry, throttle, disable), when the next retry is due."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

# A Retry-After beyond this many seconds is nonsense or hostile; clamp before it reaches timedelta.
_RETRY_AFTER_CEILING_SECONDS = 10**9

# Throttling answers: the receiver is alive but asks for room (429) or a gateway in front of it is (502-504).
_THROTTLE_STATUSES = frozenset({429, 502, 503, 504})


class DeliveryOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retried on the schedule
    THROTTLED = "throttled"  # retried on the schedule, Retry-After honoured within bounds
    ENDPOINT_GONE = "endpoint_gone"  # 410: the endpoint is disabled, no more retries
    BLOCKED = "blocked"  # the SSRF guard refused the destination: retrying cannot help


@dataclass(frozen=True, slots=True)
class DeliveryVerdict:
    outcome: DeliveryOutcome
    reason: str
    # Worth a short in-process retry (transport error, 5xx, 429) rather than waiting for a durable timer.
    transient: bool = False
    retry_after: timedelta | None = None

    @property
    def is_success(self) -> bool:
        return self.outcome is DeliveryOutcome.SUCCEEDED

    @property
    def should_retry(self) -> bool:
        return self.outcome in (DeliveryOutcome.FAILED, DeliveryOutcome.THROTTLED)

    @property
    def disables_endpoint(self) -> bool:
        return self.outcome is DeliveryOutcome.ENDPOINT_GONE


def classify_response(
    status: int | None,
    error: str | None,
    *,
    retry_after: timedelta | None = None,
    blocked: bool = False,
) -> DeliveryVerdict:
    """The verdict on one attempt: `status` is the HTTP status (None when no response came back), `error`
    the transport error, `retry_after` the parsed Retry-After header, `blocked` whether the SSRF guard
    refused the destination.

    Only 2xx succeeds. 3xx is a failure and never followed (a redirect could lead anywhere, including past
    the SSRF guard). 410 Gone disables the endpoint, as the Standard Webhooks spec asks.
    """
    if blocked:
        return DeliveryVerdict(DeliveryOutcome.BLOCKED, error or "blocked by the SSRF guard")
    if status is None:
        return DeliveryVerdict(DeliveryOutcome.FAILED, error or "no response", transient=True)
    if 200 <= status < 300:
        return DeliveryVerdict(DeliveryOutcome.SUCCEEDED, f"HTTP {status}")
    if 300 <= status < 400:
        return DeliveryVerdict(DeliveryOutcome.FAILED, f"HTTP {status}: redirects are not followed")
    if status == 410:
        return DeliveryVerdict(DeliveryOutcome.ENDPOINT_GONE, "HTTP 410: endpoint gone, disabling it")
    if status in _THROTTLE_STATUSES:
        return DeliveryVerdict(
            DeliveryOutcome.THROTTLED, f"HTTP {status}: throttled", transient=True, retry_after=retry_after
        )
    return DeliveryVerdict(DeliveryOutcome.FAILED, f"HTTP {status}", transient=status >= 500)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header (RFC 9110: delta-seconds or an HTTP-date) as a non-negative delay from `now`;
    None when absent or unreadable. A date in the past means "now" (zero)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return timedelta(seconds=min(int(text), _RETRY_AFTER_CEILING_SECONDS))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(moment - now, timedelta(0))


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Delays of the automatic retries after the initial attempt; past the last, RETRIES_EXCEEDED.

    `max_retry_after` bounds how far a receiver's Retry-After may push one retry out.
    """

    delays: tuple[timedelta, ...]
    max_retry_after: timedelta = timedelta(hours=6)

    def __post_init__(self) -> None:
        if any(delay < timedelta(0) for delay in self.delays):
            raise ValueError("retry delays must not be negative")
        if self.max_retry_after < timedelta(0):
            raise ValueError("max_retry_after must not be negative")

    @classmethod
    def from_seconds(cls, seconds: Iterable[float], *, max_retry_after_seconds: float = 6 * 3600) -> RetrySchedule:
        return cls(
            delays=tuple(timedelta(seconds=value) for value in seconds),
            max_retry_after=timedelta(seconds=max_retry_after_seconds),
        )

    @property
    def max_retries(self) -> int:
        return len(self.delays)

    @property
    def total(self) -> timedelta:
        return sum(self.delays, timedelta(0))


def _steps(*pairs: tuple[int, timedelta]) -> tuple[timedelta, ...]:
    return tuple(delay for count, delay in pairs for _ in range(count))


# Hyperswitch v1's automatic webhook retry schedule: 16 retries over about 24 h.
HYPERSWITCH_RETRY_SCHEDULE = RetrySchedule(
    delays=_steps(
        (1, timedelta(seconds=60)),
        (2, timedelta(minutes=5)),
        (5, timedelta(minutes=10)),
        (5, timedelta(hours=1)),
        (3, timedelta(hours=6)),
    )
)


def next_retry_delay(
    retry_index: int,
    schedule: RetrySchedule = HYPERSWITCH_RETRY_SCHEDULE,
    retry_after: timedelta | None = None,
) -> timedelta | None:
    """The delay before automatic retry number `retry_index` (0 = the first retry after the initial
    attempt, i.e. the number of automatic retries already made); None means RETRIES_EXCEEDED.

    A Retry-After can only push the retry later than the schedule, never earlier (a `Retry-After: 0` does
    not turn the schedule into a hammer), and never beyond `schedule.max_retry_after`.
    """
    if retry_index < 0:
        raise ValueError("retry_index must not be negative")
    if retry_index >= len(schedule.delays):
        return None
    delay = schedule.delays[retry_index]
    if retry_after is not None:
        delay = max(delay, min(retry_after, schedule.max_retry_after))
    return delay
