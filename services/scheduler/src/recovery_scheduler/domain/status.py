"""Where a recovery stands."""

from __future__ import annotations

from enum import StrEnum


class RecoveryStatus(StrEnum):
    SCHEDULED = "scheduled"  # an attempt or a re-plan is on a timer
    MONITORING = "monitoring"  # nothing is charged; cascading's and smart's shadow plans are recorded
    AWAITING_BILLING = "awaiting_billing"  # the billing system still makes its own retries
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({RecoveryStatus.SUCCEEDED, RecoveryStatus.FAILED, RecoveryStatus.CANCELLED})
