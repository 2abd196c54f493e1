"""The retry engine end to end: the whole system as processes, the Stripe sandbox, webhooks and record back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from recovery_cli.seed_scenario import MerchantSetup, SeedScenario
from recovery_cli.stack import Stack
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_sandbox.serving import BackgroundServer
from support.stack import attach_card, seed_scenario, setup_merchant

# One stack for the module's tests (tests/conftest.py): each works with a merchant, customers and invoices of its own.
SHARE_STACK = True

TRACKER = "/v2/process-trackers/revenue-recovery-workflow"
# Business seconds; at TIME_SCALE 1000 a 60 s step is 60 ms. A long first step leaves the test time to act
# (another token, a cancellation) before the first retry.
QUICK_LADDER = [60, 60, 60, 60]
SLOW_START_LADDER = [4000, 60, 60, 60]


@pytest.fixture
def billing_receiver() -> Iterator[BackgroundServer]:
    """The billing system's record-back endpoint: a real local HTTP server that answers as told."""
    server = BackgroundServer(receiver_app(), graceful_seconds=2).start(timeout=30.0)
    yield server
    server.stop()


def tracker(scenario: SeedScenario, setup: MerchantSetup, payment_id: str) -> httpx.Response:
    return scenario.http.get(f"{scenario.endpoints.intake_url}{TRACKER}/{payment_id}", headers=setup.headers())


