"""When the executor comes back to unfinished work: PSYNC of an unknown outcome, a record back not accepted yet."""

from __future__ import annotations

from datetime import timedelta

# PSYNC after an ambiguous outcome (timeout, 5xx, reset, `processing`): soon at first, because most unknown
# outcomes settle within seconds to minutes, then every 6 hours for as long as the connector cannot say.
# Never a new charge meanwhile; the idempotency key makes a re-send safe only within its window
# (attempt.IDEMPOTENCY_WINDOW).
PSYNC_DELAYS = (
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
)

# A record back the billing connector did not accept (non-2xx, no answer): Hyperswitch does not retry it at all;
# here it is repeated on the webhook-like schedule, for three days, then left to an operator.
RECORD_BACK_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=5),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
) + (timedelta(hours=12),) * 5
RECORD_BACK_MAX_TRIES = len(RECORD_BACK_DELAYS) + 1

# A sync that finds nothing while the invoice may no longer be charged (cancelled, paid elsewhere): the call
# never reached the connector, or reached it and is not visible yet. Settle it as "not charged" only after
# this many syncs found nothing, so that a slow search index cannot hide a charge.
NOT_FOUND_SYNCS_BEFORE_GIVING_UP = 3


def psync_delay(sync_number: int) -> timedelta:
    """Business-time wait before the `sync_number`-th sync (1-based)."""
    return PSYNC_DELAYS[min(sync_number, len(PSYNC_DELAYS)) - 1]


def record_back_delay(tries_made: int) -> timedelta | None:
    """Business-time wait before the next try after `tries_made` failed ones; None: give up (operator)."""
    if tries_made >= RECORD_BACK_MAX_TRIES:
        return None
    return RECORD_BACK_DELAYS[min(tries_made, len(RECORD_BACK_DELAYS)) - 1]
