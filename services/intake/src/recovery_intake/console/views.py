"""What each page shows, computed from the internal APIs' answers: figures formatted, chart series, table rows.

Pure functions (no I/O): the templates only lay these out, and unit tests check them against known answers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from recovery_intake.console.formatting import currency_exponent, duration, major_units, percentage, timestamp
from recovery_intake.console.ports import Document

# Timeline entry kinds (recovery_contracts.api.process_tracker.TimelineEntryKind) as the payment page groups them.
PLAN_KINDS = frozenset({"retry_scheduled", "psync_scheduled"})
END_KINDS = frozenset({"recovery_finished"})
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
    return float(Decimal(int(amount_minor)).scaleb(-currency_exponent(currency)))


def recovered_amounts(per_currency: dict[str, int]) -> str:
    """`{"USD": 9000, "EUR": 150}` -> `"EUR 1.50, USD 90.00"`; `"—"` when nothing was recovered."""
    shown = [major_units(amount, currency) for currency, amount in sorted(per_currency.items()) if amount]
    return ", ".join(shown) or "—"


def _bar(label: str, labels: list[str], values: list[float], counts: bool = True, **extra: Any) -> dict[str, Any]:
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
        Figure("In progress", str(int(analytics.get("payments_in_progress") or 0)), "still being retried"),
        Figure("Failed", str(failed), "retries ended without success"),
        Figure("Payments", str(total), "accepted for recovery"),
        Figure("Attempts per recovery", "—" if attempts is None else f"{float(attempts):.2f}"),
        Figure("Time to recover", f"{duration(times.get('p50'))} (p50)", f"p90 {duration(times.get('p90'))}"),
    ]
    period = f"{analytics.get('from_date', '')} to {analytics.get('to_date', '')}".strip()
    return Overview(empty=total == 0, period=period, figures=figures, charts=_charts(analytics, recovered + failed))


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
        "chart-rate-by-attempt": _bar(
            "% of finished payments recovered at this attempt",
            [f"attempt {n}" for n in numbers],
            rates,
            counts=False,
            scales={"y": {"beginAtZero": True, "suggestedMax": 100}},
        ),
        "chart-declines-by-class": _bar(
            "declined attempts", sorted(declines), [declines[k] for k in sorted(declines)], indexAxis="y"
        ),
        "chart-declines-by-network": _bar(
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


@dataclass(frozen=True)
class AttemptRow:
    number: int
    token: str
    network: str
    outcome: str
    decline_code: str
    decline_class: str
    advice: str
    message: str
    at: str


@dataclass(frozen=True)
class TimelineLine:
    at: str
    what: str
    detail: str


@dataclass(frozen=True)
class DeliveryAttemptRow:
    kind: str
    at: str
    status_code: str
    delivered: bool
    error: str


@dataclass(frozen=True)
class Delivery:
    event_id: str
    event_type: str
    profile_id: str
    created: str
    delivered: bool
    attempts: list[DeliveryAttemptRow]


@dataclass(frozen=True)
class RecordBackRow:
    """One try of recording the payment back at the billing system, and where the record back stood after it."""

    attempt: int
    at: str
    billing_connector: str
    state: str
    answer: str


@dataclass(frozen=True)
class PaymentPage:
    payment_id: str
    status: str
    business_status: str
    request: list[Figure]
    attempts: list[AttemptRow]
    plans: list[TimelineLine]
    record_back: list[RecordBackRow]
    ending: list[TimelineLine]
    story: list[TimelineLine]
    deliveries: list[Delivery] = field(default_factory=list)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _line(entry: Document) -> TimelineLine:
    number = entry.get("attempt_number")
    what = str(entry.get("kind") or "").replace("_", " ")
    if number is not None:
        what = f"{what} (attempt {number})"
    detail = " · ".join(part for part in (_text(entry.get("detail")), _text(entry.get("token"))) if part)
    return TimelineLine(timestamp(entry.get("at")), what, detail)


def _advice(attempt: Document) -> str:
    parts = []
    if attempt.get("advice_code"):
        parts.append(f"advice {attempt['advice_code']}")
    if attempt.get("network_advice_code"):
        parts.append(f"network advice {attempt['network_advice_code']}")
    if attempt.get("network_decline_code"):
        parts.append(f"network decline {attempt['network_decline_code']}")
    return ", ".join(parts)


def _decision(note: Document) -> TimelineLine:
    """One of the scheduler's decisions (`at`, `what`, `reason`, then its details) as a line."""
    details = ", ".join(
        f"{name.replace('_', ' ')} {value}" for name, value in note.items() if name not in ("at", "what", "reason")
    )
    reason = " · ".join(part for part in (_text(note.get("reason")), details) if part)
    return TimelineLine(timestamp(note.get("at")), _text(note.get("what")).replace("_", " "), reason)