def wait_for_tracker(
    scenario: SeedScenario, setup: MerchantSetup, payment_id: str, recovery_status: str, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = tracker(scenario, setup, payment_id)
        if answer.status_code == 200 and answer.json()["recovery_status"] == recovery_status:
            return answer.json()
        assert time.monotonic() < deadline, f"recovery not {recovery_status}: {answer.status_code} {answer.text}"
        time.sleep(0.25)


def fault(stack: Stack, **fields: Any) -> None:
    assert httpx.post(f"{stack.stripe_url}/_sandbox/faults", json=fields).status_code < 300


def webhooks_for(scenario: SeedScenario, payment_id: str) -> list[str | None]:
    return [w.event_type for w in scenario.received() if w.object_id == payment_id]


def test_soft_decline_then_success_on_a_later_slot_is_recorded_back_until_accepted(
    stack: Stack, billing_receiver: BackgroundServer
) -> None:
    scenario = seed_scenario(stack)
    httpx.post(f"{billing_receiver.url}/_receiver/config", json={"behaviours": [{"status": 500, "times": 2}]})
    setup = setup_merchant(scenario, QUICK_LADDER, record_back_url=f"{billing_receiver.url}/record-back")
    customer, pm = scenario.customer_with_card("pm_card_visa")
    fault(stack, payment_method=pm, mode="decline", decline_code="insufficient_funds", times=1)
    payment_id = scenario.request_recovery(setup, customer, pm)["id"]

    scenario.wait_for_webhook(payment_id, timeout=60)
    charges = scenario.charges(customer)
    assert [c["status"] for c in charges] == ["failed", "succeeded"]

    view = wait_for_tracker(scenario, setup, payment_id, "succeeded")
    first, second = view["attempts"]
    assert (first["outcome"], first["decline_code"], first["decline_class"]) == (
        "declined",
        "insufficient_funds",
        "later",
    )
    assert second["outcome"] == "succeeded"
    assert [e["what"] for e in view["timeline"]].count("attempt_planned") == 2

    # Record back: refused twice (500), accepted on the third try, each on a durable timer.
    deadline = time.monotonic() + 30
    while len(tries := httpx.get(f"{billing_receiver.url}/received").json()) < 3:
        assert time.monotonic() < deadline, tries
        time.sleep(0.25)
    assert [t["response"]["status"] for t in tries] == [500, 500, 200]
    body = tries[-1]["json"]
    assert body == {
        "merchant_reference_id": "test_ffhgfewf3476f5",
        "amount": 2250,
        "currency": "USD",
        "payment_method_type": "card",
        "attempt_status": "charged",
        "connector_transaction_id": charges[1]["payment_intent"],
    }
    time.sleep(1.0)
    assert len(httpx.get(f"{billing_receiver.url}/received").json()) == 3
    assert webhooks_for(scenario, payment_id) == ["payment_succeeded"]
    # While a record-back try was on a timer the workflow showed Hyperswitch's PSYNC task pending (a unit test
    # pins that moment: tests/unit/scheduler/test_scheduler_http.py); accepted, it is finished.
    done = tracker(scenario, setup, payment_id).json()
    assert (done["status"], done["business_status"]) == ("finish", "COMPLETED_EXECUTE_TASK")
    assert done["id"] == f"PASSIVE_RECOVERY_WORKFLOW_EXECUTE_WORKFLOW_{payment_id}"


def test_hard_decline_on_the_only_token_sends_payment_failed_and_charges_no_more(stack: Stack) -> None:
    scenario = seed_scenario(stack)
    setup = setup_merchant(scenario, QUICK_LADDER)
    customer, pm = scenario.customer_with_card("pm_card_chargeDeclinedLostCard")
    payment_id = scenario.request_recovery(setup, customer, pm)["id"]

    failed = scenario.wait_for_webhook(payment_id, event_type="payment_failed", timeout=60)
    assert failed.body["content"]["object"]["status"] == "failed"
    view = wait_for_tracker(scenario, setup, payment_id, "failed")
    assert view["business_status"] == "FAILED_DUE_TO_HARD_DECLINE_ERROR"
    assert view["attempts"][0]["decline_class"] == "never"
    time.sleep(1.5)  # many ladder steps at this time scale
    assert len(scenario.charges(customer)) == 1
    assert webhooks_for(scenario, payment_id) == ["payment_failed"]


def test_a_second_saved_token_is_used_once_the_first_is_hard_declined(stack: Stack) -> None:
    scenario = seed_scenario(stack)
    setup = setup_merchant(scenario, SLOW_START_LADDER)
    customer, lost = scenario.customer_with_card("pm_card_chargeDeclinedLostCard")
    good = attach_card(stack, scenario, customer, "pm_card_visa")
    payment_id = scenario.request_recovery(setup, customer, lost)["id"]
    # The same invoice again from the billing system, with the customer's other saved card.
    again = scenario.request_recovery(
        setup,
        customer,
        good,
        connector_transaction_id="1831985",
    )
    assert again["id"] == payment_id

    scenario.wait_for_webhook(payment_id, timeout=60)
    charges = scenario.charges(customer)
    assert [(c["status"], c["payment_method"]) for c in charges] == [("failed", lost), ("succeeded", good)]
    view = wait_for_tracker(scenario, setup, payment_id, "succeeded")
    assert [t["hard_declined"] for t in view["tokens"]] == [True, False]
    assert view["billing_retry_count"] == 2
    assert webhooks_for(scenario, payment_id) == ["payment_succeeded"]


def test_a_card_the_customer_removed_is_left_for_the_next_one_without_waiting_out_its_retries(stack: Stack) -> None:
    """The customer detaches the invoice's card at Stripe before the first retry: Stripe refuses it for good (a
    400 naming the payment method), and the recovery moves to the customer's other card at its next step, where a
    connector error would have been retried on the same card."""
    scenario = seed_scenario(stack)
    setup = setup_merchant(scenario, SLOW_START_LADDER)
    customer, removed = scenario.customer_with_card("pm_card_visa")
    kept = attach_card(stack, scenario, customer, "pm_card_mastercard")
    payment_id = scenario.request_recovery(setup, customer, removed)["id"]
    scenario.request_recovery(setup, customer, kept, connector_transaction_id="1831986")
    auth = {"Authorization": f"Bearer {scenario.sandbox_secret_key}"}
    assert httpx.post(f"{stack.stripe_url}/v1/payment_methods/{removed}/detach", headers=auth).status_code == 200

    scenario.wait_for_webhook(payment_id, event_type="payment_succeeded", timeout=60)

    assert [(c["status"], c["payment_method"]) for c in scenario.charges(customer)] == [("succeeded", kept)]
    view = wait_for_tracker(scenario, setup, payment_id, "succeeded")
    refused, charged = view["attempts"]
    assert (refused["token"], refused["outcome"], refused["error_code"], refused["decline_class"]) == (
        removed,
        "error",
        "payment_method_unusable",
        "fix",
    )
    assert (charged["token"], charged["outcome"]) == (kept, "succeeded")


def test_a_card_lost_in_one_recovery_is_not_charged_for_the_merchants_other_invoice(stack: Stack) -> None:
    """Two invoices of one customer on one card: the first recovery's retry meets `lost_card`; the second, accepted
    3.5 s later with its retry planned (business) 4,000 s out, plans again at once and ends without charging it."""
    scenario = seed_scenario(stack)
    setup = setup_merchant(scenario, SLOW_START_LADDER)
    customer, lost = scenario.customer_with_card("pm_card_chargeDeclinedLostCard")
    first = scenario.request_recovery(setup, customer, lost, merchant_reference_id="invoice_lost_a")["id"]
    time.sleep(3.5)
    second = scenario.request_recovery(setup, customer, lost, merchant_reference_id="invoice_lost_b")["id"]

    scenario.wait_for_webhook(first, event_type="payment_failed", timeout=60)
    view = wait_for_tracker(scenario, setup, second, "failed")

    assert view["business_status"] == "FAILED_DUE_TO_HARD_DECLINE_ERROR"
    assert view["attempts"] == []
    assert [(t["hard_declined"], t["hard_declined_in"]) for t in view["tokens"]] == [(True, first)]
    time.sleep(4.5)  # past the second recovery's first planned retry
    assert len(scenario.charges(customer)) == 1  # the first recovery's retry only
    # Never charged by this system: no payment_failed for it (as Hyperswitch), the tracker says why.
    assert webhooks_for(scenario, second) == []


def test_a_card_the_merchant_marks_hard_declined_is_charged_by_none_of_its_recoveries_until_cleared(
    stack: Stack,
) -> None:
    """The merchant's word over the public API (`PUT /v2/recovery/data-backfill/update-token`): a recovery with a
    retry planned 4,000 business seconds out on the card plans again at once and ends without charging it; cleared,
    the merchant's next invoice on the card is charged."""
    recovery = planned_recovery(stack)
    scenario, setup, customer, pm = recovery.scenario, recovery.setup, recovery.customer, recovery.pm
    payment_id = recovery.payment_id
    update = f"{scenario.endpoints.intake_url}/v2/recovery/data-backfill/update-token"
    card = {"connector_customer_id": customer, "payment_processor_token": pm}

    marked = scenario.http.put(
        update, json={**card, "is_hard_decline": True, "error_code": "lost_card"}, headers=setup.headers()
    )

    assert marked.status_code == 200, marked.text
    assert (marked.json()["updated"], marked.json()["recoveries_planned_again"]) == (True, 1)
    view = wait_for_tracker(scenario, setup, payment_id, "failed")
    assert view["business_status"] == "FAILED_DUE_TO_HARD_DECLINE_ERROR"
    assert [(t["hard_declined"], t["hard_declined_by_merchant"]) for t in view["tokens"]] == [(True, True)]
    assert any("marked by the merchant (error_code=lost_card)" in (e.get("reason") or "") for e in view["timeline"])
    status = f"{scenario.endpoints.intake_url}/v2/recovery/data-backfill/token-status"
    read = scenario.http.get(status, params={"payment_processor_token": pm}, headers=setup.headers()).json()
    assert [(d["marked_by_merchant"], d["rule"]) for d in read["hard_declines"]] == [(True, "error_code=lost_card")]
    assert (read["attempts_last_30_days"], read["planned_attempts"]) == (0, 0)  # its slot given back at the re-plan
    # Another merchant's key cannot clear it: its word is on its own cards.
    other = scenario.bootstrap()
    assert (
        scenario.http.put(update, json={**card, "is_hard_decline": False}, headers=other.headers()).json()["updated"]
        is False
    )
    time.sleep(4.5)  # past the recovery's first planned retry
    assert scenario.charges(customer) == []
    assert webhooks_for(scenario, payment_id) == []

    cleared = scenario.http.put(update, json={**card, "is_hard_decline": False}, headers=setup.headers())
    assert (cleared.status_code, cleared.json()["updated"], cleared.json()["hard_declined"]) == (200, True, False)
    read = scenario.http.get(status, params={"payment_processor_token": pm}, headers=setup.headers()).json()
    assert read["hard_declined"] is False and read["hard_declines"] == []
    contradictory = {**card, "is_hard_decline": True, "scheduled_at": "2030-01-01T00:00:00Z"}
    refused = scenario.http.put(update, json=contradictory, headers=setup.headers())
    assert refused.status_code == 422 and "scheduled_at goes with a card that may be charged" in refused.text
    # A "not before" already past holds nothing back (the public door takes Hyperswitch's field;
    # tests/unit/scheduler/test_scheduler_card_schedule.py holds a card back).
    past = scenario.http.put(update, json={**card, "scheduled_at": "2020-01-01T00:00:00Z"}, headers=setup.headers())
    assert (past.status_code, past.json()["updated"]) == (200, False) and "not held back" in past.json()["message"]
    # The merchant's next invoice on the card: charged at its first planned retry (4,000 business seconds).
    next_invoice = scenario.request_recovery(setup, customer, pm, merchant_reference_id="invoice_after_clear")
    scenario.wait_for_webhook(next_invoice["id"], event_type="payment_succeeded", timeout=60)
    assert [c["status"] for c in scenario.charges(customer)] == ["succeeded"]


def test_a_recovery_the_merchant_held_back_is_charged_at_once_when_the_hold_is_lifted(stack: Stack) -> None:
    """The merchant's "not before" over the public API (`scheduled_at`): a recovery with a retry planned 4,000
    business seconds out plans again at the held time (two business days: about three minutes of wall time here);
    lifted (a time past), it plans again at once and is charged, once, well before the held time."""
    recovery = planned_recovery(stack)
    scenario, setup, customer, pm = recovery.scenario, recovery.setup, recovery.customer, recovery.pm
    payment_id = recovery.payment_id
    update = f"{scenario.endpoints.intake_url}/v2/recovery/data-backfill/update-token"
    card = {"connector_customer_id": customer, "payment_processor_token": pm}
    hold = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)

    held = scenario.http.put(update, json={**card, "scheduled_at": hold.isoformat()}, headers=setup.headers())

    assert (held.status_code, held.json()["recoveries_planned_again"]) == (200, 1), held.text
    deadline = time.monotonic() + 30
    while True:
        view = tracker(scenario, setup, payment_id).json()
        reasons = " ".join(e.get("reason") or "" for e in view["timeline"])
        if "as the merchant asked for card" in reasons:
            break
        assert time.monotonic() < deadline, view
        time.sleep(0.25)
    due = datetime.fromisoformat(view["schedule_time_for_payment"].replace("Z", "+00:00"))
    assert due > datetime.now(UTC) + timedelta(seconds=60), view
    time.sleep(4.5)  # past the retry first planned: nothing is charged while the card is held back
    assert scenario.charges(customer) == []

    lifted = scenario.http.put(update, json={**card, "scheduled_at": "2020-01-01T00:00:00Z"}, headers=setup.headers())

    assert (lifted.status_code, lifted.json()["recoveries_planned_again"]) == (200, 1), lifted.text
    assert "no longer held back" in lifted.json()["message"]
    told = scenario.wait_for_webhook(payment_id, event_type="payment_succeeded", timeout=60)
    assert told.signature_verified
    assert datetime.now(UTC) < due
    assert [c["status"] for c in scenario.charges(customer)] == ["succeeded"]
    view = wait_for_tracker(scenario, setup, payment_id, "succeeded")
    reasons = [e.get("reason") for e in view["timeline"]]
    assert f"the merchant's hold on card {pm} until {hold.isoformat()} lifted" in reasons, reasons


