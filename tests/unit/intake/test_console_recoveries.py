"""The Recoveries page's filters as a signed-in merchant uses them, the list read from a scripted analytics service
on loopback: the record-back and Disputes choices become the list's `record_back_state` and `dispute_state`, the page
shows each filter's choices with the one taken, and a choice it does not offer is refused."""

from __future__ import annotations

import re

from .fakes import intake
from .test_console_overview import analytics_answering
from .test_console_routes import signed_in
from .test_console_views import ANALYTICS

_OPTION = re.compile(r'<option value="([^"]*)"\s*(selected)?>([^<]*)</option>')


def choices(page: str, name: str) -> list[tuple[str, bool, str]]:
    """A filter's choices as the page offers them: (value, selected, label)."""
    found = re.search(rf'<select name="{name}">(.*?)</select>', page, re.S)
    assert found, page
    return [(value, bool(selected), label) for value, selected, label in _OPTION.findall(found.group(1))]


async def test_the_disputes_filter_finds_the_payments_with_a_dispute_to_answer_or_lost() -> None:
    asked: list[list[tuple[str, str]]] = []
    with analytics_answering(ANALYTICS, asked) as url:
        async with signed_in(intake(analytics_internal_url=url)) as client:
            to_answer = await client.get("/console/recoveries", params={"dispute": "open"})
            lost = await client.get("/console/recoveries", params={"dispute": "lost", "record_back": "attention"})
            unknown = await client.get("/console/recoveries", params={"dispute": "won"})
            # The other choice filters refuse what they do not offer alike.
            refused = [
                await client.get("/console/recoveries", params=offer)
                for offer in ({"record_back": "lost"}, {"status": "open"})
            ]

    assert to_answer.status_code == lost.status_code == 200, to_answer.text
    states = [[(name, value) for name, value in query if name.endswith("_state")] for query in asked]
    assert states == [
        [("dispute_state", "open")],
        [("record_back_state", "abandoned"), ("record_back_state", "blocked"), ("dispute_state", "lost")],
    ]
    assert choices(to_answer.text, "dispute") == [
        ("", False, "any"),
        ("open", True, "open (to answer)"),
        ("lost", False, "lost"),
        ("ended", False, "ended"),
    ]
    assert ("attention", True, "needs attention") in choices(lost.text, "record_back")
    # A choice the page does not offer: refused, the list not asked.
    assert unknown.status_code == 400 and "&#39;won&#39; is not a dispute filter." in unknown.text
    assert [(r.status_code, "is not a" in r.text) for r in refused] == [(400, True), (400, True)]
    assert len(asked) == 2
