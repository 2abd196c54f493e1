"""What the Overview and Recoveries pages show, computed from the internal APIs' answers: figures formatted, chart
series, the disputes to answer, table rows (the Payment page's: payment_view; the Webhooks page's: webhook_views).

Pure functions (no I/O): the templates only lay these out, and unit tests check them against known answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from recovery_contracts.api.currency import major_units as in_major_units
from recovery_intake.console.formatting import (
    duration,
    major_units,
    moment,
    percentage,
    time_left,
    timestamp,
)
from recovery_intake.console.ports import Document

# The Recoveries page's record-back filter: its choices and the states each stands for ("attention": the record
# backs to start again from their Payment page).
RECORD_BACK_FILTERS = {
    "attention": ("abandoned", "blocked"),
    "retrying": ("retrying",),
    "accepted": ("accepted",),
    "abandoned": ("abandoned",),
    "blocked": ("blocked",),
}
# Its dispute filter: its choices and the states each stands for ("open": a dispute the merchant must still answer,
# from the payment's Payment page).
DISPUTE_FILTERS = {
    "open": ("open",),
    "lost": ("lost",),
    "ended": ("ended",),
}
RECOVERY_STATUSES = (
    "monitoring", "queued", "scheduled", "processing", "recovered", "partially_recovered", "terminated",
    "no_picked", "pending",
)  # fmt: skip


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class Overview:
    empty: bool
    period: str
    figures: list[Figure]
    # Chart.js configurations by canvas id, serialised into the page as JSON (static/console.js draws them).
    charts: dict[str, dict[str, Any]]


def _major(amount_minor: int, currency: str) -> float:
    return float(in_major_units(amount_minor, currency))


def recovered_amounts(per_currency: dict[str, int]) -> str:
    """`{"USD": 9000, "EUR": 150}` -> `"EUR 1.50, USD 90.00"`; `"—"` when nothing was recovered (or, of what
    disputes took back, nothing was)."""
    shown = [major_units(amount, currency) for currency, amount in sorted(per_currency.items()) if amount]
    return ", ".join(shown) or "—"


def bar_chart(label: str, labels: list[str], values: list[float], counts: bool = True, **extra: Any) -> dict[str, Any]:
    """A bar chart; `counts`: whole numbers on the value axis (no 0.5 of a decline)."""
    value_axis = "x" if extra.get("indexAxis") == "y" else "y"
    scales = {value_axis: {"beginAtZero": True, "ticks": {"precision": 0}}} if counts else {}
    return {
        "type": "bar",
        "data": {"labels": labels, "datasets": [{"label": label, "data": values}]},
        "options": {"scales": scales, **extra},
    }


def overview(analytics: Document) -> Overview:
    """The Overview page of `GET /internal/analytics/{merchant_id}`'s answer."""
    total = int(analytics.get("payments_total") or 0)
    recovered = int(analytics.get("payments_recovered") or 0)
    failed = int(analytics.get("payments_failed") or 0)
    attempts = analytics.get("attempts_per_recovered_payment")
    times = analytics.get("time_to_recover") or {}
    figures = [
        Figure("Recovery rate", percentage(analytics.get("recovery_rate")), "recovered of the finished payments"),
        Figure(
            "Recovered",
            recovered_amounts(analytics.get("recovered_amount") or {}),
            f"{recovered} payment{'' if recovered == 1 else 's'}",
        ),
        *_lost_to_disputes(analytics),
        *_at_risk_in_disputes(analytics),
        Figure("In progress", str(int(analytics.get("payments_in_progress") or 0)), "still being retried"),
        Figure("Failed", str(failed), "retries ended without success"),
        Figure("Payments", str(total), "accepted for recovery"),
        Figure("Attempts per recovery", "—" if attempts is None else f"{float(attempts):.2f}"),
        Figure("Time to recover", f"{duration(times.get('p50'))} (p50)", f"p90 {duration(times.get('p90'))}"),
    ]
    period = f"{analytics.get('from_date', '')} to {analytics.get('to_date', '')}".strip()
    return Overview(empty=total == 0, period=period, figures=figures, charts=_charts(analytics, recovered + failed))


def _lost_to_disputes(analytics: Document) -> list[Figure]:
    """What lost disputes took back of recovered payments (which stay in Recovered), beside it; nothing when no
    dispute was lost."""
    return _dispute_figure(analytics, "lost", "Lost to disputes", "on")


def _at_risk_in_disputes(analytics: Document) -> list[Figure]:
    """What disputes open now on recovered payments put at risk (the merchant may still answer them at the payment
    connector); nothing when none is open."""
    return _dispute_figure(analytics, "open", "At risk in disputes", "open on")


def _dispute_figure(analytics: Document, which: str, label: str, on: str) -> list[Figure]:
    """The amounts of the `which` (`lost`, `open`) disputes on recovered payments, per currency, and on how many
    payments; nothing when there are none."""
    disputed = int(analytics.get(f"payments_disputed_{which}") or 0)
    amounts = analytics.get(f"disputed_{which}_amount") or {}
    if not disputed and not any(amounts.values()):
        return []
    return [
        Figure(label, recovered_amounts(amounts), f"{on} {disputed} recovered payment{'' if disputed == 1 else 's'}")
    ]


