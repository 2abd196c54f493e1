"""The console's Audit trail page on in-memory adapters (httpx over ASGI): the merchant's entries newest first as people
read them (who, what in words with the route beside it, on what, how it ended), 20 a page with an "Older" link, one
key's or only the refused; for a key with the `read_only` or `management` scope or the admin key (its link in the
navigation only for them), never another merchant's entries; every state-changing route has its words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recovery_contracts.api.audit import AuditActorKind
from recovery_intake.console.audit_views import ACTIONS, audit_rows, outcome, who
from recovery_intake.domain.audit import CHANGING_METHODS, NOT_AUDITED, AuditActor, AuditEntry

from .api_calls import mint
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, http_client, intake
from .test_console_routes import session_token, signed_in, signed_in_on_merchant

AUDIT_PAGE = "/console/audit"
AT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def rows_of(html: str) -> list[str]:
    """Each entry row's text, tags dropped and white space folded."""
    return [
        " ".join(re.sub(r"<[^>]+>", " ", row).split())
        for row in re.findall(r'<tr class="audit-entry".*?</tr>', html, flags=re.S)
    ]


async def test_the_merchants_changes_are_listed_newest_first_in_words() -> None:
    svc = intake()
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
        svc.clock.advance(timedelta(minutes=1))
        refused = await api.post(
            "/v2/api-keys", json={"name": "x", "expiration": "never"}, headers={"api-key": reader["api_key"]}
        )
        svc.clock.advance(timedelta(minutes=1))
        cancelled = await api.post("/v2/revenue-recovery/inv_404/cancel", headers=svc.headers())
    assert (refused.status_code, cancelled.status_code) == (403, 404)

    async with signed_in(svc, reader["api_key"]) as console:
        page = await console.get(AUDIT_PAGE)

    assert page.status_code == 200, page.text
    assert f'href="{AUDIT_PAGE}"' in page.text  # the navigation's link, for a reading key
    assert rows_of(page.text) == [
        "2026-01-15 12:02:00 UTC API key key_1 Cancelled a recovery POST /v2/revenue-recovery/{merchant_reference_id}"
        "/cancel merchant_reference_id=inv_404 404 refused",
        f"2026-01-15 12:01:00 UTC API key {reader['key_id']} Created an API key POST /v2/api-keys 403 refused",
        "2026-01-15 12:00:00 UTC API key key_1 Created an API key POST /v2/api-keys 200 done",
    ]


async def test_a_payment_named_by_an_entry_links_to_its_page() -> None:
    svc = intake()
    path = "/console/payments/12345_pay_1/disputes/dsp_1/accept"
    async with signed_in(svc) as console:
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await console.get("/console/overview")).text)
        assert token is not None
        await console.post(path, data={"csrf_token": token.group(1)})
        page = await console.get(AUDIT_PAGE)

    assert '<a href="/console/payments/12345_pay_1">12345_pay_1</a>' in page.text
    [row] = rows_of(page.text)
    assert row.startswith("2026-01-15 12:00:00 UTC Console, API key key_1 Answered a dispute")
    assert "dispute_id=dsp_1 answer=accept 404 refused" in row


