"""`POST /v2/recovery/data-backfill`: a CSV of the customers' saved cards (Hyperswitch's columns) updates the card
data of every open recovery holding the token, tells the scheduler and the executor (`recovery.updated`,
`card_data_backfill`), keeps every row for the customer's recoveries still to come (a new recovery with the card
takes its history and the card fields its request leaves empty), and answers each row it could not apply with its
line and reason."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import httpx

from recovery_contracts.envelope import MessageType
from recovery_contracts.messages import CARD_DATA_BACKFILL, RecoveryUpdated
from recovery_contracts.payments import IntentStatus
from recovery_intake.domain.card_backfill import MAX_BYTES, SAVED_CARD_DAYS
from recovery_intake.http.data_backfill import BODY_BYTES

from .api_calls import mint, refused
from .fakes import ADMIN_KEY, API_KEY, MERCHANT, Intake, http_client
from .recovery_requests import REFERENCE, recovery_body, with_token

BACKFILL = "/v2/recovery/data-backfill"
HEADER = "customer_id_resp,token,exp_date,card_network,payment_method_sub_type,clean_bank_name,daily_retry_history\n"


async def upload(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post(BACKFILL, files={"file": ("cards.csv", text.encode(), "text/csv")})


def updates(svc: Intake) -> list[RecoveryUpdated]:
    return [e.payload for e in svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)]


async def open_recoveries(client: httpx.AsyncClient) -> None:
    for reference in (REFERENCE, "invoice_2"):
        created = await client.post("/v2/payments/recovery", json=recovery_body(merchant_reference_id=reference))
        assert created.status_code == 200, created.text


async def test_a_row_updates_the_card_of_every_open_recovery_of_the_customer_holding_the_token(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    await open_recoveries(client)

    answer = await upload(
        client,
        HEADER
        + "cus_test,pm_first,03/2029,Mastercard,Debit,Chase,{}\n"  # the seed's card: expiry 12/25, Visa, credit
        + "cus_test,pm_unknown,03/29,,,,\n"  # no open recovery holds it: kept for a later one
        + "cus_test,pm_first,13/29,,,,\n"  # not a month
        + ",pm_first,,,,,\n",  # no customer
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    counts = ("processed_records", "failed_records", "updated_recoveries", "kept_for_later")
    assert tuple(body[c] for c in counts) == (2, 2, 2, 1)
    lines = {e["row_number"]: e["error"] for e in body["errors"]}
    assert set(lines) == {4, 5}
    assert "exp_date" in lines[4] and "MM/YY" in lines[4]
    assert "customer_id_resp" in lines[5]
    for reference in (REFERENCE, "invoice_2"):
        intent = svc.intents.of_invoice(MERCHANT, reference)
        assert intent is not None
        [card] = intent.snapshot.tokens
        assert (card.card_exp_month, card.card_exp_year, card.card_network) == ("03", "2029", "Mastercard")
        assert (card.card_type, card.card_issuer) == ("debit", "Chase")
    sent = updates(svc)
    assert [(u.action, u.version, u.intent_status) for u in sent] == [(CARD_DATA_BACKFILL, 1, IntentStatus.FAILED)] * 2
    assert sent[0].payment.tokens[0].card_exp_year == "2029"

    # The same file again changes nothing and tells no one.
    again = await upload(client, HEADER + "cus_test,pm_first,03/29,Mastercard,debit,Chase,\n")
    assert again.json()["updated_recoveries"] == 0 and len(updates(svc)) == 2


async def test_the_same_expiry_written_otherwise_is_no_change(svc: Intake, client: httpx.AsyncClient) -> None:
    await open_recoveries(client)
    answer = await upload(client, "customer_id_resp,token,exp_date\ncus_test,pm_first,12/2025\n")
    assert answer.json()["updated_recoveries"] == 0 and updates(svc) == []


async def test_a_paid_or_cancelled_invoice_keeps_its_card(svc: Intake, client: httpx.AsyncClient) -> None:
    await open_recoveries(client)
    cancelled = await client.post(f"/v2/revenue-recovery/{REFERENCE}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    before = len(updates(svc))

    answer = await upload(client, "customer_id_resp,token,card_network\ncus_test,pm_first,Discover\n")

    assert answer.json()["updated_recoveries"] == 1  # invoice_2 only
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.snapshot.tokens[0].card_network == "Visa"
    assert len(updates(svc)) == before + 1


async def test_a_file_that_cannot_be_read_is_refused_whole_and_nothing_is_applied(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    await open_recoveries(client)
    for text, mention in (
        ("customer_id_resp,token,card_number\ncus_test,pm_first,4242\n", "unknown columns card_number"),
        ("customer_id_resp,exp_date\ncus_test,03/29\n", "the header lacks token"),
        ("", "no header row"),
    ):
        refused(await upload(client, text), 422, "IR_06", mention)
    not_text = await client.post(BACKFILL, files={"file": ("cards.csv", b"\xff\xfe\x00", "text/csv")})
    refused(not_text, 422, "IR_06", "not UTF-8")
    assert updates(svc) == []


async def test_the_file_is_required_and_its_size_bounded(client: httpx.AsyncClient) -> None:
    missing = await client.post(BACKFILL, data={"other": "x"})
    assert missing.status_code == 400 and "file" in missing.text
    # Over the file's bound: refused by the use case; over the path's body bound: by the abuse limits, unread.
    too_large = await upload(client, "customer_id_resp,token\n" + "x" * (MAX_BYTES + 1))
    refused(too_large, 422, "IR_06", f"at most {MAX_BYTES} are accepted")
    far_too_large = await upload(client, "x" * (BODY_BYTES + 1))
    assert far_too_large.status_code == 413


async def test_the_admin_key_backfills_for_the_merchant_it_names(svc: Intake) -> None:
    async with http_client(svc, headers=svc.headers()) as merchant:
        await open_recoveries(merchant)
    async with http_client(svc, headers={"api-key": ADMIN_KEY}) as admin:
        unnamed = await upload(admin, "customer_id_resp,token,card_network\ncus_test,pm_first,Discover\n")
        assert unnamed.status_code == 400 and "x-merchant-id" in unnamed.text
        admin.headers["x-merchant-id"] = MERCHANT
        named = await upload(admin, "customer_id_resp,token,card_network\ncus_test,pm_first,Discover\n")
    assert named.status_code == 200, named.text
    assert named.json()["updated_recoveries"] == 2


async def test_another_merchants_customers_are_not_reached(svc: Intake, client: httpx.AsyncClient) -> None:
    await open_recoveries(client)
    async with http_client(svc, headers={"api-key": ADMIN_KEY, "x-merchant-id": "merchant_other"}) as admin:
        answer = await upload(admin, "customer_id_resp,token,card_network\ncus_test,pm_first,Discover\n")
    assert answer.status_code in (400, 404)  # no such merchant
    assert updates(svc) == []


def history_file(*rows: tuple[str, str]) -> str:
    """A file of `token, daily_retry_history` rows for the customer of the seed's card (the history quoted as a
    spreadsheet writes it: it holds commas and quotes)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer_id_resp", "token", "daily_retry_history"])
    writer.writerows(("cus_test", token, history) for token, history in rows)
    return out.getvalue()


