"""The read model against the real broker and database: a known history, published shuffled and with
redeliveries to the exchanges the services publish to, reaches the running analytics service, whose figures are
the hand-worked ones and whose views carry the events they were folded from; a rebuild from its event log gives
the same views (those events included) and days."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import httpx
import pytest

from recovery_analytics.adapters.days import MongoDailyStore
from recovery_analytics.adapters.rebuild import rebuild
from recovery_analytics.adapters.views import COLLECTION as VIEWS
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_runtime.mongo import connect
from recovery_runtime.settings import DEVELOPMENT_INTERNAL_TOKEN
from support.broker import broker_probe, eventually
from support.recovery_history import EXPECTED_ANALYTICS, MERCHANT, history
from support.stack import StackFactory

RANGE = {"from": "2026-01-15", "to": "2026-01-16"}
HEADERS = {TOKEN_HEADER: DEVELOPMENT_INTERNAL_TOKEN, MERCHANT_HEADER: MERCHANT}


async def _read_model(db: Any) -> tuple[dict[str, dict[str, Any]], list[tuple[date, dict[str, int]]]]:
    views = {doc["_id"]: {k: v for k, v in doc.items() if k != "version"} async for doc in db[VIEWS].find()}
    days = await MongoDailyStore(db).between(MERCHANT, None, date(2026, 1, 1), date(2026, 12, 31))
    # A day may be stored in several parts (its parts, or one after a rebuild): its figures are their sum.
    summed: dict[date, dict[str, int]] = {}
    for part in days:
        day = summed.setdefault(part.day, {})
        for key, value in part.counters.items():
            day[key] = day.get(key, 0) + value
    return views, [(day, {k: v for k, v in summed[day].items() if v}) for day in sorted(summed)]


async def _pages_end_with_a_null_cursor(internal: httpx.AsyncClient) -> None:
    """MongoDB's page: a cursor only when a payment follows it (a full last page gives none), filtered or not."""
    path = f"/internal/recoveries/{MERCHANT}"
    for filters, count in (({}, 6), ({"status": "recovered"}, 3), ({"profile_id": "pro_two"}, 1)):
        full = (await internal.get(path, params={**filters, "limit": count})).json()
        assert (full["count"], full["total_count"], full["next_cursor"]) == (count, count, None), filters
        if count == 1:
            continue
        first = (await internal.get(path, params={**filters, "limit": count - 1})).json()
        rest = await internal.get(path, params={**filters, "limit": count - 1, "cursor": first["next_cursor"]})
        by_offset = await internal.get(path, params={**filters, "limit": count - 1, "offset": count - 1})
        assert [p["id"] for p in rest.json()["data"]] == [p["id"] for p in by_offset.json()["data"]], filters
        assert (rest.json()["count"], rest.json()["next_cursor"], by_offset.json()["next_cursor"]) == (1, None, None)
        assert [*first["data"], *rest.json()["data"]] == full["data"], filters


@pytest.mark.timeout(180)
async def test_analytics_agree_with_the_events_they_come_from(start_stack: StackFactory) -> None:
    stack = start_stack(("analytics",))
    stories = history().values()
    events = [event for story in stories for event in story.events]
    deliveries = events + events[1::3]  # some delivered twice, as a relay or a redelivery would
    random.Random(16).shuffle(deliveries)
    async with broker_probe(stack.rabbitmq_url) as probe:
        for event in deliveries:
            await probe.publish(event)

    async with httpx.AsyncClient(base_url=stack.url("analytics"), headers=HEADERS, timeout=10) as internal:

        async def figures() -> dict[str, Any] | None:
            answer = (await internal.get(f"/internal/analytics/{MERCHANT}", params=RANGE)).json()
            return answer if answer == EXPECTED_ANALYTICS else None

        try:
            await eventually(figures, timeout=60)
        finally:
            answer = (await internal.get(f"/internal/analytics/{MERCHANT}", params=RANGE)).json()
        # Every figure, as worked out by hand in support/recovery_history.py.
        assert answer == EXPECTED_ANALYTICS
        listed = (await internal.get(f"/internal/recoveries/{MERCHANT}", params={"status": "recovered"})).json()
        assert sorted(p["id"] for p in listed["data"]) == ["hist_a", "hist_b", "hist_f"]
        await _pages_end_with_a_null_cursor(internal)
        story = (await internal.get(f"/internal/timeline/{MERCHANT}/hist_c")).json()
        assert [e["kind"] for e in story["entries"]][-2:] == ["recovery_finished", "webhook_failed"]

    client = connect(stack.mongodb_url, app_name="analytics-test")
    try:
        db = client[stack.config.mongodb_database]
        assert await db["analytics_events"].count_documents({}) == len(events)  # each stored once
        live = await _read_model(db)
        # Each view carries the events it was folded from (what its next event folds on), as the rebuild's do.
        assert sorted(len(view["history"]) for view in live[0].values()) == sorted(len(s.events) for s in stories)
        stack.stop()  # a rebuild runs with the projection stopped
        report = await rebuild(db)
        assert (report.payments, report.events, report.days) == (6, len(events), 3)  # day two has two profiles
        assert await _read_model(db) == live
    finally:
        await client.close()