async def test_one_keys_entries_or_only_the_refused_page_by_page() -> None:
    svc = intake()
    async with http_client(svc) as api:
        other = await mint(api, API_KEY, ["management"])
        for n in range(24):
            svc.clock.advance(timedelta(seconds=1))
            await api.put(f"/v2/api-keys/{other['key_id']}", json={"name": f"n{n}"}, headers=svc.headers())
        svc.clock.advance(timedelta(seconds=1))
        await api.delete("/v2/api-keys/key_missing", headers={"api-key": other["api_key"]})

    async with signed_in(svc) as console:
        first = await console.get(AUDIT_PAGE)
        older = re.search(r'href="\?cursor=([^"]+)" rel="next"', first.text)
        assert older is not None
        second = await console.get(AUDIT_PAGE, params={"cursor": older.group(1)})
        theirs = await console.get(AUDIT_PAGE, params={"key_id": other["key_id"]})
        refused = await console.get(AUDIT_PAGE, params={"refused": "1"})
        none_refused = await console.get(AUDIT_PAGE, params={"refused": "1", "key_id": "key_1"})

    assert len(rows_of(first.text)) == 20 and len(rows_of(second.text)) == 6  # 1 mint, 24 changes, 1 revoke
    assert rows_of(first.text)[0].startswith(f"2026-01-15 12:00:25 UTC API key {other['key_id']} Revoked an API key")
    assert rows_of(second.text)[-1].endswith("Created an API key POST /v2/api-keys 200 done")
    assert 'rel="next"' not in second.text and ">Newest</a>" in second.text
    assert [r.split(" Revoked")[0] for r in rows_of(theirs.text)] == [
        f"2026-01-15 12:00:25 UTC API key {other['key_id']}"
    ]
    assert len(rows_of(refused.text)) == 1 and rows_of(refused.text)[0].endswith("404 refused")
    assert rows_of(none_refused.text) == [] and "No entries match these filters" in none_refused.text


async def test_the_entries_of_some_days_in_utc_first_and_last_day_whole() -> None:
    svc = intake()
    last_of_14th = datetime(2026, 1, 14, 23, 59, 59, 999999, tzinfo=UTC)
    moments = [last_of_14th, last_of_14th + timedelta(microseconds=1)]  # the 14th's last, the 15th's first
    moments += [moment + timedelta(days=2) for moment in moments]  # the 16th's last, the 17th's first
    async with http_client(svc) as api:
        for moment in moments:
            svc.clock.current = moment
            await api.post("/v2/api-keys", json={"name": str(moment), "expiration": "never"}, headers=svc.headers())
    svc.clock.current = datetime(2026, 1, 20, tzinfo=UTC)
    async with signed_in(svc) as console:
        days = await console.get(AUDIT_PAGE, params={"created_from": "2026-01-15", "created_to": "2026-01-16"})
        one_day = await console.get(AUDIT_PAGE, params={"created_from": "2026-01-17", "created_to": "2026-01-17"})
        later = await console.get(AUDIT_PAGE, params={"created_from": "2026-01-18"})
        backwards = await console.get(AUDIT_PAGE, params={"created_from": "2026-01-16", "created_to": "2026-01-15"})
        not_a_day = await console.get(AUDIT_PAGE, params={"created_from": "15/01/2026"})

    assert [r[:23] for r in rows_of(days.text)] == ["2026-01-16 23:59:59 UTC", "2026-01-15 00:00:00 UTC"]
    assert 'name="created_from" value="2026-01-15"' in days.text and 'value="2026-01-16"' in days.text
    assert [r[:23] for r in rows_of(one_day.text)] == ["2026-01-17 00:00:00 UTC"]
    assert rows_of(later.text) == [] and "No entries match these filters" in later.text
    assert (
        backwards.status_code == 400 and "the first day (2026-01-16) is after the last (2026-01-15)" in backwards.text
    )
    assert not_a_day.status_code == 400 and "is not a date (YYYY-MM-DD)" in not_a_day.text


async def test_one_payments_entries_with_a_link_to_its_page() -> None:
    svc = intake()
    async with signed_in(svc) as console:
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await console.get("/console/overview")).text)
        assert token is not None
        for payment in ("12345_pay_1", "12345_pay_2"):
            await console.post(
                f"/console/payments/{payment}/disputes/dsp_1/accept", data={"csrf_token": token.group(1)}
            )
        page = await console.get(AUDIT_PAGE, params={"payment_id": "12345_pay_2"})
        not_an_id = await console.get(AUDIT_PAGE, params={"payment_id": "12345 pay"})

    [row] = rows_of(page.text)
    assert "Answered a dispute" in row and "12345_pay_2" in row
    assert 'id="payment-trail"' in page.text and '<a href="/console/payments/12345_pay_2">12345_pay_2</a>' in page.text
    assert 'name="payment_id" value="12345_pay_2"' in page.text
    assert not_an_id.status_code == 400 and "payment_id must be a payment id" in not_an_id.text


