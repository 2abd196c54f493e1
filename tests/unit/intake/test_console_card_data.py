"""The console's Card data page (`/console/card-data`): the data backfill's upload (`POST /v2/recovery/data-backfill`'s
use case) for a signed-in key that may write payments, behind the session's CSRF token, its result on the page; a
customer's kept cards; and the Card status form (`PUT /v2/recovery/data-backfill/update-token`), sent to the
scheduler's internal route (a scripted scheduler on loopback here; tests/e2e/test_console.py drives the real one)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from recovery_contracts.envelope import MessageType
from recovery_intake.http.data_backfill import BODY_BYTES
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER

from .api_calls import mint
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, SETTINGS, Intake, http_client, intake
from .recovery_requests import REFERENCE, recovery_body
from .test_console_record_back import ScriptedOwner
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


MARKED = {
    "updated": True,
    "message": "card pm_lost marked hard-declined: none of the merchant's recoveries charges it again",
    "hard_declined": True,
    "recoveries_planned_again": 0,
}
CLEARED = {
    "updated": True,
    "message": "card pm_lost cleared (1 hard decline(s) forgotten)",
    "hard_declined": False,
    "recoveries_planned_again": 0,
}


@pytest.fixture
def scheduler() -> Iterator[ScriptedOwner]:
    with ScriptedOwner("/internal/cards/{merchant}/token-status", "PUT", MARKED).serving() as scripted:
        yield scripted


async def card_status(
    svc: Intake, client: httpx.AsyncClient, action: str, csrf: str | None = None, **fields: str
) -> httpx.Response:
    form = {"customer": "cus_test", "token": "pm_lost", "error_code": "", "hard_decline": action, **fields}
    return await client.post(
        "/console/card-data/token-status",
        data={"csrf_token": csrf if csrf is not None else session_token(svc, client), **form},
    )


async def test_a_card_is_marked_hard_declined_and_cleared_from_the_card_data_page(scheduler: ScriptedOwner) -> None:
    """The Card status form sends the API's body to the scheduler as the merchant, and shows its answer's message
    with the form as sent; the admin key does the same for the merchant it chose."""
    svc = intake(scheduler_internal_url=scheduler.base)
    scheduler.answers.extend([(200, MARKED), (200, CLEARED)])
    async with signed_in(svc) as client:
        page = await client.get("/console/card-data", params={"customer": "cus_test"})
        marked = await card_status(svc, client, "true", error_code="stolen_card")
        cleared = await card_status(svc, client, "false")
    async with signed_in_on_merchant(svc, ADMIN_KEY) as client:
        by_operator = await card_status(svc, client, "true")

    form = page.text[page.text.index('id="card-status"') :]
    assert "Mark hard-declined" in form and "Clear hard declines" in form and 'value="cus_test"' in form
    assert marked.status_code == 200 and cleared.status_code == 200, marked.text
    assert "card pm_lost marked hard-declined: none of the merchant&#39;s recoveries" in marked.text
    assert 'value="pm_lost"' in marked.text and 'value="stolen_card"' in marked.text
    assert 'name="card" value="pm_lost"' in marked.text  # the card, ready to be looked up
    assert "card pm_lost cleared (1 hard decline(s) forgotten)" in cleared.text
    assert by_operator.status_code == 200 and "card pm_lost marked hard-declined" in by_operator.text
    paths = {path for path, _, _ in scheduler.received}
    headers = {(h[TOKEN_HEADER], h[MERCHANT_HEADER]) for _, h, _ in scheduler.received}
    assert paths == {f"/internal/cards/{MERCHANT}/token-status"}
    assert headers == {(SETTINGS.internal_api_token, MERCHANT)}
    assert [body for _, _, body in scheduler.received] == [
        {"connector_customer_id": "cus_test", "payment_processor_token": "pm_lost", "is_hard_decline": True,
         "error_code": "stolen_card"},
        {"connector_customer_id": "cus_test", "payment_processor_token": "pm_lost", "is_hard_decline": False},
        {"connector_customer_id": "cus_test", "payment_processor_token": "pm_lost", "is_hard_decline": True},
    ]  # fmt: skip


async def test_a_form_the_api_would_refuse_says_why_on_the_page_and_sends_nothing(scheduler: ScriptedOwner) -> None:
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        coded_clear = await card_status(svc, client, "false", error_code="stolen_card")
        no_token = await card_status(svc, client, "true", token="")
        long_code = await card_status(svc, client, "true", error_code="x" * 65)
        no_action = await card_status(svc, client, "maybe")
        no_time = await card_status(svc, client, "hold", not_before="next tuesday")
        coded_hold = await card_status(svc, client, "hold", error_code="x", not_before="2026-12-10T08:00")

    assert coded_clear.status_code == 400 and "An error code goes with Mark hard-declined only" in coded_clear.text
    assert 'role="alert" id="card-status-answer"' in coded_clear.text and 'value="stolen_card"' in coded_clear.text
    assert no_token.status_code == 400 and "Name the customer and the card token." in no_token.text
    assert long_code.status_code == 400 and "`error_code`: String should have at most 64 characters" in long_code.text
    assert no_action.status_code == 400 and "Choose Mark hard-declined, Clear hard declines or Hold until." in (
        no_action.text
    )
    assert no_time.status_code == 400 and "Give the date and time (UTC)" in no_time.text
    assert coded_hold.status_code == 400 and "An error code goes with Mark hard-declined only" in coded_hold.text
    assert scheduler.received == []


async def test_a_card_is_held_until_a_time_from_the_card_data_page(scheduler: ScriptedOwner) -> None:
    """Hold until: the API's `scheduled_at` (the form's time, read as UTC) without `is_hard_decline`; the scheduler's
    answer, or its refusal (422 IR_06 for a time too far ahead), is shown with the form as sent."""
    held = {
        "updated": True,
        "message": "card pm_lost: none of the merchant's recoveries tries it before ...",
        "hard_declined": False,
        "recoveries_planned_again": 1,
    }
    too_far = {
        "error": {"type": "invalid_request", "message": "scheduled_at may be at most 365 days ahead", "code": "IR_06"}
    }
    scheduler.answers.extend([(200, held), (422, too_far)])  # fmt: skip
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        page = await client.get("/console/card-data")
        answer = await card_status(svc, client, "hold", not_before="2026-12-10T08:00")
        refused = await card_status(svc, client, "hold", not_before="2030-01-01T00:00")

    assert "Hold until" in page.text and 'type="datetime-local" name="not_before"' in page.text
    assert answer.status_code == 200 and "tries it before" in answer.text and 'value="2026-12-10T08:00"' in answer.text
    assert refused.status_code == 400 and "scheduled_at may be at most 365 days ahead" in refused.text
    assert [body for _, _, body in scheduler.received] == [
        {"connector_customer_id": "cus_test", "payment_processor_token": "pm_lost",
         "scheduled_at": "2026-12-10T08:00:00.000Z"},
        {"connector_customer_id": "cus_test", "payment_processor_token": "pm_lost",
         "scheduled_at": "2030-01-01T00:00:00.000Z"},
    ]  # fmt: skip


async def test_the_schedulers_refusal_is_shown_and_its_failure_reads_as_unavailable(scheduler: ScriptedOwner) -> None:
    refusal = {
        "error": {"type": "invalid_request", "message": "Missing required param: is_hard_decline", "code": "IR_04"}
    }
    scheduler.answers.extend([(400, refusal), (500, {})])
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        refused = await card_status(svc, client, "true")
        failed = await card_status(svc, client, "true")

    assert refused.status_code == 400 and "Missing required param: is_hard_decline" in refused.text
    assert 'id="card-status"' in refused.text
    assert failed.status_code == 503 and "The scheduler service does not answer" in failed.text


async def test_without_the_sessions_token_or_with_a_read_only_key_no_card_is_marked(scheduler: ScriptedOwner) -> None:
    svc = intake(scheduler_internal_url=scheduler.base)
    async with signed_in(svc) as client:
        forged = await card_status(svc, client, "true", csrf="forged")
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
    async with signed_in_on_merchant(svc, reader["api_key"]) as client:
        page = await client.get("/console/card-data")
        refused = await card_status(svc, client, "true")

    assert forged.status_code == 403
    assert "Marking a card needs an API key with the payments scope." in page.text
    assert "Mark hard-declined</button>" not in page.text
    assert refused.status_code == 403 and "payments scope" in refused.text
    assert scheduler.received == []