def _plans(timeline: Document, workflow: Document | None) -> list[TimelineLine]:
    """The scheduler's decisions with their reasons when it answered, else what the read model knows of them."""
    if workflow is None:
        return [_line(e) for e in timeline.get("entries") or [] if e.get("kind") in PLAN_KINDS]
    lines = [_decision(note) for note in workflow.get("timeline") or []]
    plan = workflow.get("plan")
    if isinstance(plan, dict):
        number = f" (attempt {plan['attempt_number']})" if plan.get("attempt_number") else ""
        detail = " · ".join(_text(plan.get(k)) for k in ("reason", "token") if plan.get(k))
        what = f"next: {_text(plan.get('kind')).replace('_', ' ')}{number}"
        lines.append(TimelineLine(timestamp(plan.get("due_at") or plan.get("at")), what, detail))
    return lines


def payment_page(
    timeline: Document, intent: Document | None, deliveries: list[Delivery], workflow: Document | None = None
) -> PaymentPage:
    """The Payment page of the read model's timeline and recovery intent, the scheduler's workflow (its plans'
    reasons and decline classes, when it answered), and the webhook deliveries."""
    # The scheduler's decline class of each attempt (the class its planner used), by attempt number.
    classes = {
        int(a.get("number") or 0): _text(a.get("decline_class"))
        for a in (workflow or {}).get("attempts") or []
        if a.get("decline_class")
    }
    request = timeline.get("request") or {}
    figures: list[Figure] = []
    if request:
        currency = str(request.get("currency") or "")
        figures = [
            Figure("Amount", major_units(int(request.get("amount") or 0), currency)),
            Figure("Invoice", _text(request.get("merchant_reference_id"))),
            Figure("Accepted", timestamp(request.get("created_at"))),
            Figure("Algorithm", _text(request.get("algorithm"))),
            Figure("Cards (tokens)", ", ".join(request.get("tokens") or [])),
            Figure("Billing connector", _text(request.get("billing_connector_id"))),
            Figure("Payment connector", _text(request.get("payment_connector_id"))),
            Figure(
                "First failure",
                " ".join(
                    p for p in (_text(request.get("first_error_code")), _text(request.get("first_error_message"))) if p
                ),
            ),
        ]
    attempts = [
        AttemptRow(
            number=int(a.get("attempt_number") or 0),
            token=_text(a.get("token")),
            network=_text(a.get("card_network")),
            outcome=_text(a.get("outcome")),
            decline_code=_text(a.get("decline_code") or a.get("error_code")),
            decline_class=classes.get(int(a.get("attempt_number") or 0)) or _text(a.get("decline_class")),
            advice=_advice(a),
            message=_text(a.get("message")),
            at=timestamp(a.get("at")),
        )
        for a in sorted(timeline.get("attempts") or [], key=lambda a: int(a.get("attempt_number") or 0))
    ]
    entries = timeline.get("entries") or []
    status = _text((intent or {}).get("status")) or _text(timeline.get("status"))
    return PaymentPage(
        payment_id=_text(timeline.get("payment_id")),
        status=status,
        business_status=_text(timeline.get("business_status")),
        request=figures,
        attempts=attempts,
        plans=_plans(timeline, workflow),
        record_back=_record_back(timeline),
        ending=[_line(e) for e in entries if e.get("kind") in END_KINDS],
        story=[_line(e) for e in entries],
        deliveries=deliveries,
    )


def _record_back(timeline: Document) -> list[RecordBackRow]:
    """The record back's tries (the timeline's `record_back` records), oldest first."""
    rows = []
    for tried in sorted(timeline.get("record_back") or [], key=lambda t: int(t.get("attempt") or 0)):
        code = tried.get("status_code")
        rows.append(
            RecordBackRow(
                attempt=int(tried.get("attempt") or 0),
                at=timestamp(tried.get("at")),
                billing_connector=_text(tried.get("billing_connector")),
                state=_text(tried.get("state")),
                answer=f"HTTP {code}" if code is not None else _text(tried.get("error")) or "no answer",
            )
        )
    return rows