# The console needs a key that reads payments (docs/console.md): `management` comes with `payments` here.
@pytest.mark.parametrize("scopes", [["read_only"], ["payments", "management"]])
async def test_a_reading_or_managing_key_and_the_admin_key_see_the_trail(scopes: list[str]) -> None:
    svc = intake()
    async with http_client(svc) as api:
        key = await mint(api, API_KEY, scopes)
    async with signed_in(svc, key["api_key"]) as console:
        page = await console.get(AUDIT_PAGE)
    async with signed_in_on_merchant(svc, ADMIN_KEY) as operator:
        seen_by_operator = await operator.get(AUDIT_PAGE)

    assert page.status_code == 200 and len(rows_of(page.text)) == 1
    # The operator's choice of the merchant acted for no merchant: the platform's trail, not this one.
    assert seen_by_operator.status_code == 200 and rows_of(seen_by_operator.text) == rows_of(page.text)


async def test_a_payments_only_key_neither_sees_the_link_nor_the_page() -> None:
    svc = intake()
    async with http_client(svc) as api:
        payments = await mint(api, API_KEY, ["payments"])
    async with signed_in(svc, payments["api_key"]) as console:
        overview = await console.get("/console/overview")
        page = await console.get(AUDIT_PAGE)

    assert f'href="{AUDIT_PAGE}"' not in overview.text
    assert page.status_code == 403 and "read_only or management scope" in page.text


async def test_another_merchants_entries_are_never_shown() -> None:
    svc = intake()
    async with http_client(svc) as api:
        await api.post("/v2/merchant-accounts", json={"merchant_name": "other"}, headers={"api-key": ADMIN_KEY})
        await api.post("/v2/api-keys", json={"name": "mine", "expiration": "never"}, headers=svc.headers())
    svc.adapters.audit.entries.append(  # type: ignore[attr-defined]
        AuditEntry("audit_other", svc.clock.now(), AuditActor(AuditActorKind.API_KEY, "merchant_2", "key_9"), "POST",
                   "/v2/api-keys", {}, 200)
    )  # fmt: skip
    async with signed_in(svc) as console:
        page = await console.get(AUDIT_PAGE)
        by_other_key = await console.get(AUDIT_PAGE, params={"key_id": "key_9"})

    assert [r.split(" POST")[0] for r in rows_of(page.text)] == [
        "2026-01-15 12:00:00 UTC API key key_1 Created an API key"
    ]
    assert "key_9" not in page.text and rows_of(by_other_key.text) == []


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"cursor": "not-a-cursor"}, "not one this console gave out"),
        ({"key_id": "key 1"}, "key_id must be a key id"),
    ],
)
async def test_a_page_link_or_key_not_its_own_is_refused_in_words(params: dict[str, str], words: str) -> None:
    svc = intake()
    async with signed_in(svc) as console:
        page = await console.get(AUDIT_PAGE, params=params)

    assert page.status_code == 400 and words in page.text


