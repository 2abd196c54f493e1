"""The Overview page as a signed-in merchant sees it, its figures read from a scripted analytics service on
loopback: "Lost to disputes" (what lost disputes took back of recovered payments, per currency, and on how many)
stands beside Recovered when a dispute was lost, and is not there when none was; "At risk in disputes" (what open
disputes put at risk) after it while any is open. "Disputes to answer": the disputes waiting for the merchant's
answer, by when to answer them, each linking to its payment's page, those due within 72 hours or overdue marked
urgent; no panel when there is none, or when the read side does not answer them (the rest of the page renders)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from recovery_contracts.disputes import DisputeObject, DisputeStage, DisputeStatus
from recovery_runtime.internal_api import MERCHANT_HEADER, PROFILE_HEADER
from recovery_runtime.testing import FixedClock
from recovery_sandbox.serving import BackgroundServer

from .fakes import MERCHANT, intake
from .test_console_routes import signed_in
from .test_console_views import ANALYTICS

_FIGURE = re.compile(
    r'data-figure="([^"]+)">\s*<span class="label">[^<]*</span>\s*<span class="value">([^<]*)</span>'
    r'(?:\s*<span class="note">([^<]*)</span>)?'
)
_DISPUTE_ROW = re.compile(r'<tr class="dispute-to-answer( urgent)?" data-dispute="[^"]*">(.*?)</tr>', re.S)
_CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
_TAG = re.compile(r"<[^>]+>")
# The intake fakes' clock: the console's `now`.
NOW = FixedClock().now()


def dispute_to_answer(
    payment_id: str, amount: str, currency: str, answer_by: datetime | None, reason: str | None = "fraudulent"
) -> dict[str, Any]:
    """An opened dispute on `payment_id` as the analytics service answers it (`DisputeObject`, as JSON)."""
    return DisputeObject(
        dispute_id=f"dsp_{payment_id}",
        payment_id=payment_id,
        attempt_id=f"att_{payment_id}",
        amount=amount,
        currency=currency,
        dispute_stage=DisputeStage.DISPUTE,
        dispute_status=DisputeStatus.DISPUTE_OPENED,
        connector="stripe",
        connector_status="needs_response",
        connector_dispute_id=f"dp_{payment_id}",
        connector_reason=reason,
        challenge_required_by=answer_by,
        created_at=NOW - timedelta(days=3),
    ).model_dump(mode="json")


def disputes_panel(page: str) -> list[tuple[bool, list[str]]]:
    """The rows of the Overview's "Disputes to answer", in order: (marked urgent, the cells' text)."""
    return [
        (bool(urgent), [" ".join(_TAG.sub("", cell).split()) for cell in _CELL.findall(row)])
        for urgent, row in _DISPUTE_ROW.findall(page)
    ]


@contextmanager
def analytics_answering(
    figures: dict[str, Any],
    asked: list[list[tuple[str, str]]] | None = None,
    disputes: list[dict[str, Any]] | int | None = None,
    disputes_asked: list[Request] | None = None,
) -> Iterator[str]:
    """The analytics service's routes the Overview and Recoveries pages read: the figures, the list (empty: no record
    back waiting, no payment), each query of the list kept in `asked` when given, and the disputes (`disputes`: the
    `DisputeObject`s it answers, none when not given, or the HTTP status it answers instead), each request for them
    kept in `disputes_asked` when given."""

    async def answer_figures(request: Request) -> JSONResponse:
        return JSONResponse(figures)

    async def answer_list(request: Request) -> JSONResponse:
        if asked is not None:
            asked.append(request.query_params.multi_items())
        return JSONResponse({"count": 0, "total_count": 0, "data": [], "next_cursor": None})

    async def answer_disputes(request: Request) -> JSONResponse:
        if disputes_asked is not None:
            disputes_asked.append(request)
        if isinstance(disputes, int):
            return JSONResponse({"error": {"message": "not now"}}, status_code=disputes)
        return JSONResponse(disputes or [])

    routes = [
        Route("/internal/analytics/{merchant}", answer_figures),
        Route("/internal/recoveries/{merchant}", answer_list),
        Route("/internal/disputes/{merchant}", answer_disputes),
    ]
    with BackgroundServer(Starlette(routes=routes)) as server:
        yield server.url


async def overview_figures(figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The Overview's figures as the page shows them, in order: (label, value, note)."""
    with analytics_answering(figures) as url:
        async with signed_in(intake(analytics_internal_url=url)) as client:
            page = await client.get("/console/overview")
    assert page.status_code == 200, page.text
    return [(label, value.strip(), (note or "").strip()) for label, value, note in _FIGURE.findall(page.text)]


async def test_the_overview_shows_what_lost_disputes_took_back_beside_the_recovered_figures() -> None:
    lost = {"payments_disputed_lost": 2, "disputed_lost_amount": {"USD": 4500, "EUR": 150}}

    shown = await overview_figures({**ANALYTICS, **lost})

    labels = [label for label, _, _ in shown]
    recovered = labels.index("Recovered")
    assert shown[recovered][1] == "JPY 500, USD 90.00"  # the disputed payments are still counted recovered
    assert shown[recovered + 1] == ("Lost to disputes", "EUR 1.50, USD 45.00", "on 2 recovered payments")
    # None lost: the figure is not there.
    none_lost = await overview_figures({**ANALYTICS, "payments_disputed_lost": 0, "disputed_lost_amount": {}})
    assert [label for label, _, _ in none_lost] == [label for label in labels if label != "Lost to disputes"]


