"""`POST /v2/revenue-recovery/{merchant_reference_id}/cancel` (Hyperswitch v2) and its broker twin
`recovery.cancel-requested`: the invoice's recovery cancelled by its reference alone, with the same effect and the
same fence as a `cancel_invoice` request carrying the invoice."""

from __future__ import annotations

from typing import Any

import httpx
from faststream.rabbit import TestRabbitBroker

from recovery_contracts.api.recovery import RecoveryAction
from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import RecoveryCancelRequested, RecoveryUpdated
from recovery_contracts.payments import IntentStatus
from recovery_runtime.bus import LEASE_MARGIN_SECONDS
from recovery_runtime.testing import publish

from .fakes import MERCHANT, PROFILE, Intake
from .recovery_requests import REFERENCE, recovery_body
from .test_intake_cancel_fence import assert_no_charge_can_follow, charging, fences

RECOVERY = "/v2/payments/recovery"
CANCEL = f"/v2/revenue-recovery/{REFERENCE}/cancel"


async def open_recovery(client: httpx.AsyncClient) -> str:
    created = await client.post(RECOVERY, json=recovery_body())
    assert created.status_code == 200, created.text
    payment_id: str = created.json()["id"]
    return payment_id


def updates(svc: Intake) -> list[RecoveryUpdated]:
    return [e.payload for e in svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)]


async def test_an_open_recovery_is_cancelled_by_its_reference_and_no_charge_can_follow(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_id = await open_recovery(client)

    cancelled = await client.post(CANCEL)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"id": payment_id, "intent_status": "cancelled", "merchant_reference_id": REFERENCE}
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.status is IntentStatus.CANCELLED
    assert [r.action for r in intent.requests] == [RecoveryAction.CANCEL_INVOICE]
    # The scheduler and the executor hear of it as of a `cancel_invoice` request.
    [update] = updates(svc)
    assert (update.action, update.intent_status, update.version) == ("cancel_invoice", IntentStatus.CANCELLED, 1)
    assert update.by_merchant  # the scheduler's end says the merchant cancelled, not its billing system
    assert update.payment.payment_id == payment_id
    await assert_no_charge_can_follow(svc, payment_id, f"{payment_id}:1")


