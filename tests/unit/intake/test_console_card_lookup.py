"""The Card data page's Card status lookup (`GET /console/card-data?card=`): a card as the merchant's recoveries see
it, the use case of `GET /v2/recovery/data-backfill/token-status`, read from the scheduler's internal route (a
scripted scheduler on loopback here; tests/e2e/test_console.py drives the real one) for any signed-in key that may
read payments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER

from .api_calls import mint
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, SETTINGS, http_client, intake
from .test_console_record_back import PAYMENT, ScriptedOwner
from .test_console_routes import signed_in, signed_in_on_merchant

NOTHING: dict[str, Any] = {
    "payment_processor_token": "pm_new",
    "hard_declined": False,
    "hard_declines": [],
    "attempts_last_30_days": 0,
    "declined_last_30_days": 0,
    "planned_attempts": 0,
}
MARKED = {
    **NOTHING,
    "payment_processor_token": "pm_lost",
    "hard_declined": True,
    "hard_declines": [
        {
            "payment_id": PAYMENT,
            "marked_by_merchant": False,
            "attempt_number": 2,
            "at": "2026-12-01T10:00:00Z",
            "rule": "decline_code=lost_card",
            "counts_until": "2027-01-01T10:00:00Z",
        },
        {
            "payment_id": None,
            "marked_by_merchant": True,
            "attempt_number": 0,
            "at": "2026-12-02T09:30:00Z",
            "rule": "error_code=stolen_card",
            "counts_until": "2027-12-02T09:30:00Z",
        },
    ],
    "attempts_last_30_days": 3,
    "declined_last_30_days": 2,
    "planned_attempts": 1,
}
USED = {**NOTHING, "payment_processor_token": "pm_used", "attempts_last_30_days": 1, "planned_attempts": 1}


@pytest.fixture
def scheduler() -> Iterator[ScriptedOwner]:
    with ScriptedOwner("/internal/cards/{merchant}/token-status", "GET", NOTHING).serving() as scripted:
        yield scripted


async def look_up(client: httpx.AsyncClient, card: str) -> httpx.Response:
    return await client.get("/console/card-data", params={"card": card})


def lookup_of(page: httpx.Response) -> str:
    return page.text[page.text.index('id="card-lookup"') :]


async def test_a_cards_hard_declines_and_attempts_are_looked_up_from_the_scheduler(scheduler: ScriptedOwner) -> None:
    """The scheduler is asked as the merchant for the token; the page shows the card hard-declined, the payment's
    decline (linked to its page) and the merchant's mark, and the attempts on the card."""
    scheduler.answers.append((200, MARKED))
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        page = await look_up(client, " pm_lost ")

    assert page.status_code == 200, page.text
    [(path, headers, _)] = scheduler.received
    assert path == f"/internal/cards/{MERCHANT}/token-status"
    assert scheduler.queries == [{"payment_processor_token": "pm_lost"}]
    assert (headers[TOKEN_HEADER], headers[MERCHANT_HEADER]) == (SETTINGS.internal_api_token, MERCHANT)
    shown = lookup_of(page)
    assert "<strong>pm_lost</strong>: <strong>hard-declined</strong>, none of your recoveries charges it." in shown
    assert (
        f'<tr><td><a href="/console/payments/{PAYMENT}">{PAYMENT}</a></td><td>2</td><td>2026-12-01 10:00:00 UTC</td>'
        "<td>decline_code=lost_card</td><td>2027-01-01 10:00:00 UTC</td></tr>"
    ) in shown
    assert (
        "<tr><td>the merchant</td><td></td><td>2026-12-02 09:30:00 UTC</td><td>error_code=stolen_card</td>"
        "<td>2027-12-02 09:30:00 UTC</td></tr>"
    ) in shown
    assert "3 attempts in the last 30 days (2 declined or not settled), 1 planned." in shown
    assert 'name="card" value="pm_lost"' in page.text


async def test_a_card_with_nothing_recorded_or_only_attempts_says_so(scheduler: ScriptedOwner) -> None:
    scheduler.answers.extend([(200, NOTHING), (200, USED)])
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        nothing = await look_up(client, "pm_new")
        used = await look_up(client, "pm_used")
        unasked = await client.get("/console/card-data")

    assert "Nothing is recorded on pm_new: not hard-declined, no attempt in the last 30 days, none planned." in (
        lookup_of(nothing)
    )
    assert 'id="card-lookup-declines"' not in nothing.text
    shown = lookup_of(used)
    assert "<strong>not hard-declined</strong>, your recoveries may charge it." in shown
    assert "1 attempt in the last 30 days (0 declined or not settled), 1 planned." in shown
    assert 'id="card-lookup-declines"' not in used.text
    assert unasked.status_code == 200 and 'id="card-lookup"' not in unasked.text
    assert scheduler.queries == [{"payment_processor_token": "pm_new"}, {"payment_processor_token": "pm_used"}]


async def test_the_merchants_not_before_on_a_card_is_shown(scheduler: ScriptedOwner) -> None:
    held = {**NOTHING, "payment_processor_token": "pm_held", "scheduled_at": "2026-12-10T08:00:00.000Z"}
    scheduler.answers.extend([(200, held), (200, NOTHING)])
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        shown = lookup_of(await look_up(client, "pm_held"))
        plain = lookup_of(await look_up(client, "pm_new"))

    assert "None of your recoveries tries it before <strong>2026-12-10 08:00:00 UTC</strong>, as you asked" in shown
    assert "<strong>not hard-declined</strong>, your recoveries may charge it." in shown
    assert 'id="card-lookup-not-before"' not in plain


async def test_a_read_only_key_and_the_admin_key_look_a_card_up(scheduler: ScriptedOwner) -> None:
    scheduler.answers.extend([(200, MARKED), (200, MARKED)])
    svc = intake(scheduler_internal_url=scheduler.base)
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
    pages = []
    for key in (reader["api_key"], ADMIN_KEY):
        async with signed_in_on_merchant(svc, key) as client:
            pages.append(await look_up(client, "pm_lost"))

    for page in pages:
        assert page.status_code == 200 and "<td>the merchant</td>" in lookup_of(page), page.text
    assert "Look up</button>" in pages[0].text and "Mark hard-declined</button>" not in pages[0].text
    assert {h[MERCHANT_HEADER] for _, h, _ in scheduler.received} == {MERCHANT}


async def test_a_scheduler_that_does_not_answer_and_a_token_over_the_bound(scheduler: ScriptedOwner) -> None:
    scheduler.answers.extend([(500, {}), (404, {})])
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        failed = await look_up(client, "pm_lost")
        missing = await look_up(client, "pm_lost")
        long = await look_up(client, "p" * 256)

    for page in (failed, missing):
        assert page.status_code == 503 and "The scheduler service does not answer" in page.text
    assert long.status_code == 400 and "A card token has at most 255 characters." in long.text
    assert len(scheduler.received) == 2