async def test_the_overview_shows_what_open_disputes_put_at_risk_after_what_lost_ones_took_back() -> None:
    lost = {"payments_disputed_lost": 1, "disputed_lost_amount": {"USD": 2250}}
    open_now = {"payments_disputed_open": 2, "disputed_open_amount": {"USD": 3000}}

    shown = await overview_figures({**ANALYTICS, **lost, **open_now})

    labels = [label for label, _, _ in shown]
    lost_at = labels.index("Lost to disputes")
    assert shown[lost_at + 1] == ("At risk in disputes", "USD 30.00", "open on 2 recovered payments")
    # None open: the figure is not there, whatever was lost.
    none_open = await overview_figures({**ANALYTICS, **lost})
    assert "At risk in disputes" not in [label for label, _, _ in none_open]


async def test_the_overview_lists_the_disputes_to_answer_by_deadline_the_near_and_overdue_ones_urgent() -> None:
    # As the read side answers them (`sort=answer_by`): the one without a deadline first, then the earliest.
    answered = [
        dispute_to_answer("pay_d", "1000", "EUR", None, reason="general"),
        dispute_to_answer("pay_a", "4500", "USD", NOW - timedelta(hours=2)),
        dispute_to_answer("pay_b", "500", "JPY", NOW + timedelta(hours=5, minutes=30), reason="product_not_received"),
        dispute_to_answer("pay_c", "12345", "KWD", NOW + timedelta(days=2, hours=3)),
        dispute_to_answer("pay_e", "2250", "USD", NOW + timedelta(days=5), reason=None),
    ]
    requests: list[Request] = []
    listed: list[list[tuple[str, str]]] = []
    with analytics_answering(ANALYTICS, listed, answered, requests) as url:
        async with signed_in(intake(analytics_internal_url=url)) as client:
            page = await client.get("/console/overview")
            panel = re.search(r'<section class="card" id="disputes-to-answer">(.*?)</section>', page.text, re.S)
            assert page.status_code == 200 and panel, page.text
            [every_open] = re.findall(r'<a href="([^"]+)">Every payment with an open dispute</a>', panel.group(1))
            recoveries = await client.get(every_open)

    [asked] = requests
    assert asked.url.path == f"/internal/disputes/{MERCHANT}"
    assert asked.query_params.multi_items() == [
        ("dispute_status", "dispute_opened"),
        ("sort", "answer_by"),
        ("limit", "5"),
    ]
    assert asked.headers[MERCHANT_HEADER] == MERCHANT and PROFILE_HEADER not in asked.headers
    assert "<h2>Disputes to answer</h2>" in panel.group(1)
    assert disputes_panel(page.text) == [
        (False, ["pay_d", "dsp_pay_d", "EUR 10.00", "general", "not given"]),
        (True, ["pay_a", "dsp_pay_a", "USD 45.00", "fraudulent", "2026-01-15 10:00:00 UTC (overdue)"]),
        (True, ["pay_b", "dsp_pay_b", "JPY 500", "product_not_received", "2026-01-15 17:30:00 UTC (in 5 hours)"]),
        (True, ["pay_c", "dsp_pay_c", "KWD 12.345", "fraudulent", "2026-01-17 15:00:00 UTC (in 2 days)"]),
        (False, ["pay_e", "dsp_pay_e", "USD 22.50", "—", "2026-01-20 12:00:00 UTC (in 5 days)"]),
    ]
    links = re.findall(r'<a href="(/console/payments/[^"]+)">', panel.group(1))
    # To the dispute on the payment's page (its answer form follows the dispute's row).
    assert links == [f"/console/payments/{p}#dispute-dsp_{p}" for p in ("pay_d", "pay_a", "pay_b", "pay_c", "pay_e")]
    # "Every payment with an open dispute": the Recoveries page filtered to them.
    assert every_open == "/console/recoveries?dispute=open"
    assert recoveries.status_code == 200, recoveries.text
    assert ("dispute_state", "open") in listed[-1]


async def test_the_disputes_to_answer_show_whatever_the_period_shows() -> None:
    nothing_in_the_period = {**ANALYTICS, "payments_total": 0}
    answered = [dispute_to_answer("pay_a", "4500", "USD", NOW + timedelta(days=1))]
    with analytics_answering(nothing_in_the_period, disputes=answered) as url:
        async with signed_in(intake(analytics_internal_url=url)) as client:
            page = await client.get("/console/overview", params={"from": "2025-01-01", "to": "2025-01-31"})

    assert page.status_code == 200, page.text
    assert 'data-testid="empty-state"' in page.text
    assert disputes_panel(page.text) == [
        (True, ["pay_a", "dsp_pay_a", "USD 45.00", "fraudulent", "2026-01-16 12:00:00 UTC (in 1 day)"])
    ]


async def test_no_disputes_to_answer_no_panel() -> None:
    with analytics_answering(ANALYTICS, disputes=[]) as url:
        async with signed_in(intake(analytics_internal_url=url)) as client:
            page = await client.get("/console/overview")

    assert page.status_code == 200, page.text
    assert "Disputes to answer" not in page.text and "disputes-to-answer" not in page.text
    assert "Every payment with an open dispute" not in page.text


@pytest.mark.parametrize("status", [500, 503, 404, 422])
async def test_the_overview_renders_without_the_panel_when_the_read_side_does_not_answer_the_disputes(
    status: int,
) -> None:
    """A 5xx, a 404 (an analytics service without the route) or a refusal: the panel is left out, the figures are
    shown."""
    with analytics_answering(ANALYTICS, disputes=status) as url:
        async with signed_in(intake(analytics_internal_url=url)) as client:
            page = await client.get("/console/overview")

    assert page.status_code == 200, page.text
    assert "Disputes to answer" not in page.text
    figures = dict((label, value.strip()) for label, value, _ in _FIGURE.findall(page.text))
    assert figures["Recovered"] == "JPY 500, USD 90.00"
    assert 'id="chart-recovered-per-day"' in page.text
