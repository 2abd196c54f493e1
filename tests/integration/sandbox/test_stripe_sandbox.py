"""The Stripe sandbox over real HTTP: auth, objects, test cards, idempotency, search, ledger, faults."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer

pytestmark = pytest.mark.integration


def make_customer(api: httpx.Client, **fields: str) -> dict[str, Any]:
    response = api.post("/v1/customers", data={"email": "payer@example.com", **fields})
    assert response.status_code == 200, response.text
    return response.json()


def attach(api: httpx.Client, alias: str, customer_id: str) -> dict[str, Any]:
    response = api.post(f"/v1/payment_methods/{alias}/attach", data={"customer": customer_id})
    assert response.status_code == 200, response.text
    return response.json()


def off_session_charge(
    api: httpx.Client,
    customer: str | None,
    payment_method: str,
    amount: int = 2250,
    key: str | None = None,
    timeout: float = 10.0,
    **extra: str,
) -> httpx.Response:
    data = {
        "amount": str(amount),
        "currency": "usd",
        "payment_method": payment_method,
        "confirm": "true",
        "off_session": "true",
        "metadata[payment_id]": "12345_pay_0001",
        "metadata[attempt_number]": "1",
        **extra,
    }
    if customer is not None:
        data["customer"] = customer
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/v1/payment_intents", data=data, headers=headers, timeout=timeout)


def ledger(server: BackgroundServer) -> list[dict[str, Any]]:
    return httpx.get(server.url + "/_sandbox/ledger").json()


# ----- auth ------------------------------------------------------------------------------------------------


def test_requests_without_a_test_secret_key_get_stripes_401(stripe_server: BackgroundServer) -> None:
    missing = httpx.post(stripe_server.url + "/v1/customers")
    live = httpx.post(
        stripe_server.url + "/v1/customers", headers={"Authorization": "Bearer sk_live_abcdefghijklmnop1234"}
    )

    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert live.status_code == 401
    assert "sk_live_abcdefghijklmnop1234" not in live.text  # masked, as Stripe does


def test_basic_auth_with_the_key_as_user_name_is_accepted(stripe_server: BackgroundServer, api_key: str) -> None:
    response = httpx.post(stripe_server.url + "/v1/customers", auth=(api_key, ""))

    assert response.status_code == 200


def test_an_unknown_url_gets_stripes_404_body(stripe_api: httpx.Client) -> None:
    response = stripe_api.get("/v1/nothing_here")

    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nothing_here)")


# ----- customers and payment methods ----------------------------------------------------------------------


def test_customer_is_created_and_read_back(stripe_api: httpx.Client) -> None:
    created = make_customer(stripe_api, name="Ada", **{"metadata[billing_ref]": "inv_1"})

    fetched = stripe_api.get(f"/v1/customers/{created['id']}")

    assert re.fullmatch(r"cus_[A-Za-z0-9]{14}", created["id"])
    assert fetched.json() == created
    assert created["object"] == "customer"
    assert created["metadata"] == {"billing_ref": "inv_1"}
    assert fetched.headers["Request-Id"].startswith("req_")


def test_unknown_customer_is_a_404_resource_missing(stripe_api: httpx.Client) -> None:
    response = stripe_api.get("/v1/customers/cus_nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"
    assert response.json()["error"]["message"] == "No such customer: 'cus_nope'"


def test_attaching_a_test_alias_makes_a_new_payment_method_for_the_customer(stripe_api: httpx.Client) -> None:
    customer = make_customer(stripe_api)

    pm = attach(stripe_api, "pm_card_mastercard", customer["id"])
    fetched = stripe_api.get(f"/v1/payment_methods/{pm['id']}").json()
    listed = stripe_api.get(f"/v1/customers/{customer['id']}/payment_methods").json()

    assert re.fullmatch(r"pm_[A-Za-z0-9]{24}", pm["id"])
    assert pm["customer"] == customer["id"]
    assert (pm["card"]["brand"], pm["card"]["last4"], pm["card"]["exp_month"]) == ("mastercard", "4444", 12)
    assert fetched == pm
    assert listed["object"] == "list"
    assert [item["id"] for item in listed["data"]] == [pm["id"]]


def test_attaching_to_an_unknown_customer_fails(stripe_api: httpx.Client) -> None:
    response = stripe_api.post("/v1/payment_methods/pm_card_visa/attach", data={"customer": "cus_missing"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "resource_missing"
    assert response.json()["error"]["param"] == "customer"


def test_a_payment_method_from_a_raw_test_card_number_behaves_like_that_card(
    stripe_api: httpx.Client,
) -> None:
    customer = make_customer(stripe_api)
    created = stripe_api.post(
        "/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": "4000000000009995",
            "card[exp_month]": "3",
            "card[exp_year]": "30",
        },
    ).json()
    attach(stripe_api, created["id"], customer["id"])

    response = off_session_charge(stripe_api, customer["id"], created["id"])

    assert (created["card"]["last4"], created["card"]["exp_year"]) == ("9995", 2030)
    assert response.json()["error"]["decline_code"] == "insufficient_funds"


# ----- test cards ------------------------------------------------------------------------------------------

DECLINES = [
    # alias, code, decline_code, message (Stripe's for that card)
    ("pm_card_chargeDeclined", "card_declined", "generic_decline", "Your card was declined."),
    ("pm_card_chargeCustomerFail", "card_declined", "generic_decline", "Your card was declined."),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    ("pm_card_visa_chargeDeclinedLostCard", "card_declined", "lost_card", "Your card was declined."),
    ("pm_card_chargeDeclinedStolenCard", "card_declined", "stolen_card", "Your card was declined."),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card", "Your card has expired."),
    (
        "pm_card_chargeDeclinedIncorrectCvc",
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    (
        "pm_card_chargeDeclinedProcessingError",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    ("pm_card_chargeDeclinedFraudulent", "card_declined", "fraudulent", "Your card was declined."),
    (
        "pm_card_authenticationRequired",
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
]


@pytest.mark.parametrize(
    ("alias", "brand", "last4"),
    [("pm_card_visa", "visa", "4242"), ("pm_card_mastercard", "mastercard", "4444")],
)
def test_a_good_card_is_charged_off_session(
    stripe_api: httpx.Client, stripe_server: BackgroundServer, alias: str, brand: str, last4: str
) -> None:
    customer = make_customer(stripe_api)
    pm = attach(stripe_api, alias, customer["id"])

    response = off_session_charge(stripe_api, customer["id"], pm["id"], key="attempt-1")
    intent = response.json()

    assert response.status_code == 200
    assert intent["object"] == "payment_intent"
    assert re.fullmatch(r"pi_[A-Za-z0-9]{24}", intent["id"])
    assert (intent["status"], intent["amount_received"], intent["currency"]) == ("succeeded", 2250, "usd")
    assert intent["latest_charge"].startswith("ch_")
    assert intent["metadata"] == {"payment_id": "12345_pay_0001", "attempt_number": "1"}
    charge = stripe_api.get(f"/v1/charges/{intent['latest_charge']}").json()
    assert (
        charge["payment_method_details"]["card"]["brand"],
        charge["payment_method_details"]["card"]["last4"],
    ) == (
        brand,
        last4,
    )
    [entry] = ledger(stripe_server)
    assert entry["payment_intent"] == intent["id"]
    assert (entry["status"], entry["amount"], entry["customer"], entry["payment_method"]) == (
        "succeeded",
        2250,
        customer["id"],
        pm["id"],
    )
    assert entry["decline_code"] is None
    assert entry["idempotency_key"] == "attempt-1"


@pytest.mark.parametrize(("alias", "code", "decline_code", "message"), DECLINES)
def test_a_declining_test_card_gets_stripes_402_card_error(
    stripe_api: httpx.Client,
    stripe_server: BackgroundServer,
    alias: str,
    code: str,
    decline_code: str,
    message: str,
) -> None:
    customer = make_customer(stripe_api)
    pm = attach(stripe_api, alias, customer["id"])

    response = off_session_charge(stripe_api, customer["id"], pm["id"])
    error = response.json()["error"]

    assert response.status_code == 402
    assert (error["type"], error["code"], error["decline_code"], error["message"]) == (
        "card_error",
        code,
        decline_code,
        message,
    )
    assert error["doc_url"].startswith("https://docs.stripe.com/error-codes/")
    intent = error["payment_intent"]
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == decline_code
    assert intent["last_payment_error"]["payment_method"]["id"] == pm["id"]
    assert stripe_api.get(f"/v1/payment_intents/{intent['id']}").json()["status"] == "requires_payment_method"
    [entry] = ledger(stripe_server)
    assert (entry["status"], entry["decline_code"], entry["payment_intent"]) == (
        "failed",
        decline_code,
        intent["id"],
    )


def test_a_test_alias_can_be_charged_directly_without_attaching(stripe_api: httpx.Client) -> None:
    response = off_session_charge(stripe_api, None, "pm_card_visa")

    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert re.fullmatch(r"pm_[A-Za-z0-9]{24}", response.json()["payment_method"])


def test_authentication_required_card_on_session_waits_for_the_customer(
    stripe_api: httpx.Client, stripe_server: BackgroundServer
) -> None:
    response = stripe_api.post(
        "/v1/payment_intents",
        data={
            "amount": "2250",
            "currency": "usd",
            "payment_method": "pm_card_authenticationRequired",
            "confirm": "true",
        },
    )

    assert response.status_code == 200
    assert response.json()["status"] == "requires_action"
    assert ledger(stripe_server) == []


def test_a_payment_method_of_another_customer_is_refused(stripe_api: httpx.Client) -> None:
    owner, other = make_customer(stripe_api), make_customer(stripe_api)
    pm = attach(stripe_api, "pm_card_visa", owner["id"])

    response = off_session_charge(stripe_api, other["id"], pm["id"])

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "payment_method"


# ----- validation ------------------------------------------------------------------------------------------


def test_invalid_requests_get_400_with_the_parameter_named(stripe_api: httpx.Client) -> None:
    missing = stripe_api.post("/v1/payment_intents", data={"currency": "usd"})
    unknown = stripe_api.post("/v1/payment_intents", data={"amount": "2250", "currency": "usd", "colour": "red"})
    too_small = stripe_api.post("/v1/payment_intents", data={"amount": "10", "currency": "usd"})
    as_json = stripe_api.post("/v1/payment_intents", json={"amount": 2250, "currency": "usd"})
    no_pm = off_session_charge(stripe_api, None, "pm_doesNotExist")

    assert [r.status_code for r in (missing, unknown, too_small, as_json, no_pm)] == [400] * 5
    assert (missing.json()["error"]["code"], missing.json()["error"]["param"]) == (
        "parameter_missing",
        "amount",
    )
    assert (unknown.json()["error"]["code"], unknown.json()["error"]["param"]) == (
        "parameter_unknown",
        "colour",
    )
    assert too_small.json()["error"]["code"] == "amount_too_small"
    assert no_pm.json()["error"]["code"] == "resource_missing"


# ----- idempotency -----------------------------------------------------------------------------------------


def test_same_key_and_parameters_replay_the_first_answer_without_charging_again(
    stripe_api: httpx.Client, stripe_server: BackgroundServer
) -> None:
    customer = make_customer(stripe_api)
    pm = attach(stripe_api, "pm_card_visa", customer["id"])

    first = off_session_charge(stripe_api, customer["id"], pm["id"], key="pay_1:attempt:1")
    second = off_session_charge(stripe_api, customer["id"], pm["id"], key="pay_1:attempt:1")

    assert second.status_code == first.status_code == 200
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Original-Request"] == first.headers["Request-Id"]
    assert "Idempotent-Replayed" not in first.headers
    assert len(ledger(stripe_server)) == 1


def test_a_replayed_decline_is_the_same_402(stripe_api: httpx.Client, stripe_server: BackgroundServer) -> None:
    customer = make_customer(stripe_api)
    pm = attach(stripe_api, "pm_card_chargeDeclinedInsufficientFunds", customer["id"])

    first = off_session_charge(stripe_api, customer["id"], pm["id"], key="k-decline")
    second = off_session_charge(stripe_api, customer["id"], pm["id"], key="k-decline")

    assert (first.status_code, second.status_code) == (402, 402)
    assert second.json() == first.json()
    assert len(ledger(stripe_server)) == 1


def test_same_key_with_other_parameters_is_an_idempotency_error(
    stripe_api: httpx.Client, stripe_server: BackgroundServer
) -> None:
    customer = make_customer(stripe_api)
    pm = attach(stripe_api, "pm_card_visa", customer["id"])

    first = off_session_charge(stripe_api, customer["id"], pm["id"], amount=2250, key="k-mismatch")
    other_amount = off_session_charge(stripe_api, customer["id"], pm["id"], amount=9999, key="k-mismatch")
    other_metadata = off_session_charge(
        stripe_api, customer["id"], pm["id"], amount=2250, key="k-mismatch", **{"metadata[attempt_id]": "att_2"}
    )
    again = off_session_charge(stripe_api, customer["id"], pm["id"], amount=2250, key="k-mismatch")

    for refused in (other_amount, other_metadata):
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["type"] == "idempotency_error" and "'k-mismatch'" in error["message"]
        assert "Idempotent-Replayed" not in refused.headers
    # A refusal is not saved under the key: the first parameters still replay the first answer.
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (200, "true")
    assert again.json() == first.json()
    assert len(ledger(stripe_server)) == 1


def test_idempotency_keys_are_scoped_per_api_key(stripe_server: BackgroundServer) -> None:
    def charge(key: str) -> httpx.Response:
        return httpx.post(
            stripe_server.url + "/v1/payment_intents",
            data={"amount": "2250", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "shared-key"},
        )

    first, second = charge("sk_test_account_one"), charge("sk_test_account_two")

    assert first.json()["id"] != second.json()["id"]
    assert "Idempotent-Replayed" not in second.headers
    assert len(ledger(stripe_server)) == 2


def test_a_request_that_failed_validation_does_not_use_up_its_key(stripe_api: httpx.Client) -> None:
    bad = stripe_api.post("/v1/payment_intents", data={"currency": "usd"}, headers={"Idempotency-Key": "k-fixed-later"})
    good = stripe_api.post(
        "/v1/payment_intents",
        data={"amount": "2250", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"},
        headers={"Idempotency-Key": "k-fixed-later"},
    )

    assert bad.status_code == 400
    assert good.status_code == 200


# ----- retrieval and search --------------------------------------------------------------------------------


def test_payment_intents_are_found_by_id_search_and_customer_list(stripe_api: httpx.Client) -> None:
    customer = make_customer(stripe_api)
    pm = attach(stripe_api, "pm_card_visa", customer["id"])
    mine = off_session_charge(
        stripe_api,
        customer["id"],
        pm["id"],
        **{"metadata[payment_id]": "pay_it's", "metadata[attempt_number]": "2"},
    ).json()
    off_session_charge(stripe_api, customer["id"], pm["id"], **{"metadata[attempt_number]": "3"})

    by_id = stripe_api.get(f"/v1/payment_intents/{mine['id']}").json()
    search = stripe_api.get(
        "/v1/payment_intents/search",
        params={"query": r"metadata['payment_id']:'pay_it\'s' AND metadata['attempt_number']:'2'"},
    ).json()
    nothing = stripe_api.get(
        "/v1/payment_intents/search",
        params={"query": "metadata['payment_id']:'other' AND status:'succeeded'"},
    ).json()
    listed = stripe_api.get("/v1/payment_intents", params={"customer": customer["id"], "limit": 1}).json()

    assert by_id == mine
    assert search["object"] == "search_result"
    assert [pi["id"] for pi in search["data"]] == [mine["id"]]
    assert nothing["data"] == []
    assert len(listed["data"]) == 1
    assert listed["has_more"] is True


def test_a_search_query_it_cannot_parse_is_a_400(stripe_api: httpx.Client) -> None:
    mixed = stripe_api.get("/v1/payment_intents/search", params={"query": "status:'a' AND status:'b' OR amount>1"})
    garbage = stripe_api.get("/v1/payment_intents/search", params={"query": "metadata[payment_id]=x"})

    assert (mixed.status_code, garbage.status_code) == (400, 400)
    assert garbage.json()["error"]["param"] == "query"


def test_an_unknown_payment_intent_is_a_404(stripe_api: httpx.Client) -> None:
    response = stripe_api.get("/v1/payment_intents/pi_missing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


# ----- ledger, reset, faults -------------------------------------------------------------------------------


def test_reset_empties_the_ledger_and_the_objects(stripe_api: httpx.Client, stripe_server: BackgroundServer) -> None:
    intent = off_session_charge(stripe_api, None, "pm_card_visa").json()

    httpx.post(stripe_server.url + "/_sandbox/reset")

    assert ledger(stripe_server) == []
    assert stripe_api.get(f"/v1/payment_intents/{intent['id']}").status_code == 404


def test_timeout_after_charge_charges_then_holds_the_answer(
    stripe_api: httpx.Client, stripe_server: BackgroundServer
) -> None:
    customer = make_customer(stripe_api)
    pm = attach(stripe_api, "pm_card_visa", customer["id"])
    httpx.post(
        stripe_server.url + "/_sandbox/faults",
        json={"payment_method": pm["id"], "mode": "timeout_after_charge", "seconds": 2},
    ).raise_for_status()

    with pytest.raises(httpx.ReadTimeout):
        off_session_charge(stripe_api, customer["id"], pm["id"], key="k-lost", timeout=0.5)
    charged = ledger(stripe_server)
    retry = off_session_charge(stripe_api, customer["id"], pm["id"], key="k-lost")

    assert len(charged) == 1
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == charged[0]["payment_intent"]
    assert len(ledger(stripe_server)) == 1


def test_error_500_before_charge_charges_nothing_and_keeps_the_key_usable(
    stripe_api: httpx.Client, stripe_server: BackgroundServer
) -> None:
    httpx.post(
        stripe_server.url + "/_sandbox/faults",
        json={"payment_method": "*", "mode": "error_500_before_charge"},
    ).raise_for_status()

    failed = off_session_charge(stripe_api, None, "pm_card_visa", key="k-500")
    nothing = ledger(stripe_server)
    retried = off_session_charge(stripe_api, None, "pm_card_visa", key="k-500")

    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "api_error"
    assert nothing == []
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert len(ledger(stripe_server)) == 1


def test_a_concurrent_request_with_a_key_in_flight_gets_409(
    stripe_api: httpx.Client, stripe_server: BackgroundServer
) -> None:
    httpx.post(
        stripe_server.url + "/_sandbox/faults",
        json={"payment_method": "pm_card_visa", "mode": "delay", "seconds": 1},
    ).raise_for_status()
    answers: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(off_session_charge(stripe_api, None, "pm_card_visa", key="k-busy"))
    )
    slow.start()
    deadline = 50
    while not stripe_server_has_no_faults(stripe_server) and deadline:
        deadline -= 1
        threading.Event().wait(0.02)

    concurrent = off_session_charge(stripe_api, None, "pm_card_visa", key="k-busy")
    slow.join()

    assert concurrent.status_code == 409
    assert concurrent.json()["error"]["code"] == "idempotency_key_in_use"
    assert answers[0].status_code == 200
    assert len(ledger(stripe_server)) == 1


def stripe_server_has_no_faults(server: BackgroundServer) -> bool:
    """The delay fault is used up when its request starts waiting: then the key is in flight."""
    return httpx.get(server.url + "/_sandbox/faults").json() == []


def test_a_decline_fault_declines_the_next_charges_then_the_card_works(
    stripe_api: httpx.Client, stripe_server: BackgroundServer
) -> None:
    customer = make_customer(stripe_api)
    pm = attach(stripe_api, "pm_card_visa", customer["id"])
    httpx.post(
        stripe_server.url + "/_sandbox/faults",
        json={
            "payment_method": pm["id"],
            "mode": "decline",
            "decline_code": "insufficient_funds",
            "times": 2,
        },
    ).raise_for_status()

    statuses = [off_session_charge(stripe_api, customer["id"], pm["id"]).status_code for _ in range(3)]

    assert statuses == [402, 402, 200]
    assert [e["decline_code"] for e in ledger(stripe_server)] == [
        "insufficient_funds",
        "insufficient_funds",
        None,
    ]


def test_an_unknown_fault_mode_is_refused(stripe_server: BackgroundServer) -> None:
    response = httpx.post(stripe_server.url + "/_sandbox/faults", json={"mode": "explode"})

    assert response.status_code == 422


# ----- persistence -----------------------------------------------------------------------------------------


def test_state_dir_keeps_ledger_objects_and_idempotency_across_a_restart(tmp_path: Path, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "k-restart"}
    data = {"amount": "2250", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
    with BackgroundServer(stripe.create_app(tmp_path)) as before:
        first = httpx.post(before.url + "/v1/payment_intents", data=data, headers=headers)

    with BackgroundServer(stripe.create_app(tmp_path)) as after:
        replay = httpx.post(after.url + "/v1/payment_intents", data=data, headers=headers)
        kept = httpx.get(after.url + f"/v1/payment_intents/{first.json()['id']}", headers=headers)
        entries = ledger(after)

    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert kept.json()["status"] == "succeeded"
    assert [e["payment_intent"] for e in entries] == [first.json()["id"]]