async def test_the_cards_retry_history_is_kept_on_the_token_for_the_network_budgets(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    await open_recoveries(client)
    now = svc.clock.now()  # 2026-01-15 12:00 UTC
    history = {
        "2025-12-01": 5,  # ended more than 31 days before the upload: never counts, not kept
        "2025-12-20": 4,  # a day: its retries at the day's end
        "2026-01-15 09:30:00": 2,  # an hour: at the hour's end
        "2026-01-15T11:10:00+00:00": 1,  # the hour still running: at the upload
        "2026-01-15": 3,  # today, not over: at the upload
        "2026-01-10": 0,  # no retries
    }

    answer = await upload(client, history_file(("pm_first", json.dumps(history))))

    assert answer.json()["updated_recoveries"] == 2, answer.text
    expected = [
        (datetime(2025, 12, 21, tzinfo=UTC), 4),
        (datetime(2026, 1, 15, 10, tzinfo=UTC), 2),
        (now, 1),
        (now, 3),
    ]
    for reference in (REFERENCE, "invoice_2"):
        intent = svc.intents.of_invoice(MERCHANT, reference)
        assert intent is not None
        assert sorted((p.at, p.count) for p in intent.snapshot.tokens[0].prior_retries) == sorted(expected)
        # Not a change of the card: its expiry and network stay the seed's.
        assert intent.snapshot.tokens[0].card_network == "Visa"
    [sent, _] = updates(svc)
    assert sent.action == CARD_DATA_BACKFILL
    assert sorted((p.at, p.count) for p in sent.payment.tokens[0].prior_retries) == sorted(expected)

    # The same history again changes nothing; a later upload replaces it; an empty one clears it.
    again = await upload(client, history_file(("pm_first", json.dumps(history))))
    assert again.json()["updated_recoveries"] == 0 and len(updates(svc)) == 2
    replaced = await upload(client, history_file(("pm_first", '{"2026-01-14": 1}')))
    assert replaced.json()["updated_recoveries"] == 2
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None
    assert [(p.at, p.count) for p in intent.snapshot.tokens[0].prior_retries] == [
        (datetime(2026, 1, 15, tzinfo=UTC), 1)
    ]
    cleared = await upload(client, history_file(("pm_first", "{}")))
    assert cleared.json()["updated_recoveries"] == 2
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.snapshot.tokens[0].prior_retries == ()
    # A row without the column's value keeps the history the token has.
    await upload(client, history_file(("pm_first", '{"2026-01-14": 1}')))
    kept = await upload(client, history_file(("pm_first", "")))
    assert kept.json()["updated_recoveries"] == 0


async def test_a_retry_history_that_cannot_be_counted_is_refused_with_its_row_and_reason(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    await open_recoveries(client)
    answer = await upload(
        client,
        history_file(
            ("pm_first", "3 retries"),
            ("pm_first", '["2026-01-14"]'),
            ("pm_first", '{"last tuesday": 1}'),
            ("pm_first", '{"2026-01-14": -1}'),
            ("pm_first", '{"2026-01-14": 500}'),
            ("pm_first", '{"2026-01-20": 1}'),  # five days after the upload
            ("pm_first", '{"2026-01-16": 1}'),  # tomorrow in UTC, today east of it: accepted
        ),
    )

    body = answer.json()
    assert (body["processed_records"], body["failed_records"]) == (1, 6), body
    lines = {e["row_number"]: e["error"] for e in body["errors"]}
    assert "is not JSON" in lines[2]
    assert "must be a JSON object of day -> retries" in lines[3]
    assert "'last tuesday' is neither a day (YYYY-MM-DD) nor a date-time" in lines[4]
    assert "'2026-01-14' has -1 retries" in lines[5]
    assert "has 500 retries; a whole number from 0 to 100" in lines[6]
    assert "2026-01-20T00:00:00+00:00 is after the upload" in lines[7]
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None
    assert [(p.at, p.count) for p in intent.snapshot.tokens[0].prior_retries] == [(svc.clock.now(), 1)]


def without_card_data(body: dict[str, object]) -> dict[str, object]:
    """`body` from a billing system that sends the token alone, no card details."""
    data = body["payment_method_data"]
    assert isinstance(data, dict)
    data["additional_payment_method_info"] = None
    return body


async def test_a_card_no_open_recovery_holds_is_kept_for_the_customers_next_recovery(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    """The merchant backfills its customers before their invoices fail: each new recovery with such a card takes
    the upload's history (the network budgets count it from the first retry) and the card fields its own request
    leaves empty; what the request does say stands (the billing system's word is the newer)."""
    answer = await upload(
        client,
        HEADER
        + 'cus_test,pm_first,03/29,Mastercard,debit,Chase,"{""2026-01-14"": 2}"\n'
        + 'cus_test,pm_second,03/29,Mastercard,debit,Chase,"{""2026-01-13"": 1}"\n',
    )
    body = answer.json()
    assert (body["processed_records"], body["updated_recoveries"], body["kept_for_later"]) == (2, 0, 2), answer.text
    assert updates(svc) == []

    seed = await client.post("/v2/payments/recovery", json=recovery_body())
    bare = await client.post(
        "/v2/payments/recovery",
        json=without_card_data(with_token("pm_second", "pi_second") | {"merchant_reference_id": "invoice_2"}),
    )

    assert seed.status_code == bare.status_code == 200, (seed.text, bare.text)
    seeded = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert seeded is not None
    [card] = seeded.snapshot.tokens
    assert (card.card_exp_month, card.card_exp_year, card.card_network) == ("12", "25", "Visa")  # the request's
    assert (card.card_type, card.card_issuer) == ("credit", "Wells Fargo NA")
    assert [(p.at, p.count) for p in card.prior_retries] == [(datetime(2026, 1, 15, tzinfo=UTC), 2)]
    filled = svc.intents.of_invoice(MERCHANT, "invoice_2")
    assert filled is not None
    [card] = filled.snapshot.tokens
    assert (card.card_exp_month, card.card_exp_year, card.card_network) == ("03", "2029", "Mastercard")
    assert (card.card_type, card.card_issuer) == ("debit", "Chase")
    assert [(p.at, p.count) for p in card.prior_retries] == [(datetime(2026, 1, 14, tzinfo=UTC), 1)]
    # The scheduler plans from what the recovery carries.
    scheduled = {
        e.payload.payment.merchant_reference_id: e.payload.payment
        for e in svc.publisher.envelopes(MessageType.RECOVERY_SCHEDULED)
    }
    assert scheduled["invoice_2"].tokens[0].prior_retries == card.prior_retries


async def test_uploads_of_a_card_add_up_and_are_forgotten_after_their_days(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    """A later upload's columns replace an earlier one's and its empty ones keep them; `{}` clears the history;
    the merchant's other customers' cards and other merchants' are not this card; 90 days after the latest upload
    of a card it is gone."""
    await upload(client, HEADER + 'cus_test,pm_first,,,,Chase,"{""2026-01-14"": 2}"\n')
    svc.clock.advance(timedelta(days=1))
    await upload(client, HEADER + "cus_test,pm_first,,Mastercard,,,\n")
    await upload(client, HEADER + "cus_other,pm_first,,Discover,,,\n")

    first = await client.post("/v2/payments/recovery", json=without_card_data(recovery_body()))
    assert first.status_code == 200, first.text
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None
    [card] = intent.snapshot.tokens
    assert (card.card_network, card.card_issuer, len(card.prior_retries)) == ("Mastercard", "Chase", 1)

    await upload(client, HEADER + "cus_test,pm_first,,,,,{}\n")
    cleared = await client.post(
        "/v2/payments/recovery", json=without_card_data(recovery_body(merchant_reference_id="invoice_2"))
    )
    assert cleared.status_code == 200, cleared.text
    intent = svc.intents.of_invoice(MERCHANT, "invoice_2")
    assert intent is not None and intent.snapshot.tokens[0].prior_retries == ()
    assert intent.snapshot.tokens[0].card_network == "Mastercard"

    svc.clock.advance(timedelta(days=SAVED_CARD_DAYS))
    late = await client.post(
        "/v2/payments/recovery", json=without_card_data(recovery_body(merchant_reference_id="invoice_3"))
    )
    assert late.status_code == 200, late.text
    intent = svc.intents.of_invoice(MERCHANT, "invoice_3")
    assert intent is not None and intent.snapshot.tokens[0].card_network is None


async def test_the_billing_systems_next_failure_of_an_open_invoice_keeps_the_cards_history(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    """The invoice fails again at the billing system with the same card: the request's token, which knows nothing
    of the history, takes it from the upload again instead of wiping it from the recovery."""
    await open_recoveries(client)
    await upload(client, history_file(("pm_first", '{"2026-01-14": 2}')))

    again = await client.post("/v2/payments/recovery", json=with_token("pm_first", "pi_second_failure"))

    assert again.status_code == 200, again.text
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.snapshot.billing_retry_count == 2
    assert [(p.at, p.count) for p in intent.snapshot.tokens[0].prior_retries] == [
        (datetime(2026, 1, 15, tzinfo=UTC), 2)
    ]


CARDS = "/v2/recovery/data-backfill/cards"


async def test_the_merchant_reads_a_customers_kept_cards_and_forgets_them(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    """What the uploads kept of a customer's cards, by token, with when each goes; a `read_only` key may read them,
    not forget them; forgotten, they reach no later recovery, and an open one keeps what it took."""
    await open_recoveries(client)
    await upload(
        client,
        HEADER
        + 'cus_test,pm_second,03/29,Mastercard,debit,,"{""2026-01-14"": 2}"\n'
        + "cus_test,pm_first,,,,Chase,\n"
        + "cus_other,pm_third,,Discover,,,\n",
    )
    async with http_client(svc) as api:
        reader = (await mint(api, API_KEY, ["read_only"]))["api_key"]

    shown = await client.get(CARDS, params={"connector_customer_id": "cus_test"})
    async with http_client(svc, headers={"api-key": reader}) as read_only:
        read = await read_only.get(CARDS, params={"connector_customer_id": "cus_test"})
        not_forgotten = await read_only.delete(CARDS, params={"connector_customer_id": "cus_test"})
    forgotten = await client.delete(CARDS, params={"connector_customer_id": "cus_test"})
    after = await client.get(CARDS, params={"connector_customer_id": "cus_test"})
    later = await client.post(
        "/v2/payments/recovery",
        json=without_card_data(with_token("pm_second", "pi_later") | {"merchant_reference_id": "invoice_3"}),
    )

    assert shown.status_code == 200, shown.text
    unknown = dict.fromkeys(("card_exp_month", "card_exp_year", "card_network", "card_type", "card_issuer"))
    kept = {"uploaded_at": "2026-01-15T12:00:00Z", "kept_until": "2026-04-15T12:00:00Z"}
    assert shown.json() == {
        "connector_customer_id": "cus_test",
        "cards": [
            {"token": "pm_first", **unknown, "card_issuer": "Chase", "prior_retries": None, **kept},
            {
                "token": "pm_second",
                **unknown,
                "card_exp_month": "03",
                "card_exp_year": "2029",
                "card_network": "Mastercard",
                "card_type": "debit",
                "prior_retries": [{"at": "2026-01-15T00:00:00Z", "count": 2}],
                **kept,
            },
        ],
    }, shown.text
    assert read.json() == shown.json()
    refused(not_forgotten, 403, "IR_22", "payments")
    assert forgotten.json() == shown.json() and after.json()["cards"] == []
    intent = svc.intents.of_invoice(MERCHANT, "invoice_3")
    assert later.status_code == 200 and intent is not None
    assert intent.snapshot.tokens[0].card_network is None and intent.snapshot.tokens[0].prior_retries == ()
    still = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert still is not None and still.snapshot.tokens[0].card_issuer == "Chase"  # the open one keeps it
    other = await client.get(CARDS, params={"connector_customer_id": "cus_other"})
    assert [card["token"] for card in other.json()["cards"]] == ["pm_third"]


async def test_a_customer_is_required_to_read_kept_cards(client: httpx.AsyncClient) -> None:
    for answer in (await client.get(CARDS), await client.get(CARDS, params={"connector_customer_id": ""})):
        assert answer.status_code in (400, 422) and "connector_customer_id" in answer.text, answer.text
