"""Retry settings of one profile / billing connector account, with Hyperswitch's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .budgets import DEFAULT_NETWORK_BUDGETS, UNKNOWN_NETWORK_BUDGET, NetworkBudget
from .model import Algorithm


def _ladder(*steps: tuple[int, timedelta]) -> tuple[timedelta, ...]:
    return tuple(delay for count, delay in steps for _ in range(count))


# Hyperswitch's cascading ladder: +60 s, 3 h x2, 6 h x3, 9 h x3, 12 h x3, 18 h x3 (15 retries, about 141 h).
HYPERSWITCH_CASCADING_LADDER: tuple[timedelta, ...] = _ladder(
    (1, timedelta(seconds=60)),
    (2, timedelta(hours=3)),
    (3, timedelta(hours=6)),
    (3, timedelta(hours=9)),
    (3, timedelta(hours=12)),
    (3, timedelta(hours=18)),
)


@dataclass(frozen=True)
class RetryConfig:
    ladder: tuple[timedelta, ...] = HYPERSWITCH_CASCADING_LADDER
    # Hyperswitch adds 1..`max_random_schedule_delay_in_seconds` (300) seconds to every planned time.
    min_jitter: timedelta = timedelta(seconds=1)
    max_jitter: timedelta = timedelta(seconds=300)
    # Retries allowed for an invoice, counting the billing system's own (billing_retry_count + attempts).
    max_retry_count: int | None = None
    # This system starts once the billing system's retries exceed this (Hyperswitch: total_retry_count > it).
    billing_connector_retry_threshold: int = 0
    # switch_payment_method_config (smart): another saved token after this many retries on the current one...
    switch_retry_threshold: int | None = None
    # ... or once this long has passed since the recovery was created.
    switch_time_threshold_after_creation: timedelta | None = None
    budgets: tuple[NetworkBudget, ...] = DEFAULT_NETWORK_BUDGETS
    unknown_network_budget: NetworkBudget = UNKNOWN_NETWORK_BUDGET
    # Monitoring switches to `active_algorithm` this long after the profile chose monitoring
    # (`RecoveryView.monitoring_started_at`, else the recovery's creation; None: never).
    monitoring_threshold: timedelta | None = None
    # The algorithm monitoring shadows and later switches to.
    active_algorithm: Algorithm = Algorithm.CASCADING
    # No attempt is planned after created_at + retry_window (Recurly: at least 27 days; Adyen: 1 month).
    retry_window: timedelta = timedelta(days=30)
    # Smart: at most this many of this system's attempts on a recovery, whatever the decline kinds' own caps
    # (`smart_cadence`) allow.
    smart_max_attempts: int = 15
    # Smart: at least this long between two attempts on any token.
    smart_min_interval: timedelta = timedelta(hours=1)
    # Smart: the hour of day (UTC) insufficient-funds retries aim at on a payday.
    payday_hour_utc: int = 14
    # Smart, when the customer's country is known: the payday hour and the daytime window at the customer (local
    # hours): wages land overnight, and issuers score night-time attempts as riskier.
    smart_payday_local_hour: int = 9
    smart_daytime_local_hours: tuple[int, int] = (8, 21)
    # Smart: a retry aimed at a morning (a payday's hour, or the daytime's start for one that fell in the customer's
    # night) goes at the card's own minute within this long after it (the same on every plan), so that a merchant's
    # retries do not all reach the connector in one minute.
    smart_morning_spread: timedelta = timedelta(hours=1)
    # While an attempt's outcome is unknown (PSYNC running), look again after this long.
    unknown_outcome_recheck: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.min_jitter < timedelta(0) or self.max_jitter < self.min_jitter:
            raise ValueError("jitter bounds must satisfy 0 <= min_jitter <= max_jitter")
        if any(step < timedelta(0) for step in self.ladder):
            raise ValueError("ladder steps must not be negative")
        if not 0 <= self.payday_hour_utc <= 23:
            raise ValueError("payday_hour_utc must be an hour of the day")
        if not 0 <= self.smart_payday_local_hour <= 23:
            raise ValueError("smart_payday_local_hour must be an hour of the day")
        start, end = self.smart_daytime_local_hours
        if not 0 <= start < end <= 24:
            raise ValueError("smart_daytime_local_hours must be (start, end) hours with start < end")
        spread = self.smart_morning_spread
        latest_morning = timedelta(hours=max(start, self.smart_payday_local_hour))
        if spread < timedelta(0) or latest_morning + spread > timedelta(hours=end):
            raise ValueError("smart_morning_spread must not be negative nor reach past the daytime's end")
        if timedelta(hours=self.payday_hour_utc) + spread > timedelta(days=1):
            raise ValueError("smart_morning_spread must end within the payday (UTC) at payday_hour_utc")