def test_a_charge_timeout_is_settled_by_psync_with_one_charge_and_one_webhook(start_stack: Any) -> None:
    stack = start_stack(component_env={"executor": {"CONNECTOR_TIMEOUT_SECONDS": "1"}})
    scenario = seed_scenario(stack)
    setup = setup_merchant(scenario, QUICK_LADDER)
    customer, pm = scenario.customer_with_card("pm_card_visa")
    # The executor gives up on an answer after CONNECTOR_TIMEOUT_SECONDS; the sandbox charges and stalls longer.
    fault(stack, payment_method=pm, mode="timeout_after_charge", seconds=3, times=1)
    payment_id = scenario.request_recovery(setup, customer, pm)["id"]

    scenario.wait_for_webhook(payment_id, timeout=90)
    time.sleep(1.0)
    charges = scenario.charges(customer)
    assert len(charges) == 1 and charges[0]["status"] == "succeeded"
    assert webhooks_for(scenario, payment_id) == ["payment_succeeded"]
    view = wait_for_tracker(scenario, setup, payment_id, "succeeded")
    assert len(view["attempts"]) == 1


@dataclass(frozen=True)
class Planned:
    """A recovery of the seed's merchant on a Visa card, its first retry planned 4000 business seconds out."""

    scenario: SeedScenario
    setup: MerchantSetup
    customer: str
    pm: str
    payment_id: str
    view: dict[str, Any]


