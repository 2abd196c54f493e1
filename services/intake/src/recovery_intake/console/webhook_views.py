"""What the Webhooks page shows, computed from the events API's and the endpoint-health API's answers: delivery
success per profile, each endpoint's breaker, latency and disabled state, the recent events, and the windows of
"Deliver failed events again" with what the page says after one.

Pure functions (no I/O), like `views` for the other pages.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from recovery_contracts.api.fields import ID_PATTERN
from recovery_intake.console.formatting import percentage, text_of, timestamp
from recovery_intake.console.ports import Document


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
        profile = text_of(event.get("profile_id"))
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
    state = text_of(breaker.get("state") or "closed").replace("_", " ")
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
    ordered = sorted(
        endpoints, key=lambda e: (text_of(e.get("profile_id")), not e.get("current"), text_of(e.get("url")))
    )
    return [
        EndpointRow(
            profile_id=text_of(e.get("profile_id")),
            url=text_of(e.get("url")),
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
            event_id=text_of(e.get("event_id")),
            event_type=text_of(e.get("event_type")),
            object_id=text_of(e.get("object_id")),
            profile_id=text_of(e.get("profile_id")),
            created=timestamp(e.get("created")),
            delivered=bool(e.get("is_delivery_successful")),
        )
        for e in events
    ]


# The Webhooks page's "Deliver failed events again": how far back (the events API's recover takes 14 days at most).
RECOVER_WINDOWS: dict[str, tuple[str, timedelta]] = {
    "1": ("the last hour", timedelta(hours=1)),
    "24": ("the last day", timedelta(days=1)),
    "72": ("the last 3 days", timedelta(days=3)),
    "168": ("the last 7 days", timedelta(days=7)),
    "336": ("the last 14 days", timedelta(days=14)),
}


def recover_told(answer: Document) -> dict[str, str]:
    """What the page is to say of a recover's answer (its redirect's query): how many go again, whether more are
    left, the profiles whose endpoint refused them."""
    told = {"recovered": str(int(answer.get("recovered_count") or 0))}
    if answer.get("next_cursor"):
        told["more"] = "1"
    if refused := sorted(answer.get("refused_profiles") or {}):
        told["refused"] = ",".join(refused)
    return told


PROFILE_ID = re.compile(ID_PATTERN)


def recovered_notice(query: Mapping[str, str]) -> str | None:
    """What the page says after a recover (its redirect's query), None otherwise."""
    count = query.get("recovered")
    if count is None or not count.isdigit():
        return None
    shown = {"0": "No failed event to deliver again", "1": "1 failed event will be delivered again"}.get(
        count, f"{count} failed events will be delivered again"
    )
    more = " (more are left: deliver again for the next ones)" if query.get("more") else ""
    refused = query.get("refused")
    # Profile ids only (a crafted link would otherwise put its own words in the page's notice).
    if not refused or not all(len(p) <= 64 and PROFILE_ID.fullmatch(p) for p in refused.split(",")):
        return f"{shown}{more}."
    return (
        f"{shown}{more}. Not sent: the failed events of {refused.replace(',', ', ')}, whose endpoint refuses "
        "deliveries now (see Endpoint health: fix it, or update the profile to re-enable it, and deliver again)."
    )