# The Overview's "Disputes to answer": how many it lists, and how near a deadline makes one urgent (or past it).
DISPUTES_TO_ANSWER_SHOWN = 5
ANSWER_SOON = timedelta(hours=72)


@dataclass(frozen=True)
class DisputeToAnswer:
    """A dispute on a recovered payment waiting for the merchant's answer, as the Overview lists it."""

    payment_id: str
    dispute_id: str
    amount: str
    reason: str
    # By when to answer it, in UTC ("not given" when the connector gave no deadline), and how long is left then
    # ("in 2 days", "overdue"; empty without a deadline).
    answer_by: str
    left: str
    # Its deadline is within ANSWER_SOON, or past.
    urgent: bool


def disputes_to_answer(disputes: list[Document], now: datetime) -> list[DisputeToAnswer]:
    """The Overview's "Disputes to answer" of the read side's `DisputeObject`s (as JSON) at `now`, in the order of
    its `answer_by` sort: those without a deadline first, then the nearest deadline first; at most
    DISPUTES_TO_ANSWER_SHOWN."""
    dated = [(d, moment(d.get("challenge_required_by"))) for d in disputes]
    dated.sort(key=lambda pair: (pair[1] is not None, pair[1] or datetime.min.replace(tzinfo=UTC)))
    rows = []
    for dispute, deadline in dated[:DISPUTES_TO_ANSWER_SHOWN]:
        given = dispute.get("challenge_required_by")
        rows.append(
            DisputeToAnswer(
                payment_id=str(dispute.get("payment_id") or ""),
                dispute_id=str(dispute.get("dispute_id") or ""),
                amount=major_units(int(dispute.get("amount") or 0), str(dispute.get("currency") or "")),
                reason=str(dispute.get("connector_reason") or "—"),
                answer_by=timestamp(given) if given else "not given",
                left=time_left(deadline, now) if deadline is not None else "",
                urgent=deadline is not None and deadline - now <= ANSWER_SOON,
            )
        )
    return rows


def _charts(analytics: Document, finished: int) -> dict[str, dict[str, Any]]:
    daily = analytics.get("daily") or []
    days = [str(day.get("date")) for day in daily]
    currencies = sorted({c for day in daily for c in (day.get("recovered_amount") or {})})
    per_day = {
        "type": "bar",
        "data": {
            "labels": days,
            "datasets": [
                {
                    "label": currency,
                    "data": [_major((day.get("recovered_amount") or {}).get(currency, 0), currency) for day in daily],
                }
                for currency in currencies
            ],
        },
        "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}},
    }
    by_attempt = analytics.get("by_attempt_number") or {}
    numbers = sorted(by_attempt, key=lambda n: int(n) if str(n).isdigit() else 1_000_000)
    rates = [round(100 * by_attempt[n] / finished, 1) if finished else 0.0 for n in numbers]
    declines = analytics.get("by_decline_class") or {}
    networks = analytics.get("by_card_network") or {}
    network_names = sorted(networks)
    return {
        "chart-recovered-per-day": per_day,
        "chart-rate-by-attempt": bar_chart(
            "% of finished payments recovered at this attempt",
            [f"attempt {n}" for n in numbers],
            rates,
            counts=False,
            scales={"y": {"beginAtZero": True, "suggestedMax": 100}},
        ),
        "chart-declines-by-class": bar_chart(
            "declined attempts", sorted(declines), [declines[k] for k in sorted(declines)], indexAxis="y"
        ),
        "chart-declines-by-network": bar_chart(
            "declined attempts", network_names, [(networks[n] or {}).get("declines", 0) for n in network_names]
        ),
    }


@dataclass(frozen=True)
class RecoveryRow:
    payment_id: str
    status: str
    amount: str
    reference: str
    attempts: int
    created: str
    last_attempt: str


@dataclass(frozen=True)
class RecoveriesPage:
    rows: list[RecoveryRow]
    total: int
    first: int
    last: int
    previous_offset: int | None
    next_offset: int | None


def recoveries_page(answer: Document, offset: int, limit: int) -> RecoveriesPage:
    """The Recoveries table and its paging, of Hyperswitch's recovery-list answer."""
    rows = []
    for item in answer.get("data") or []:
        amount = item.get("amount") or {}
        currency = str(amount.get("currency") or "")
        rows.append(
            RecoveryRow(
                payment_id=str(item.get("id")),
                status=str(item.get("status") or ""),
                amount=major_units(int(amount.get("order_amount") or 0), currency) if currency else "—",
                reference=str(item.get("merchant_reference_id") or ""),
                attempts=int(item.get("attempt_count") or 0),
                created=timestamp(item.get("created")),
                last_attempt=timestamp(item.get("last_attempt_at")),
            )
        )
    total = int(answer.get("total_count") or 0)
    return RecoveriesPage(
        rows=rows,
        total=total,
        first=offset + 1 if rows else 0,
        last=offset + len(rows),
        previous_offset=max(0, offset - limit) if offset > 0 else None,
        next_offset=offset + limit if offset + len(rows) < total else None,
    )