def delivery(event: Document, attempts: list[Document]) -> Delivery:
    """One webhook event and every attempt to deliver it (the dispatcher's list item and attempt records)."""
    rows = [
        DeliveryAttemptRow(
            kind=_text(a.get("delivery_attempt")).replace("_", " "),
            at=timestamp(a.get("created")),
            status_code=_text((a.get("response") or {}).get("status_code")) or "—",
            delivered=bool(a.get("is_delivery_successful")),
            error=_text((a.get("response") or {}).get("error_message")),
        )
        for a in sorted(attempts, key=lambda a: str(a.get("created") or ""))
    ]
    return Delivery(
        event_id=_text(event.get("event_id")),
        event_type=_text(event.get("event_type")),
        profile_id=_text(event.get("profile_id")),
        created=timestamp(event.get("created")),
        delivered=bool(event.get("is_delivery_successful")),
        attempts=rows,
    )


@dataclass(frozen=True)
class EndpointHealth:
    profile_id: str
    events: int
    delivered: int
    success_rate: str
    last_failure: str


def endpoint_health(events: list[Document]) -> list[EndpointHealth]:
    """Per profile, of its recent events: how many were delivered (eventually, on any attempt)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    last_failure: dict[str, str] = {}
    for event in events:
        profile = _text(event.get("profile_id"))
        counts[profile][0] += 1
        if event.get("is_delivery_successful"):
            counts[profile][1] += 1
        elif profile not in last_failure:  # newest first
            last_failure[profile] = timestamp(event.get("created"))
    return [
        EndpointHealth(
            profile_id=profile,
            events=total,
            delivered=delivered,
            success_rate=percentage(delivered / total if total else None),
            last_failure=last_failure.get(profile, "—"),
        )
        for profile, (total, delivered) in sorted(counts.items())
    ]


@dataclass(frozen=True)
class EndpointRow:
    """One endpoint (a profile's URL) as the dispatcher keeps its health."""

    profile_id: str
    url: str
    current: bool
    success_rate: str
    attempts: int
    latency: str
    breaker: str
    disabled: str


def _latency(latency: Document) -> str:
    mean, p90 = latency.get("mean"), latency.get("p90")
    if mean is None:
        return "—"
    return f"{float(mean):.0f} ms (p90 {int(p90 or 0)} ms)"


def _breaker(breaker: Document) -> str:
    state = _text(breaker.get("state") or "closed").replace("_", " ")
    failures = int(breaker.get("consecutive_failures") or 0)
    parts = [state]
    if failures:
        parts.append(f"{failures} failure{'' if failures == 1 else 's'} in a row")
    if breaker.get("retry_at") and state != "closed":
        parts.append(f"retry at {timestamp(breaker['retry_at'])}")
    return ", ".join(parts)


def _disabled(endpoint: Document) -> str:
    if endpoint.get("disabled_reason"):
        return f"yes: {endpoint['disabled_reason']}"
    if endpoint.get("disabled"):
        return "yes: webhooks switched off"
    if endpoint.get("failing_since"):
        return f"no (failing since {timestamp(endpoint['failing_since'])})"
    return "no"


def endpoint_rows(endpoints: list[Document]) -> list[EndpointRow]:
    """The dispatcher's endpoint health (`GET /internal/endpoints/{merchant_id}`), current URLs first."""
    ordered = sorted(endpoints, key=lambda e: (_text(e.get("profile_id")), not e.get("current"), _text(e.get("url"))))
    return [
        EndpointRow(
            profile_id=_text(e.get("profile_id")),
            url=_text(e.get("url")),
            current=bool(e.get("current")),
            success_rate=percentage(e.get("success_rate")),
            attempts=int(e.get("recent_attempts") or 0),
            latency=_latency(e.get("latency_ms") or {}),
            breaker=_breaker(e.get("breaker") or {}),
            disabled=_disabled(e),
        )
        for e in ordered
    ]


@dataclass(frozen=True)
class EventRow:
    event_id: str
    event_type: str
    # The event's primary object: the payment attempt it is about (as in Hyperswitch).
    object_id: str
    profile_id: str
    created: str
    delivered: bool


def event_rows(events: list[Document]) -> list[EventRow]:
    return [
        EventRow(
            event_id=_text(e.get("event_id")),
            event_type=_text(e.get("event_type")),
            object_id=_text(e.get("object_id")),
            profile_id=_text(e.get("profile_id")),
            created=timestamp(e.get("created")),
            delivered=bool(e.get("is_delivery_successful")),
        )
        for e in events
    ]
