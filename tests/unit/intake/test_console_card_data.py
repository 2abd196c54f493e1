"""The console's Card data page (`/console/card-data`): the data backfill's upload (`POST /v2/recovery/data-backfill`'s
use case) for a signed-in key that may write payments, behind the session's CSRF token, its result on the page."""

from __future__ import annotations

import httpx

from recovery_contracts.envelope import MessageType
from recovery_intake.http.data_backfill import BODY_BYTES

from .api_calls import mint
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, Intake, http_client, intake
from .recovery_requests import REFERENCE, recovery_body
from .test_console_routes import session_token, signed_in, signed_in_on_merchant

CSV = "customer_id_resp,token,exp_date\ncus_test,pm_first,04/31\ncus_test,pm_later,04/31\ncus_test,pm_bad,13/31\n"


async def open_recovery(svc: Intake) -> None:
    async with http_client(svc, headers=svc.headers()) as api:
        created = await api.post("/v2/payments/recovery", json=recovery_body())
    assert created.status_code == 200, created.text


async def upload(svc: Intake, client: httpx.AsyncClient, text: str, token: str | None = None) -> httpx.Response:
    return await client.post(
        "/console/card-data",
        data={"csrf_token": token if token is not None else session_token(svc, client)},
        files={"file": ("cards.csv", text.encode(), "text/csv")},
    )


def expiry(svc: Intake) -> tuple[str | None, str | None]:
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None
    card = intent.snapshot.tokens[0]
    return card.card_exp_month, card.card_exp_year


async def test_a_merchant_uploads_card_data_and_sees_what_was_applied() -> None:
    svc = intake()
    await open_recovery(svc)
    async with signed_in(svc) as client:
        page = await client.get("/console/card-data")
        answer = await upload(svc, client, CSV)

    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    assert 'aria-current="page">Card data' in page.text
    assert answer.status_code == 200, answer.text
    assert "<strong>2</strong> rows applied" in answer.text and "<strong>1</strong> recovery updated" in answer.text
    assert "<strong>1</strong> card kept for a later recovery" in answer.text
    assert "exp_date must be MM/YY or MM/YYYY, not &#39;13/31&#39;" in answer.text
    assert expiry(svc) == ("04", "2031")
    [update] = svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)
    assert update.payload.action == "card_data_backfill"


async def test_without_the_sessions_token_or_with_a_read_only_key_nothing_is_applied() -> None:
    svc = intake()
    await open_recovery(svc)
    async with signed_in(svc) as client:
        forged = await upload(svc, client, CSV, token="forged")
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
    async with signed_in_on_merchant(svc, reader["api_key"]) as client:
        page = await client.get("/console/card-data")
        refused = await upload(svc, client, CSV)

    assert forged.status_code == 403
    assert "payments scope" in page.text and 'type="file"' not in page.text
    assert refused.status_code == 403 and "payments scope" in refused.text
    assert expiry(svc) == ("12", "25") and svc.publisher.envelopes(MessageType.RECOVERY_UPDATED) == []


async def test_the_admin_key_uploads_for_the_merchant_it_chose_and_a_bad_file_says_why() -> None:
    svc = intake()
    await open_recovery(svc)
    async with signed_in_on_merchant(svc, ADMIN_KEY) as client:
        bad = await upload(svc, client, "customer_id_resp,card_number\ncus_test,4242\n")
        answer = await upload(svc, client, CSV)
        empty = await client.post(
            "/console/card-data", data={"csrf_token": session_token(svc, client)}, files={"file": ("", b"", "text/csv")}
        )

    assert bad.status_code == 400 and "unknown columns card_number" in bad.text
    assert answer.status_code == 200 and expiry(svc) == ("04", "2031")
    assert empty.status_code == 400 and "Choose a CSV file" in empty.text


async def test_a_file_over_the_bound_is_refused_before_it_is_read() -> None:
    svc = intake()
    async with signed_in(svc) as client:
        answer = await upload(svc, client, "x" * (BODY_BYTES + 1))
    assert answer.status_code == 413


async def test_a_customers_kept_cards_are_looked_up_and_forgotten_from_the_console() -> None:
    """The page shows what the uploads kept of a customer's cards (a card no open recovery holds, here), and a key
    that may write payments forgets them behind the session's CSRF token."""
    svc = intake()
    await open_recovery(svc)
    history = '"{""2026-01-14"": 2, ""2026-01-13"": 1}"'
    cards = (
        f"customer_id_resp,token,exp_date,card_network,daily_retry_history\ncus_test,pm_later,04/31,Visa,{history}\n"
    )
    async with signed_in(svc) as client:
        await upload(svc, client, cards)
        shown = await client.get("/console/card-data", params={"customer": "cus_test"})
        nobody = await client.get("/console/card-data", params={"customer": "cus_nobody"})
        forged = await client.post("/console/card-data/forget", data={"csrf_token": "forged", "customer": "cus_test"})
        forgotten = await client.post(
            "/console/card-data/forget", data={"csrf_token": session_token(svc, client), "customer": "cus_test"}
        )
        after = await client.get("/console/card-data", params={"customer": "cus_test"})

    assert shown.status_code == 200, shown.text
    row = shown.text[shown.text.index('id="kept-cards-table"') :]
    assert "<td>pm_later</td><td>04/2031</td><td>Visa</td>" in row
    assert "3 retries, the last by 2026-01-15 00:00:00 UTC" in row and "2026-04-15 12:00:00 UTC" in row
    assert "Forget these cards" in shown.text and "No card of cus_nobody is kept." in nobody.text
    assert forged.status_code == 403 and forgotten.status_code == 200, forgotten.text
    assert "<strong>1</strong> card of cus_test forgotten." in forgotten.text
    assert "No card of cus_test is kept." in after.text


async def test_a_read_only_key_sees_kept_cards_but_cannot_forget_them() -> None:
    svc = intake()
    async with signed_in(svc) as client:
        await upload(svc, client, "customer_id_resp,token,card_network\ncus_test,pm_later,Visa\n")
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
    async with signed_in_on_merchant(svc, reader["api_key"]) as client:
        shown = await client.get("/console/card-data", params={"customer": "cus_test"})
        refused = await client.post(
            "/console/card-data/forget", data={"csrf_token": session_token(svc, client), "customer": "cus_test"}
        )

    assert "<td>pm_later</td>" in shown.text and "Forget these cards" not in shown.text
    assert refused.status_code == 403 and "payments scope" in refused.text
    assert [c.token for c in svc.saved_cards.cards.values()] == ["pm_later"]
