"""The cancel side of the payment fence: intake accepts a cancel only once no charge of the payment can follow
it; while an attempt is being charged (or has just succeeded) the cancel is refused for now, nothing stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from faststream.rabbit import TestRabbitBroker

from recovery_contracts.envelope import MessageType
from recovery_contracts.payments import IntentStatus
from recovery_runtime.bus import LEASE_MARGIN_SECONDS
from recovery_runtime.payment_fence import FenceVerdict
from recovery_runtime.testing import InMemoryPaymentFences, consumed, publish

from .fakes import BILLING_ACCOUNT, MERCHANT, Intake
from .recovery_requests import REFERENCE, recovery_body, requested

RECOVERY = "/v2/payments/recovery"
CANCEL = recovery_body(action="cancel_invoice")


def fences(svc: Intake) -> InMemoryPaymentFences:
    assert isinstance(svc.adapters.payment_fences, InMemoryPaymentFences)
    return svc.adapters.payment_fences


async def charging(svc: Intake, payment_id: str) -> None:
    """The executor holds the payment's charge lease for its first attempt: the connector call is in flight."""
    now = svc.clock.now()
    lease = await fences(svc).hold_for_charge(payment_id, f"{payment_id}:1", now, now + timedelta(seconds=60))
    assert lease is FenceVerdict.GRANTED


async def assert_no_charge_can_follow(svc: Intake, payment_id: str, attempt_id: str) -> None:
    """The cancel left its tombstone on the payment's fence now: the attempt's charge lease is refused."""
    now = svc.clock.now()
    assert fences(svc).fences[payment_id].cancelled_at == now
    lease = await fences(svc).hold_for_charge(payment_id, attempt_id, now, now + timedelta(minutes=1))
    assert lease is FenceVerdict.CANCELLED


async def being_charged(svc: Intake, client: httpx.AsyncClient) -> str:
    """A new recovery whose first attempt is being charged: its payment id."""
    payment_id: str = (await client.post(RECOVERY, json=recovery_body())).json()["id"]
    await charging(svc, payment_id)
    return payment_id


async def test_a_cancel_while_an_attempt_is_charged_is_refused_for_now_and_nothing_is_stored(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_id = await being_charged(svc, client)

    refused = await client.post(RECOVERY, json=CANCEL)

    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request", "IR_14")
    assert error["message"] == (
        "This Payment could not be cancelled because it has a status of processing. The expected state is failed"
    )
    assert "being charged" in error["reason"] and "send the request again" in error["reason"]
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.status is IntentStatus.FAILED and intent.requests == ()
    assert svc.publisher.envelopes(MessageType.RECOVERY_UPDATED) == []
    assert fences(svc).fences[payment_id].cancelled_at is None  # the charge may go on


async def test_once_the_attempt_failed_the_cancel_is_accepted_and_fences_off_every_later_charge(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_id = await being_charged(svc, client)
    assert (await client.post(RECOVERY, json=CANCEL)).status_code == 409
    await fences(svc).release(payment_id, f"{payment_id}:1", paid=False)  # declined

    accepted = await client.post(RECOVERY, json=CANCEL)

    assert accepted.status_code == 200 and accepted.json()["intent_status"] == "cancelled"
    await assert_no_charge_can_follow(svc, payment_id, f"{payment_id}:2")
    [update] = svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)
    assert not update.payload.by_merchant  # the billing system's cancel_invoice


async def test_a_payment_elsewhere_is_fenced_as_a_cancel_is_so_the_paid_invoice_is_not_charged_again(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    """The billing system reports the invoice paid outside (`success_payment_external`): refused for now while an
    attempt is being charged (both could land), and once accepted no attempt's charge lease is granted any more, so
    that an attempt whose timer fires before the executor heard of the payment cannot charge the customer twice."""
    paid_elsewhere = recovery_body(action="success_payment_external")
    payment_id = await being_charged(svc, client)

    refused = await client.post(RECOVERY, json=paid_elsewhere)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["message"] == (
        "This Payment could not be marked paid because it has a status of processing. The expected state is failed"
    )
    assert svc.intents.of_invoice(MERCHANT, REFERENCE).status is IntentStatus.FAILED  # type: ignore[union-attr]
    await fences(svc).release(payment_id, f"{payment_id}:1", paid=False)  # declined

    accepted = await client.post(RECOVERY, json=paid_elsewhere)

    assert accepted.status_code == 200 and accepted.json()["intent_status"] == "succeeded"
    await assert_no_charge_can_follow(svc, payment_id, f"{payment_id}:2")


async def test_a_cancel_after_a_success_intake_has_not_heard_of_is_refused_until_it_has(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_id = await being_charged(svc, client)
    await fences(svc).release(payment_id, f"{payment_id}:1", paid=True)

    refused = await client.post(RECOVERY, json=CANCEL)

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert "status of succeeded" in error["message"] and "just succeeded" in error["reason"]


async def test_a_lease_left_by_a_killed_executor_blocks_a_cancel_only_until_it_expires(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    await being_charged(svc, client)
    svc.clock.advance(timedelta(seconds=61))

    accepted = await client.post(RECOVERY, json=CANCEL)

    assert accepted.status_code == 200 and accepted.json()["intent_status"] == "cancelled"


async def test_a_cancel_message_while_an_attempt_is_charged_waits_for_it_not_dead_lettered_nor_failed(
    svc: Intake, requeues: Any
) -> None:
    """Handed back as a wait (`RetryLater`: logged `message.retry_later`, counted `retry_later`), not as a failure,
    whose pause is cut short at the end of the lease the fence names (60 s here, plus the clocks' margin)."""
    queue = "intake.recovery-requested"
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, queue, requested())
        intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
        assert intent is not None
        await charging(svc, intent.payment_id)
        failed, waited = consumed(queue, "failed"), consumed(queue, "retry_later")
        await publish(broker, queue, requested(CANCEL))

    assert requeues == [0] and svc.publisher.dead_letters == []
    assert requeues.waits == [60 + LEASE_MARGIN_SECONDS]
    assert consumed(queue, "retry_later") == waited + 1 and consumed(queue, "failed") == failed
    after = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert after is not None and after.status is IntentStatus.FAILED


async def test_a_cancel_or_payment_elsewhere_of_a_known_invoice_is_taken_though_its_billing_account_was_disabled(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    """Closing an invoice needs only its reference: the accounts the request names are not looked at again, so a
    billing account disabled since (or a request naming another one) cannot keep a cancel out while the payment
    account goes on charging."""
    for reference, action, status in (
        ("inv_cancelled", "cancel_invoice", "cancelled"),
        ("inv_paid_elsewhere", "success_payment_external", "succeeded"),
    ):
        body = recovery_body(merchant_reference_id=reference)
        payment_id = (await client.post(RECOVERY, json=body)).json()["id"]
        svc.connector_accounts.accounts[BILLING_ACCOUNT]["disabled"] = True

        closed = await client.post(RECOVERY, json={**body, "action": action})

        assert closed.status_code == 200 and closed.json()["intent_status"] == status, closed.text
        await assert_no_charge_can_follow(svc, payment_id, f"{payment_id}:1")
        svc.connector_accounts.accounts[BILLING_ACCOUNT]["disabled"] = False
    # A new invoice is still checked in full: its first request names accounts that must be usable.
    svc.connector_accounts.accounts[BILLING_ACCOUNT]["disabled"] = True
    refused = await client.post(RECOVERY, json=recovery_body(merchant_reference_id="inv_new", action="cancel_invoice"))
    assert refused.status_code == 400, refused.text
