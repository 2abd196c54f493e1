"""The console's Retries page: when the merchant's retries were approved, from the scheduler's retry statistics
(`GET /internal/retry-stats/{merchant_id}`, served here by a scripted scheduler on loopback whose answer the
scheduler's own `retry_stats_view` builds from counted retries; the browser draws it in tests/e2e/test_console.py)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from recovery_intake.console import retry_views
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_sandbox.serving import BackgroundServer
from recovery_scheduler.domain.retry_stats import RetryOutcome, RetryStats, StatsKey
from recovery_scheduler.http import retry_stats_view

from .fakes import MERCHANT, SETTINGS, intake
from .test_console_routes import signed_in

FUNDS = StatsKey(MERCHANT, "insufficient_funds", "visa", "debit")
GENERIC = StatsKey(MERCHANT, "do_not_honor", "mastercard", "credit")


def answer_of(counted: dict[StatsKey, list[tuple[datetime, bool]]]) -> dict[str, Any]:
    """The scheduler's answer for retries counted as (when, approved) per key."""
    stats = []
    for key, outcomes in counted.items():
        increments: Counter[str] = Counter()
        for n, (at, approved) in enumerate(outcomes):
            increments.update(RetryOutcome(key, "pay", f"att_{n}", at, approved).increments())
        stats.append(RetryStats.from_increments(key, increments))
    stats.sort(key=lambda s: -s.total.attempts)
    return retry_stats_view(MERCHANT, stats).model_dump(mode="json")


# Monday 2026-11-02: insufficient funds approved at 14:00 twice of three, never at 03:00; do_not_honor once of two.
MONDAY = datetime(2026, 11, 2, tzinfo=UTC)
COUNTED = {
    FUNDS: [(MONDAY.replace(hour=14), True), (MONDAY.replace(hour=14), True), (MONDAY.replace(hour=14), False)]
    + [(MONDAY.replace(hour=3), False)] * 2,
    GENERIC: [(MONDAY.replace(day=3, hour=9), True), (MONDAY.replace(day=3, hour=21), False)],
}


def test_the_page_sums_the_chosen_retries_by_hour_day_of_week_and_day_of_month() -> None:
    every = retry_views.retries_page(answer_of(COUNTED), retry_views.chosen_key({}))
    assert [(f.label, f.value) for f in every.figures] == [
        ("Success rate", "42.9%"),
        ("Retries", "7"),
        ("Approved", "3"),
    ]
    hours = every.charts["chart-hour-of-day"]["data"]
    assert len(hours["labels"]) == 24 and hours["labels"][14] == "14:00"
    assert hours["datasets"][0]["data"][14] == 66.7 and hours["datasets"][0]["data"][3] == 0.0
    assert hours["datasets"][1]["data"][3] == 2 and hours["datasets"][1]["data"][9] == 1  # the retries behind
    weekdays = every.charts["chart-day-of-week"]["data"]
    assert weekdays["labels"][:2] == ["Mon", "Tue"] and weekdays["datasets"][1]["data"][:2] == [5, 2]
    assert len(every.charts["chart-day-of-month"]["data"]["labels"]) == 31
    assert [(r.decline_code, r.attempts, r.successes, r.rate) for r in every.rows] == [
        ("insufficient_funds", 5, 2, "40.0%"),
        ("do_not_honor", 2, 1, "50.0%"),
    ]
    assert every.choices["card_network"] == ["mastercard", "visa"]

    funds = retry_views.retries_page(answer_of(COUNTED), retry_views.chosen_key({"decline_code": "insufficient_funds"}))
    assert [f.value for f in funds.figures] == ["40.0%", "5", "2"]
    assert funds.figures[0].note == "insufficient_funds"
    assert funds.charts["chart-hour-of-day"]["data"]["datasets"][1]["data"][9] == 0
    assert [r.selected for r in funds.rows] == [True, False]


def test_no_retry_yet_is_an_empty_state() -> None:
    shown = retry_views.retries_page(answer_of({}), retry_views.chosen_key({}))
    assert shown.empty and shown.rows == [] and shown.figures[0].value == "—"


@dataclass
class ScriptedScheduler:
    answer: dict[str, Any]
    status: int = 200
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base: str = ""

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/internal/retry-stats/{merchant}", self._stats)])

    async def _stats(self, request: Request) -> JSONResponse:
        self.received.append((request.url.path, dict(request.headers)))
        return JSONResponse(self.answer, status_code=self.status)


@pytest.fixture
def scheduler() -> Iterator[ScriptedScheduler]:
    scripted = ScriptedScheduler(answer_of(COUNTED))
    with BackgroundServer(scripted.app) as server:
        scripted.base = server.url
        yield scripted


async def test_a_merchant_sees_when_its_retries_succeed(scheduler: ScriptedScheduler) -> None:
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        page = await client.get("/console/retries")
        chosen = await client.get("/console/retries", params={"decline_code": "do_not_honor"})
        unknown = await client.get("/console/retries", params={"card_network": "<b>unionpay</b>"})

    assert page.status_code == 200, page.text
    [(path, headers), *_] = scheduler.received
    assert path == f"/internal/retry-stats/{MERCHANT}"
    assert (headers[TOKEN_HEADER], headers[MERCHANT_HEADER]) == (SETTINGS.internal_api_token, MERCHANT)
    assert 'aria-current="page">Retries' in page.text
    assert 'data-figure="Success rate"' in page.text and "42.9%" in page.text
    charts = json.loads(page.text.split('<script type="application/json" id="charts">')[1].split("</script>")[0])
    assert set(charts) == {"chart-hour-of-day", "chart-day-of-week", "chart-day-of-month"}
    assert "?decline_code=insufficient_funds&amp;card_network=visa&amp;funding=debit" in page.text
    assert chosen.status_code == 200 and '<option value="do_not_honor" selected>' in chosen.text
    assert "50.0%" in chosen.text
    # A value none of the merchant's retries has is refused with the reason, escaped.
    assert unknown.status_code == 400
    assert "is not a card network of this merchant" in unknown.text and "<b>unionpay" not in unknown.text


async def test_the_page_says_so_when_the_scheduler_does_not_answer(scheduler: ScriptedScheduler) -> None:
    scheduler.status = 503
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        page = await client.get("/console/retries")
    assert page.status_code == 503
    assert "scheduler" in page.text