async def test_a_cancel_sent_again_answers_the_same_and_tells_nobody_twice(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    await open_recovery(client)
    first = await client.post(CANCEL)

    again = await client.post(CANCEL)

    assert again.status_code == 200 and again.json() == first.json()
    assert len(updates(svc)) == 1


async def test_an_invoice_the_merchant_does_not_have_is_a_payment_not_found_and_nothing_is_stored(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    await open_recovery(client)

    unknown = await client.post("/v2/revenue-recovery/invoice_never_sent/cancel")

    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"]["code"] == "HE_02"
    assert updates(svc) == []
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.status is IntentStatus.FAILED and intent.requests == ()


async def test_another_profiles_invoice_reads_as_one_that_does_not_exist(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    svc.profiles.profiles["pro_2"] = {**svc.profiles.profiles[PROFILE], "_id": "pro_2"}
    payment_id = await open_recovery(client)

    other = await client.post(CANCEL, headers={"x-profile-id": "pro_2"})
    unknown = await client.post("/v2/revenue-recovery/invoice_never_sent/cancel", headers={"x-profile-id": "pro_2"})

    assert other.status_code == 404 and other.json() == unknown.json()
    assert svc.intents.intents[payment_id].status is IntentStatus.FAILED
    assert fences(svc).fences.get(payment_id) is None or fences(svc).fences[payment_id].cancelled_at is None


async def test_while_an_attempt_is_charged_the_cancel_is_refused_for_now_then_accepted(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_id = await open_recovery(client)
    await charging(svc, payment_id)

    refused = await client.post(CANCEL)

    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "IR_14" and "send the request again" in error["reason"]
    assert updates(svc) == [] and svc.intents.intents[payment_id].requests == ()
    await fences(svc).release(payment_id, f"{payment_id}:1", paid=False)

    accepted = await client.post(CANCEL)

    assert accepted.status_code == 200 and accepted.json()["intent_status"] == "cancelled"


async def test_a_paid_invoice_is_not_reopened_nor_cancelled_it_answers_as_paid(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_id = await open_recovery(client)
    await svc.intents.record_outcome(payment_id, IntentStatus.SUCCEEDED, {"status": "succeeded"}, svc.clock.now(), "m")

    answer = await client.post(CANCEL)

    assert answer.status_code == 200 and answer.json()["intent_status"] == "succeeded"
    assert updates(svc) == []
    assert svc.intents.intents[payment_id].status is IntentStatus.SUCCEEDED


async def test_without_a_profile_or_with_a_reference_too_long_the_request_says_what_is_wrong(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    await open_recovery(client)

    no_profile = await client.post(CANCEL, headers={"x-profile-id": ""})
    too_long = await client.post(f"/v2/revenue-recovery/{'x' * 256}/cancel")

    assert no_profile.status_code == 400, no_profile.text
    assert "x-profile-id" in no_profile.json()["error"]["message"]
    assert too_long.status_code == 400, too_long.text
    assert "`path.merchant_reference_id`: String should have at most 255" in too_long.json()["error"]["message"]
    intent = svc.intents.of_invoice(MERCHANT, REFERENCE)
    assert intent is not None and intent.status is IntentStatus.FAILED


# --- the same from another service: `recovery.cancel-requested` ------------------------------------------------

CANCEL_QUEUE = "intake.recovery-cancel-requested"


def cancel_requested(
    reference: str = REFERENCE, *, merchant_id: str | None = MERCHANT, profile_id: str | None = PROFILE
) -> Envelope[RecoveryCancelRequested]:
    return envelope_for(
        MessageType.RECOVERY_CANCEL_REQUESTED,
        RecoveryCancelRequested(merchant_reference_id=reference),
        correlation_id=reference,
        merchant_id=merchant_id,
        profile_id=profile_id,
    )


async def test_a_cancel_message_cancels_the_invoice_once_however_often_it_comes(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_id = await open_recovery(client)
    message = cancel_requested()
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, CANCEL_QUEUE, message)
        await publish(broker, CANCEL_QUEUE, message)

    intent = svc.intents.intents[payment_id]
    assert intent.status is IntentStatus.CANCELLED and len(intent.requests) == 1
    [update] = svc.publisher.envelopes(MessageType.RECOVERY_UPDATED)
    assert update.payload.action == "cancel_invoice" and update.causation_id == message.message_id
    assert svc.publisher.dead_letters == []
    await assert_no_charge_can_follow(svc, payment_id, f"{payment_id}:1")


async def test_a_cancel_message_for_another_profiles_invoice_or_without_its_owner_is_dead_lettered_with_the_reason(
    svc: Intake, client: httpx.AsyncClient
) -> None:
    payment_id = await open_recovery(client)
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, CANCEL_QUEUE, cancel_requested(profile_id="pro_2"))
        await publish(broker, CANCEL_QUEUE, cancel_requested(merchant_id=None))

    reasons = [letter.reason for letter in svc.publisher.dead_letters]
    assert len(reasons) == 2, reasons
    assert f"'{REFERENCE}'" in reasons[0] and "Payment does not exist" in reasons[0]
    assert "needs merchant_id and profile_id" in reasons[1]
    assert svc.intents.intents[payment_id].status is IntentStatus.FAILED and updates(svc) == []


async def test_a_cancel_message_that_overtook_its_invoice_waits_for_it_then_applies(
    svc: Intake, client: httpx.AsyncClient, requeues: Any
) -> None:
    message = cancel_requested()
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, CANCEL_QUEUE, message)  # its recovery.requested is still on its way
        assert requeues == [0] and svc.publisher.dead_letters == []
        payment_id = await open_recovery(client)
        await publish(broker, CANCEL_QUEUE, message)  # the redelivery

    assert svc.intents.intents[payment_id].status is IntentStatus.CANCELLED
    assert [u.by_merchant for u in updates(svc)] == [True]


async def test_a_cancel_message_while_an_attempt_is_charged_waits_for_it(
    svc: Intake, client: httpx.AsyncClient, requeues: Any
) -> None:
    payment_id = await open_recovery(client)
    await charging(svc, payment_id)
    async with TestRabbitBroker(svc.service.broker) as broker:
        await publish(broker, CANCEL_QUEUE, cancel_requested())

    assert requeues == [0] and requeues.waits == [60 + LEASE_MARGIN_SECONDS]
    assert svc.publisher.dead_letters == [] and svc.intents.intents[payment_id].status is IntentStatus.FAILED
