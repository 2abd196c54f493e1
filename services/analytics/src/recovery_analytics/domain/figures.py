"""Per-merchant daily figures: what one payment adds to its day, and the analytics answer summed from days.

A payment counts on the UTC day it was accepted (its `created_at`), under its profile, and so do the disputes on it
weeks later. Its `contribution` is a flat map of counters (`payments_recovered`, `recovered_amount.USD`,
`disputed_lost_amount.USD`, `disputed_open_amount.USD`, `by_card_network.Visa.declines`...); when its view changes,
its day moves by the difference between the new contribution and the one stored with the view (`difference`), so a
day is always the sum of its payments' current contributions, however often and in whatever order their events
came.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from recovery_analytics.domain.view import PaymentView, ViewStatus
from recovery_contracts.api.analytics import Breakdown, DailyFigures, Percentiles, RecoveryAnalyticsResponse

Counters = dict[str, int]

UNKNOWN = "unknown"
_STATUS_COUNTER = {
    ViewStatus.IN_PROGRESS: "payments_in_progress",
    ViewStatus.RECOVERED: "payments_recovered",
    ViewStatus.FAILED: "payments_failed",
    ViewStatus.CANCELLED: "payments_cancelled",
}


def key_part(value: str | None) -> str:
    """A label as a counter name part: MongoDB field names take no `.` and no leading `$`."""
    if not value:
        return UNKNOWN
    return value.replace(".", "_").replace("$", "_")[:64]


def day_of(view: PaymentView) -> date | None:
    return view.payment.created_at.date() if view.payment is not None else None


def contribution(view: PaymentView) -> Counters:
    """What `view` adds to its day's figures; nothing until its request (`recovery.scheduled`) is known."""
    if view.payment is None:
        return {}
    counters: Counters = {"payments_total": 1, _STATUS_COUNTER[view.status]: 1}
    algorithm = key_part(view.payment.retry.algorithm.value)
    primary = key_part(view.primary_card_network)
    _add(counters, f"by_algorithm.{algorithm}.payments")
    _add(counters, f"by_card_network.{primary}.payments")
    for attempt in view.attempts:
        if attempt.declined:
            _add(counters, f"by_decline_class.{key_part(attempt.decline_class)}")
            _add(counters, f"by_card_network.{key_part(attempt.card_network)}.declines")
            _add(counters, f"by_algorithm.{algorithm}.declines")
    recovered = view.recovered_attempt
    if view.status is ViewStatus.RECOVERED and recovered is not None:
        _add(counters, f"recovered_amount.{key_part(view.payment.currency)}", view.payment.amount)
        # Our attempts up to and including the one that recovered it.
        _add(counters, "attempts_recovered", sum(1 for a in view.attempts if a.number <= recovered.number))
        _add(counters, f"by_attempt_number.{recovered.number}")
        _add(counters, f"by_algorithm.{algorithm}.recovered")
        _add(counters, f"by_card_network.{key_part(recovered.card_network)}.recovered")
        _add_lost_disputes(counters, view)
        _add_open_disputes(counters, view)
    return counters


def _add_lost_disputes(counters: Counters, view: PaymentView) -> None:
    """A recovered payment's lost disputes: the payment once however many there are, and each dispute's amount
    in its currency. The view holds each dispute once (by dispute id), so a copy of one adds nothing; the payment
    stays recovered (`payments_recovered`, `recovered_amount` keep it)."""
    if not view.disputes:
        return
    _add(counters, "payments_disputed_lost")
    for dispute in view.disputes:
        _add(counters, f"disputed_lost_amount.{key_part(dispute.currency)}", dispute.amount)


def _add_open_disputes(counters: Counters, view: PaymentView) -> None:
    """A recovered payment's open disputes (opened or challenged, not ended): the payment once, and each dispute's
    amount at risk in its currency. A dispute won, cancelled or lost later leaves them: its day moves back."""
    at_risk = view.open_disputes
    if not at_risk:
        return
    _add(counters, "payments_disputed_open")
    for dispute in at_risk:
        _add(counters, f"disputed_open_amount.{key_part(dispute.currency)}", dispute.amount)


