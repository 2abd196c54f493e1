"""StripeConnector against the Stripe sandbox over real HTTP: outcomes, idempotency, PSYNC after a timeout."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from recovery_executor.adapters.stripe import StripeConnector
from recovery_executor.domain.connector import ChargeOutcomeKind, ChargeRequest
from recovery_sandbox.serving import BackgroundServer

pytestmark = pytest.mark.integration

CardOnFile = Callable[[str], tuple[str, str]]
Ledger = Callable[[], list[dict[str, Any]]]


def attempt(customer: str, payment_method: str, number: int = 1, amount: int = 2250) -> ChargeRequest:
    payment_id = "12345_pay_019925c5959a79418301a9460b92edb1"
    return ChargeRequest(
        payment_id=payment_id,
        attempt_number=number,
        amount=amount,
        currency="USD",
        customer=customer,
        payment_method=payment_method,
        idempotency_key=f"{payment_id}:attempt:{number}",
        metadata={"merchant_reference_id": "test_ffhgfewf3476f5"},
    )


def arm(server: BackgroundServer, **fault: Any) -> None:
    httpx.post(server.url + "/_sandbox/faults", json=fault).raise_for_status()


async def test_a_good_card_is_charged(
    connector: StripeConnector, card_on_file: CardOnFile, sandbox_ledger: Ledger
) -> None:
    customer, pm = card_on_file("pm_card_visa")

    outcome = await connector.charge(attempt(customer, pm))

    assert outcome.kind is ChargeOutcomeKind.SUCCEEDED
    assert outcome.connector_transaction_id is not None
    assert outcome.connector_transaction_id.startswith("pi_")
    assert outcome.charge_id is not None and outcome.charge_id.startswith("ch_")
    assert (outcome.amount_received, outcome.raw_status, outcome.http_status) == (2250, "succeeded", 200)
    [entry] = sandbox_ledger()
    assert (entry["payment_intent"], entry["amount"], entry["currency"]) == (
        outcome.connector_transaction_id,
        2250,
        "usd",
    )
    assert (entry["customer"], entry["payment_method"]) == (customer, pm)
    assert entry["idempotency_key"] == "12345_pay_019925c5959a79418301a9460b92edb1:attempt:1"
    assert entry["metadata"] == {
        "payment_id": "12345_pay_019925c5959a79418301a9460b92edb1",
        "attempt_number": "1",
        "idempotency_key": "12345_pay_019925c5959a79418301a9460b92edb1:attempt:1",
        "merchant_reference_id": "test_ffhgfewf3476f5",
    }


@pytest.mark.parametrize(
    ("alias", "error_code", "decline_code", "advice_code"),
    [
        ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds", "try_again_later"),
        ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card", "do_not_try_again"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card", "confirm_card_data"),
        ("pm_card_authenticationRequired", "authentication_required", "authentication_required", None),
    ],
)
async def test_a_declined_card_is_a_decline_with_stripes_codes(
    connector: StripeConnector,
    card_on_file: CardOnFile,
    sandbox_ledger: Ledger,
    alias: str,
    error_code: str,
    decline_code: str,
    advice_code: str | None,
) -> None:
    customer, pm = card_on_file(alias)

    outcome = await connector.charge(attempt(customer, pm))

    assert outcome.kind is ChargeOutcomeKind.DECLINED
    assert (outcome.error_code, outcome.decline_code, outcome.advice_code) == (
        error_code,
        decline_code,
        advice_code,
    )
    assert (outcome.error_type, outcome.http_status, outcome.raw_status) == (
        "card_error",
        402,
        "requires_payment_method",
    )
    assert outcome.connector_transaction_id is not None and outcome.connector_transaction_id.startswith("pi_")
    assert outcome.message
    [entry] = sandbox_ledger()
    assert (entry["status"], entry["decline_code"]) == ("failed", decline_code)


async def test_the_same_attempt_charged_twice_is_one_charge(
    connector: StripeConnector, card_on_file: CardOnFile, sandbox_ledger: Ledger
) -> None:
    customer, pm = card_on_file("pm_card_visa")

    first = await connector.charge(attempt(customer, pm))
    second = await connector.charge(attempt(customer, pm))

    assert first.kind is second.kind is ChargeOutcomeKind.SUCCEEDED
    assert second.connector_transaction_id == first.connector_transaction_id
    assert len(sandbox_ledger()) == 1


async def test_the_next_attempt_is_a_new_charge(
    connector: StripeConnector, stripe_server: BackgroundServer, card_on_file: CardOnFile, sandbox_ledger: Ledger
) -> None:
    customer, pm = card_on_file("pm_card_visa")
    arm(stripe_server, payment_method=pm, mode="decline", decline_code="insufficient_funds")

    first = await connector.charge(attempt(customer, pm, number=1))
    second = await connector.charge(attempt(customer, pm, number=2))

    assert (first.kind, second.kind) == (ChargeOutcomeKind.DECLINED, ChargeOutcomeKind.SUCCEEDED)
    assert [e["status"] for e in sandbox_ledger()] == ["failed", "succeeded"]


async def test_a_lost_answer_is_unknown_and_sync_finds_the_one_charge(
    stripe_server: BackgroundServer,
    http_client: httpx.AsyncClient,
    api_key: str,
    card_on_file: CardOnFile,
    sandbox_ledger: Ledger,
) -> None:
    impatient = StripeConnector(stripe_server.url, api_key, http_client, timeout=0.5)
    customer, pm = card_on_file("pm_card_visa")
    arm(stripe_server, payment_method=pm, mode="timeout_after_charge", seconds=2)
    request = attempt(customer, pm)

    lost = await impatient.charge(request)
    synced = await impatient.sync(request)

    assert lost.kind is ChargeOutcomeKind.UNKNOWN
    assert lost.http_status is None
    assert synced.kind is ChargeOutcomeKind.SUCCEEDED
    [entry] = sandbox_ledger()
    assert synced.connector_transaction_id == entry["payment_intent"]
    assert synced.charge_id == entry["charge"]


async def test_sync_by_a_known_id_reads_that_payment_intent(
    connector: StripeConnector, card_on_file: CardOnFile
) -> None:
    customer, pm = card_on_file("pm_card_chargeDeclinedLostCard")
    request = attempt(customer, pm)
    declined = await connector.charge(request)

    synced = await connector.sync(request, connector_transaction_id=declined.connector_transaction_id)
    searched = await connector.sync(request)

    for outcome in (synced, searched):
        assert outcome.kind is ChargeOutcomeKind.DECLINED
        assert outcome.connector_transaction_id == declined.connector_transaction_id
        assert (outcome.decline_code, outcome.raw_status) == ("lost_card", "requires_payment_method")


async def test_sync_without_a_charge_is_not_found_and_charges_nothing(
    connector: StripeConnector, card_on_file: CardOnFile, sandbox_ledger: Ledger
) -> None:
    customer, pm = card_on_file("pm_card_visa")

    outcome = await connector.sync(attempt(customer, pm))
    missing_id = await connector.sync(attempt(customer, pm), connector_transaction_id="pi_doesnotexist")

    assert outcome.kind is ChargeOutcomeKind.NOT_FOUND
    assert missing_id.kind is ChargeOutcomeKind.NOT_FOUND
    assert sandbox_ledger() == []


async def test_a_500_before_charging_is_unknown_and_the_same_request_then_charges_once(
    connector: StripeConnector, stripe_server: BackgroundServer, card_on_file: CardOnFile, sandbox_ledger: Ledger
) -> None:
    customer, pm = card_on_file("pm_card_visa")
    arm(stripe_server, payment_method=pm, mode="error_500_before_charge")

    failed = await connector.charge(attempt(customer, pm))
    retried = await connector.charge(attempt(customer, pm))

    assert (failed.kind, failed.http_status, failed.error_type) == (
        ChargeOutcomeKind.UNKNOWN,
        500,
        "api_error",
    )
    assert retried.kind is ChargeOutcomeKind.SUCCEEDED
    assert len(sandbox_ledger()) == 1


async def test_a_key_in_flight_elsewhere_is_unknown(
    connector: StripeConnector,
    stripe_server: BackgroundServer,
    http_client: httpx.AsyncClient,
    card_on_file: CardOnFile,
    sandbox_ledger: Ledger,
) -> None:
    customer, pm = card_on_file("pm_card_visa")
    arm(stripe_server, payment_method=pm, mode="delay", seconds=1)
    slow = asyncio.create_task(connector.charge(attempt(customer, pm)))
    for _ in range(250):
        # The delay fault is used up when its request starts waiting: from then on the key is in flight.
        if not (await http_client.get(stripe_server.url + "/_sandbox/faults")).json():
            break
        await asyncio.sleep(0.02)

    concurrent = await connector.charge(attempt(customer, pm))
    first = await slow

    assert (concurrent.kind, concurrent.http_status, concurrent.error_code) == (
        ChargeOutcomeKind.UNKNOWN,
        409,
        "idempotency_key_in_use",
    )
    assert first.kind is ChargeOutcomeKind.SUCCEEDED
    assert len(sandbox_ledger()) == 1


async def test_configuration_problems_are_config_errors(
    stripe_server: BackgroundServer,
    http_client: httpx.AsyncClient,
    api_key: str,
    card_on_file: CardOnFile,
    sandbox_ledger: Ledger,
) -> None:
    customer, pm = card_on_file("pm_card_visa")
    wrong_key = StripeConnector(stripe_server.url, "sk_live_not_for_the_sandbox", http_client)
    right_key = StripeConnector(stripe_server.url, api_key, http_client)

    unauthorised = await wrong_key.charge(attempt(customer, pm))
    no_such_pm = await right_key.charge(attempt(customer, "pm_deletedAtStripe"))

    assert (unauthorised.kind, unauthorised.http_status) == (ChargeOutcomeKind.CONFIG_ERROR, 401)
    assert (no_such_pm.kind, no_such_pm.error_code) == (ChargeOutcomeKind.CONFIG_ERROR, "resource_missing")
    assert sandbox_ledger() == []


async def test_a_key_first_used_with_other_parameters_is_unknown_and_a_sync_finds_that_first_charge(
    connector: StripeConnector, card_on_file: CardOnFile, sandbox_ledger: Ledger
) -> None:
    customer, pm = card_on_file("pm_card_visa")
    first = await connector.charge(attempt(customer, pm, amount=2000))

    reused_key = await connector.charge(attempt(customer, pm))
    synced = await connector.sync(attempt(customer, pm))

    assert (reused_key.kind, reused_key.http_status, reused_key.error_type) == (
        ChargeOutcomeKind.UNKNOWN,
        400,
        "idempotency_error",
    )
    assert not reused_key.is_final  # a charge may exist under the key: never a final error
    assert (synced.kind, synced.connector_transaction_id) == (
        ChargeOutcomeKind.SUCCEEDED,
        first.connector_transaction_id,
    )
    assert [entry["amount"] for entry in sandbox_ledger()] == [2000]


async def test_nothing_listening_is_unknown(http_client: httpx.AsyncClient, api_key: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port was just released and nothing listens on it.
    gone = StripeConnector(f"http://127.0.0.1:{port}", api_key, http_client, timeout=1.0)

    outcome = await gone.charge(attempt("cus_x", "pm_x"))

    assert outcome.kind is ChargeOutcomeKind.UNKNOWN
    assert outcome.http_status is None


async def test_the_api_key_never_reaches_the_logs_or_the_repr(
    connector: StripeConnector,
    card_on_file: CardOnFile,
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    customer, pm = card_on_file("pm_card_chargeDeclinedInsufficientFunds")
    caplog.set_level(logging.DEBUG)

    await connector.charge(attempt(customer, pm))
    await connector.sync(attempt(customer, pm))

    assert caplog.records
    assert api_key not in caplog.text
    assert api_key not in repr(connector)