def planned_recovery(stack: Stack) -> Planned:
    scenario = seed_scenario(stack)
    setup = setup_merchant(scenario, SLOW_START_LADDER)
    customer, pm = scenario.customer_with_card("pm_card_visa")
    payment_id = scenario.request_recovery(setup, customer, pm)["id"]
    view = wait_for_tracker(scenario, setup, payment_id, "scheduled")
    return Planned(scenario, setup, customer, pm, payment_id, view)


def test_cancel_invoice_stops_pending_retries_tells_the_merchant_and_the_tracker_is_per_merchant(stack: Stack) -> None:
    recovery = planned_recovery(stack)
    scenario, setup, customer, pm, payment_id, planned = (
        recovery.scenario,
        recovery.setup,
        recovery.customer,
        recovery.pm,
        recovery.payment_id,
        recovery.view,
    )
    assert planned["status"] == "pending" and planned["name"] == "EXECUTE_WORKFLOW"
    assert planned["schedule_time_for_payment"] is not None

    cancelled = scenario.request_recovery(setup, customer, pm, action="cancel_invoice")
    assert cancelled["id"] == payment_id and cancelled["intent_status"] == "cancelled"
    view = wait_for_tracker(scenario, setup, payment_id, "cancelled")
    assert view["status"] == "finish" and view["business_status"] == "CANCELLED_BY_BILLING_CONNECTOR"
    # The merchant is told, signed: the payment, cancelled, before any attempt was made.
    told = scenario.wait_for_webhook(payment_id, "payment_cancelled", timeout=60)
    assert told.signature_verified and told.standard_webhooks.get("valid") is True
    assert told.body["content"]["object"]["status"] == "cancelled"
    assert told.body["content"]["object"]["connector_transaction_id"] is None
    time.sleep(5.0)  # past the first planned retry (4000 business seconds = 4 s)
    assert scenario.charges(customer) == []
    assert webhooks_for(scenario, payment_id) == ["payment_cancelled"]

    other = scenario.bootstrap()
    assert tracker(scenario, other, payment_id).status_code == 404


