"""Webhook-dispatcher settings: delivery timeouts, retry schedule, concurrency, endpoint health, batching (the
allow-list of non-global destinations is the runtime's OUTBOUND_ALLOWED_CIDRS)."""

from __future__ import annotations

from pydantic import Field

from recovery_runtime.settings import ServiceSettings


class DispatcherSettings(ServiceSettings):
    http_port: int = 8083
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_total_timeout_seconds: float = Field(default=15.0, gt=0)
    # Comma-separated seconds; empty means Hyperswitch's schedule (+60 s, 5 min x2, 10 min x5, 1 h x5, 6 h x3).
    # A profile's `webhook_retry_schedule_seconds` (profile.updated) overrides it for that profile.
    webhook_retry_schedule_seconds: str = ""
    # The longest a receiver's Retry-After may push one durable retry out (seconds of schedule time).
    webhook_max_retry_after_seconds: float = Field(default=6 * 3600, ge=0)
    # In-process retries of one delivery: attempts and the time budget (wall-clock seconds).
    webhook_in_process_attempts: int = Field(default=3, ge=1, le=10)
    webhook_in_process_budget_seconds: float = Field(default=5.0, ge=0)
    # How long one dispatcher may hold an event it is delivering before another may take it over. At most 120 s:
    # a due retry whose holder died waits for the lease in redeliveries (pauses growing to 10 s,
    # `DeliveryInProgress`), and the queues dead-letter a message at its 20th delivery.
    webhook_delivery_lease_seconds: float = Field(default=60.0, gt=0, le=120)
    webhook_user_agent: str = "recovery-engine-webhooks/1"
    # Deliveries in flight to endpoints that answer promptly, in this process, all delivery queues together. A
    # delivery still waiting for its answer after WEBHOOK_PROMPT_DELIVERY_SECONDS gives its place back and counts
    # as slow from then on.
    webhook_max_in_flight: int = Field(default=256, ge=1, le=10_000)
    # Deliveries in flight to slow endpoints (their deliveries take WEBHOOK_PROMPT_DELIVERY_SECONDS or more), apart
    # from WEBHOOK_MAX_IN_FLIGHT; more are parked. Unset: half of WEBHOOK_MAX_IN_FLIGHT (at least 1).
    webhook_slow_max_in_flight: int | None = Field(default=None, ge=1, le=10_000)
    # How long a delivery may wait for its answer and still count as prompt (wall-clock seconds).
    webhook_prompt_delivery_seconds: float = Field(default=1.0, gt=0)
    # How long a delivery that finds a prompt endpoint's slots all taken waits for one before it is parked on a
    # timer (wall-clock seconds; 0 parks at once); at most WEBHOOK_ENDPOINT_CONCURRENCY deliveries wait per endpoint.
    webhook_busy_wait_seconds: float = Field(default=0.5, ge=0, le=5)
    # The broker hands each of the dispatcher's consumers this many unacknowledged messages, each handled in a
    # task of its own (the services' default of 100 would cap a delivery queue below `webhook_max_in_flight`).
    prefetch_count: int = Field(default=256, ge=1, le=1000)
    # Deliveries in flight to one endpoint (a profile's URL) at a time in this process; when they are all taken a
    # delivery waits WEBHOOK_BUSY_WAIT_SECONDS at most for one (a prompt endpoint), else it is parked on a timer
    # (it holds no slot of WEBHOOK_MAX_IN_FLIGHT meanwhile).
    webhook_endpoint_concurrency: int = Field(default=16, ge=1, le=1000)
    # Deliveries in flight for one merchant at a time in this process (all its endpoints; never fewer than
    # WEBHOOK_ENDPOINT_CONCURRENCY); more are parked.
    webhook_merchant_max_in_flight: int = Field(default=64, ge=1, le=10_000)
    # The shortest park of a delivery whose endpoint or merchant is busy (seconds of schedule time; not a retry).
    webhook_busy_hold_seconds: float = Field(default=5.0, gt=0)
    # The longest park (seconds of schedule time): a parked backlog is spread over at most this long.
    webhook_busy_max_hold_seconds: float = Field(default=600.0, gt=0)
    # An attempt answered (or failing) after this many wall-clock seconds counts as a slow response of its endpoint.
    webhook_slow_response_seconds: float = Field(default=5.0, gt=0)
    # Circuit breaker per endpoint (profile, URL), shared by the dispatchers: consecutive failed deliveries that
    # open it, and its first pause (seconds of schedule time; doubled after each failed probe, up to the maximum).
    webhook_breaker_failures: int = Field(default=5, ge=1)
    webhook_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    webhook_breaker_max_cooldown_seconds: float = Field(default=600.0, gt=0)
    # An endpoint failing without a single success for this long is disabled (Svix: 5 days).
    webhook_disable_after_seconds: float = Field(default=5 * 86400, gt=0)
    # Endpoint settings are cached this long (wall-clock seconds) between profile.updated messages.
    webhook_endpoint_cache_seconds: float = Field(default=2.0, ge=0)
    # Breakers (endpoint_health) are cached this long (wall-clock seconds): how late a dispatcher may learn of
    # another's open or close; its own changes it sees at once.
    webhook_endpoint_health_cache_seconds: float = Field(default=1.0, ge=0)
    # Endpoints whose settings, breaker and load one process keeps in memory (least recently used go first).
    webhook_endpoints_in_memory: int = Field(default=10_000, ge=1)
    # Write-behind batching of the event records.
    webhook_record_flush_seconds: float = Field(default=0.005, gt=0)
    webhook_record_batch: int = Field(default=500, ge=1)