async def test_the_operator_reads_the_platforms_own_trail_what_acted_for_no_merchant() -> None:
    svc = intake()
    async with http_client(svc) as api:
        created = await api.post("/v2/merchant-accounts", json={"merchant_name": "m2"}, headers={"api-key": ADMIN_KEY})
        await api.post("/v2/api-keys", json={"name": "mine", "expiration": "never"}, headers=svc.headers())
    assert created.status_code == 200, created.text
    async with signed_in(svc, ADMIN_KEY, "") as operator:
        unchosen = await operator.get(AUDIT_PAGE)
        token = session_token(svc, operator)
        for merchant_id in (MERCHANT, created.json()["id"]):  # choosing again, while a merchant is shown
            await operator.post("/console/merchant", data={"merchant_id": merchant_id, "csrf_token": token})
        merchants = await operator.get(AUDIT_PAGE)
        platform = await operator.get(AUDIT_PAGE, params={"platform": "1"})
    async with signed_in(svc, API_KEY) as console:
        merchant_1 = await console.get(AUDIT_PAGE)
        merchant_asking_platform = await console.get(AUDIT_PAGE, params={"platform": "1"})

    assert 'id="platform-trail"' in unchosen.text
    assert [r.split(" POST")[0] for r in rows_of(unchosen.text)] == [
        "2026-01-15 12:00:00 UTC The admin key Created the merchant account"
    ]
    # The operator's choices are the platform's entries, never the merchant's it was showing.
    assert [r.split(" POST")[0] for r in rows_of(platform.text)] == [
        "2026-01-15 12:00:00 UTC Console, the admin key Chose the merchant to view",
        "2026-01-15 12:00:00 UTC Console, the admin key Chose the merchant to view",
        "2026-01-15 12:00:00 UTC The admin key Created the merchant account",
    ]
    assert rows_of(merchants.text) == [] and 'id="platform-link"' in merchants.text
    assert [r.split(" POST")[0] for r in rows_of(merchant_1.text)] == [
        "2026-01-15 12:00:00 UTC API key key_1 Created an API key"
    ]
    # A merchant's key asking for the platform's trail reads its own.
    assert rows_of(merchant_asking_platform.text) == rows_of(merchant_1.text)
    assert 'id="platform-link"' not in merchant_1.text


def changing_routes(routes: list[Any]) -> Iterator[str]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router: its own routes
            yield from changing_routes(route.original_router.routes)
        for method in getattr(route, "methods", None) or ():
            if method in CHANGING_METHODS:
                yield f"{method} {route.path}"


def test_every_state_changing_route_that_can_be_an_entry_has_its_words() -> None:
    routes = set(changing_routes(intake().service.app.routes))
    # The billing systems' and the payment connector's webhooks have no caller a key names: never entries.
    webhooks = {r for r in routes if r.startswith("POST /v2/webhooks/")}
    entries = routes - webhooks - NOT_AUDITED

    assert len(webhooks) == 2 and len(entries) > 25
    assert sorted(entries - ACTIONS.keys()) == []
    assert sorted(ACTIONS.keys() - entries) == []  # no words for a route that is gone


def test_who_and_how_it_ended_in_words() -> None:
    def entry(kind: AuditActorKind, key_id: str | None, status: int) -> AuditEntry:
        return AuditEntry("a", AT, AuditActor(kind, MERCHANT, key_id), "PATCH", "/v2/unknown/{thing_id}",
                          {"thing_id": "t_1"}, status)  # fmt: skip

    assert who(entry(AuditActorKind.API_KEY, "key_1", 200)) == "API key key_1"
    assert who(entry(AuditActorKind.ADMIN_KEY, None, 200)) == "The admin key"
    assert who(entry(AuditActorKind.CONSOLE, "key_1", 200)) == "Console, API key key_1"
    assert who(entry(AuditActorKind.CONSOLE, None, 200)) == "Console, the admin key"
    assert [outcome(s) for s in (200, 303, 399, 400, 409, 499, 500, 503)] == [
        "done", "done", "done", "refused", "refused", "refused", "failed", "failed"
    ]  # fmt: skip
    [row] = audit_rows([entry(AuditActorKind.API_KEY, "key_1", 503)])
    # A route without words is shown as itself.
    assert (row.action, row.route, row.target, row.payment_id, row.outcome) == (
        "PATCH /v2/unknown/{thing_id}", "PATCH /v2/unknown/{thing_id}", ("thing_id=t_1",), None, "failed"
    )  # fmt: skip
