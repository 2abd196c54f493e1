"""`GET /v2/revenue-recovery/retry-stats` (extension): what the engine learned from its own attempts, per key.

After Hyperswitch's `revenue_recovery_retry_stats` (juspay/hyperswitch#13793): keyed by the standardised decline
code that led to an attempt and the charged card; attempt and success counts by day of week, day of month and hour
of day, all in UTC.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recovery_contracts.api.fields import ResponseBody

_RATE = "successes / attempts; null when nothing was attempted"


class RetryStatsBucket(ResponseBody):
    bucket: int = Field(description="day of week 1 (Monday) to 7 (Sunday), day of month 1-31, or hour 0-23 (UTC)")
    attempts: int = Field(ge=0)
    successes: int = Field(ge=0)
    success_rate: float | None = Field(description=_RATE)


class RetryStatsGroup(ResponseBody):
    """One key's counts: in total, and per bucket (every bucket listed, in order, zeros included)."""

    decline_code: str = Field(
        description="the standardised decline that led to the attempts (the previous attempt's, else the billing "
        "system's failure): a decline table row's Stripe code, `unrecognised`, `connector_error` or `unknown`"
    )
    card_network: str = Field(description="the charged card's network (visa, mastercard, amex, discover, unknown)")
    funding: str = Field(description="the charged card's funding: credit, debit, prepaid or unknown")
    attempts: int = Field(ge=0)
    successes: int = Field(ge=0)
    success_rate: float | None = Field(description=_RATE)
    day_of_week: list[RetryStatsBucket] = Field(min_length=7, max_length=7)
    day_of_month: list[RetryStatsBucket] = Field(min_length=31, max_length=31)
    hour_of_day: list[RetryStatsBucket] = Field(min_length=24, max_length=24)


class RetryStatsResponse(ResponseBody):
    """Every key of the merchant's attempts, the most attempted first."""

    merchant_id: str
    time_zone: Literal["UTC"] = "UTC"
    attempts: int = Field(ge=0)
    successes: int = Field(ge=0)
    success_rate: float | None = Field(description=_RATE)
    data: list[RetryStatsGroup]
