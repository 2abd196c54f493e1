"""What the Retries page shows, computed from the scheduler's retry statistics (`RetryStatsResponse`): when this
system's retries succeeded, by hour of day, day of week and day of month (UTC), for all of the merchant's retries
or for one decline code, card network or funding, and the keys as a table. Pure, like views.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recovery_intake.console.formatting import percentage
from recovery_intake.console.ports import Document
from recovery_intake.console.views import Figure, bar_chart

# The filters a visitor may set, as the statistics' key names them.
KEY_FIELDS = ("decline_code", "card_network", "funding")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # ISO 8601: bucket 1 is Monday
BUCKETINGS: dict[str, tuple[str, Callable[[int], str]]] = {
    "hour_of_day": ("Success rate by hour of day (UTC)", lambda b: f"{b:02d}:00"),
    "day_of_week": ("Success rate by day of week (UTC)", lambda b: WEEKDAYS[b - 1]),
    "day_of_month": ("Success rate by day of month (UTC)", str),
}


@dataclass(frozen=True)
class KeyRow:
    decline_code: str
    card_network: str
    funding: str
    attempts: int
    successes: int
    rate: str
    selected: bool


@dataclass(frozen=True)
class RetriesPage:
    empty: bool  # no retry of this system counted yet
    figures: list[Figure]
    rows: list[KeyRow]
    # Each filter's choices (the values the merchant's keys have) and the chosen value ("" for all).
    choices: dict[str, list[str]]
    chosen: dict[str, str]
    # Chart.js configurations by canvas id (static/console.js draws them), with each chart's caption.
    charts: dict[str, dict[str, Any]]
    captions: dict[str, str]


def chosen_key(query: Any) -> dict[str, str]:
    """The filters of the page's query string (absent or empty: all)."""
    return {name: str(query.get(name) or "") for name in KEY_FIELDS}


def retries_page(answer: Document, chosen: dict[str, str]) -> RetriesPage:
    groups = list(answer.get("data") or [])
    narrowed = any(chosen.values())

    def chosen_one(group: Document) -> bool:
        return all(not v or str(group.get(k)) == v for k, v in chosen.items())

    matching = [g for g in groups if chosen_one(g)]
    attempts = sum(int(g.get("attempts") or 0) for g in matching)
    successes = sum(int(g.get("successes") or 0) for g in matching)
    scope = ", ".join(v for v in chosen.values() if v) or "every retry"
    figures = [
        Figure("Success rate", percentage(successes / attempts if attempts else None), scope),
        Figure("Retries", str(attempts), "made by this system, counted once each"),
        Figure("Approved", str(successes)),
    ]
    rows = [
        KeyRow(
            decline_code=str(g.get("decline_code")),
            card_network=str(g.get("card_network")),
            funding=str(g.get("funding")),
            attempts=int(g.get("attempts") or 0),
            successes=int(g.get("successes") or 0),
            rate=percentage(g.get("success_rate")),
            selected=narrowed and chosen_one(g),
        )
        for g in groups
    ]
    charts, captions = {}, {}
    for bucketing, (caption, label) in BUCKETINGS.items():
        summed = _summed(matching, bucketing)
        canvas = f"chart-{bucketing.replace('_', '-')}"
        rates = [round(100 * s / a, 1) if a else 0.0 for _, a, s in summed]
        tried = [a for _, a, _ in summed]
        charts[canvas] = _rate_and_attempts([label(b) for b, _, _ in summed], rates, tried)
        captions[canvas] = caption
    return RetriesPage(
        empty=not groups,
        figures=figures,
        rows=rows,
        choices={name: sorted({str(g.get(name)) for g in groups}) for name in KEY_FIELDS},
        chosen=chosen,
        charts=charts,
        captions=captions,
    )


def _summed(groups: list[Document], bucketing: str) -> list[tuple[int, int, int]]:
    """(bucket, attempts, successes) of every bucket, summed over `groups`, in bucket order."""
    totals: dict[int, tuple[int, int]] = {}
    for group in groups:
        for item in group.get(bucketing) or []:
            bucket = int(item["bucket"])
            a, s = totals.get(bucket, (0, 0))
            totals[bucket] = (a + int(item.get("attempts") or 0), s + int(item.get("successes") or 0))
    return [(b, a, s) for b, (a, s) in sorted(totals.items())]


def _rate_and_attempts(labels: list[str], rates: list[float], attempts: list[int]) -> dict[str, Any]:
    """The success rate as bars, the attempts behind each as a line on a second axis (a high rate on two attempts
    is not a finding)."""
    chart = bar_chart("% approved", labels, rates, counts=False)
    chart["data"]["datasets"][0]["yAxisID"] = "rate"
    chart["data"]["datasets"].append(
        {"type": "line", "label": "retries", "data": attempts, "yAxisID": "attempts", "pointRadius": 2}
    )
    chart["options"]["scales"] = {
        "rate": {"type": "linear", "position": "left", "beginAtZero": True, "suggestedMax": 100},
        "attempts": {
            "type": "linear",
            "position": "right",
            "beginAtZero": True,
            "ticks": {"precision": 0},
            "grid": {"drawOnChartArea": False},
        },
    }
    return chart