def difference(new: Mapping[str, int], old: Mapping[str, int]) -> Counters:
    """`new - old`, counter by counter, without the zeros (the `$inc` that turns old figures into new)."""
    changed = {key: new.get(key, 0) - old.get(key, 0) for key in set(new) | set(old)}
    return {key: value for key, value in changed.items() if value}


def _add(counters: Counters, key: str, by: int = 1) -> None:
    counters[key] = counters.get(key, 0) + by


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value at least `share` of the values are at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class DayFigures:
    """One stored day of one profile: its counters."""

    day: date
    counters: Mapping[str, int]


def summarise(
    merchant_id: str,
    profile_id: str | None,
    first: date,
    last: date,
    days: Iterable[DayFigures],
    seconds_to_recover: list[float],
) -> RecoveryAnalyticsResponse:
    """The analytics answer from the days' counters (summed over profiles) and the recovered payments' times."""
    total: Counters = {}
    per_day: dict[date, Counters] = {}
    for figures in days:
        day = per_day.setdefault(figures.day, {})
        for key, value in figures.counters.items():
            _add(total, key, value)
            _add(day, key, value)
    recovered, failed = total.get("payments_recovered", 0), total.get("payments_failed", 0)
    finished = recovered + failed
    return RecoveryAnalyticsResponse(
        merchant_id=merchant_id,
        profile_id=profile_id,
        from_date=first.isoformat(),
        to_date=last.isoformat(),
        payments_total=total.get("payments_total", 0),
        payments_recovered=recovered,
        payments_failed=failed,
        payments_in_progress=total.get("payments_in_progress", 0),
        payments_cancelled=total.get("payments_cancelled", 0),
        recovery_rate=round(recovered / finished, 4) if finished else None,
        recovered_amount=_group(total, "recovered_amount"),
        payments_disputed_lost=total.get("payments_disputed_lost", 0),
        disputed_lost_amount=_group(total, "disputed_lost_amount"),
        payments_disputed_open=total.get("payments_disputed_open", 0),
        disputed_open_amount=_group(total, "disputed_open_amount"),
        attempts_per_recovered_payment=(
            round(total.get("attempts_recovered", 0) / recovered, 4) if recovered else None
        ),
        time_to_recover=Percentiles(p50=percentile(seconds_to_recover, 0.5), p90=percentile(seconds_to_recover, 0.9)),
        by_decline_class=_group(total, "by_decline_class"),
        by_card_network=_breakdowns(total, "by_card_network"),
        by_attempt_number=dict(sorted(_group(total, "by_attempt_number").items(), key=lambda kv: int(kv[0]))),
        by_algorithm=_breakdowns(total, "by_algorithm"),
        daily=[_daily(day, per_day[day]) for day in sorted(per_day)],
    )


def _group(counters: Mapping[str, int], prefix: str) -> dict[str, int]:
    start = prefix + "."
    found = {key[len(start) :]: value for key, value in counters.items() if key.startswith(start) and value}
    return dict(sorted(found.items()))


def _breakdowns(counters: Mapping[str, int], prefix: str) -> dict[str, Breakdown]:
    fields: dict[str, dict[str, int]] = {}
    for key, value in _group(counters, prefix).items():
        label, _, field = key.rpartition(".")
        fields.setdefault(label, {})[field] = value
    return {label: Breakdown(**values) for label, values in sorted(fields.items())}


def _daily(day: date, counters: Counters) -> DailyFigures:
    return DailyFigures(
        date=day.isoformat(),
        payments_total=counters.get("payments_total", 0),
        payments_recovered=counters.get("payments_recovered", 0),
        payments_failed=counters.get("payments_failed", 0),
        payments_in_progress=counters.get("payments_in_progress", 0),
        recovered_amount=_group(counters, "recovered_amount"),
        payments_disputed_lost=counters.get("payments_disputed_lost", 0),
        disputed_lost_amount=_group(counters, "disputed_lost_amount"),
        payments_disputed_open=counters.get("payments_disputed_open", 0),
        disputed_open_amount=_group(counters, "disputed_open_amount"),
    )