def test_a_cards_imported_retry_history_holds_back_a_planned_retry_within_the_network_budget(stack: Stack) -> None:
    recovery = planned_recovery(stack)
    scenario, setup, customer, pm, payment_id = (
        recovery.scenario,
        recovery.setup,
        recovery.customer,
        recovery.pm,
        recovery.payment_id,
    )
    first_plan = recovery.view["schedule_time_for_payment"]
    assert first_plan is not None

    # The merchant's earlier system retried the card 20 times yesterday (UTC): every network's 30-day budget on
    # the card is used, so the retry planned 4000 business seconds out may not run.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    cell = json.dumps({yesterday: 20}).replace('"', '""')
    uploaded = scenario.http.post(
        f"{scenario.endpoints.intake_url}/v2/recovery/data-backfill",
        files={"file": ("cards.csv", f'customer_id_resp,token,daily_retry_history\n{customer},{pm},"{cell}"\n')},
        headers=setup.headers(),
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["updated_recoveries"] == 1, uploaded.text

    deadline = time.monotonic() + 30
    while (view := tracker(scenario, setup, payment_id).json())["schedule_time_for_payment"] == first_plan:
        assert time.monotonic() < deadline, view
        time.sleep(0.25)
    notes = [e["reason"] for e in view["timeline"] if "network budget" in (e.get("reason") or "")]
    assert notes, view["timeline"]
    later = view["schedule_time_for_payment"]
    if later is not None:  # planned again after the window frees a slot, or ended if that is past its horizon
        freed = datetime.fromisoformat(yesterday).replace(tzinfo=UTC) + timedelta(days=30)
        assert datetime.fromisoformat(later.replace("Z", "+00:00")) >= freed, view
    time.sleep(5.0)  # past the first plan (4000 business seconds = 4 s)
    assert scenario.charges(customer) == []
