"""The Overview page as a signed-in merchant sees it, its figures read from a scripted analytics service on
loopback: "Lost to disputes" (what lost disputes took back of recovered payments, per currency, and on how many)
stands beside Recovered when a dispute was lost, and is not there when none was; "At risk in disputes" (what open
disputes put at risk) after it while any is open."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from recovery_sandbox.serving import BackgroundServer

from .fakes import intake
from .test_console_routes import signed_in
from .test_console_views import ANALYTICS

_FIGURE = re.compile(
    r'data-figure="([^"]+)">\s*<span class="label">[^<]*</span>\s*<span class="value">([^<]*)</span>'
    r'(?:\s*<span class="note">([^<]*)</span>)?'
)


@contextmanager
def analytics_answering(figures: dict[str, Any], asked: list[list[tuple[str, str]]] | None = None) -> Iterator[str]:
    """The analytics service's two routes the Overview and Recoveries pages read: the figures, and the list (empty:
    no record back waiting, no payment), each query of the list kept in `asked` when given."""

    async def answer_figures(request: Request) -> JSONResponse:
        return JSONResponse(figures)

    async def answer_list(request: Request) -> JSONResponse:
        if asked is not None:
            asked.append(request.query_params.multi_items())
        return JSONResponse({"count": 0, "total_count": 0, "data": [], "next_cursor": None})

    routes = [
        Route("/internal/analytics/{merchant}", answer_figures),
        Route("/internal/recoveries/{merchant}", answer_list),
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
