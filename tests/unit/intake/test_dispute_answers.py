"""The merchant's answer to a dispute on a recovered payment (`POST /v2/payments/{payment_id}/disputes/{dispute_id}/
evidence` and `.../accept`), on in-memory repositories with the Stripe sandbox on loopback: the evidence reaches
Stripe and the dispute is challenged, accepting loses it, each applied on the intent at once and told once (Stripe's
own event afterwards changes nothing); an ended dispute, a second submission, another payment's or an unknown
dispute, a request with no evidence, a file field naming no uploaded file's id, or one Stripe has no field for are
refused with the reason and nothing sent; Stripe's refusal is answered with its words, Stripe not answering with
503. Files for the evidence: test_dispute_files.py."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from recovery_contracts.disputes import DisputeStatus
from recovery_contracts.envelope import MessageType
from recovery_intake import metrics
from recovery_sandbox.serving import BackgroundServer

from . import test_payment_webhooks as webhooks
from .fakes import Intake, http_client, intake
from .test_payment_webhooks import deliver, recovered, sandbox_event, with_webhook_secret

# The payment webhooks' fixtures: intake with the payment account's Stripe key, its client, and Stripe's API.
svc, client, stripe_api = webhooks.svc, webhooks.client, webhooks.stripe_api


def answers(action: str, outcome: str) -> float:
    value: float = metrics.DISPUTE_ANSWERS.labels(action, outcome)._value.get()
    return value


def at_stripe(api: httpx.Client, dispute_id: str, close: bool = False) -> dict[str, Any]:
    """The dispute as Stripe has it (closed by the merchant at Stripe first, with `close`)."""
    if close:
        api.post(f"/v1/disputes/{dispute_id}/close").raise_for_status()
    found: dict[str, Any] = api.get(f"/v1/disputes/{dispute_id}").json()
    return found


def told(svc: Intake) -> list[tuple[str, str]]:
    """The dispute messages intake emitted, in publishing order: (type, status)."""
    kinds = (MessageType.PAYMENT_DISPUTE_UPDATED, MessageType.PAYMENT_DISPUTE_LOST)
    return [
        (m.message_type.value, json.loads(m.body)["payload"]["dispute"]["dispute_status"])
        for m in svc.publisher.published
        if m.message_type in kinds
    ]


async def opened(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, api: httpx.Client
) -> tuple[str, str, dict[str, Any]]:
    """A recovered payment with a dispute opened at Stripe and told to intake: its payment id, our dispute id and
    Stripe's dispute."""
    payment, payment_intent = recovered(svc, api)
    dispute = httpx.post(f"{sandbox.url}/_sandbox/disputes", data={"payment_intent": payment_intent["id"]}).json()
    delivered = await deliver(svc, client, sandbox_event(sandbox, "charge.dispute.created", dispute["id"]))
    assert delivered.json()["outcome"] == "applied", delivered.text
    (kept,) = svc.intents.intents[payment.payment_id].disputes
    return payment.payment_id, kept.dispute_id, dispute


async def test_evidence_challenges_the_dispute_at_stripe_and_accepting_it_then_loses_it_each_told_once(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment_id, dispute_id, dispute = await opened(sandbox, svc, client, stripe_api)
    base = f"/v2/payments/{payment_id}/disputes/{dispute_id}"
    answered_before = answers("evidence", "answered")

    submitted = await client.post(
        f"{base}/evidence",
        json={"product_description": "A monthly plan, used all month", "uncategorized_text": "Logins attached"},
        headers=svc.headers(),
    )

    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert (body["dispute_id"], body["payment_id"], body["connector_dispute_id"]) == (
        dispute_id,
        payment_id,
        dispute["id"],
    )
    assert (body["dispute_stage"], body["dispute_status"], body["connector_status"], body["updated"]) == (
        "dispute",
        "dispute_challenged",
        "under_review",
        True,
    )
    stripes = at_stripe(stripe_api, dispute["id"])
    assert stripes["status"] == "under_review"
    assert stripes["evidence"]["product_description"] == "A monthly plan, used all month"
    assert answers("evidence", "answered") == answered_before + 1
    assert told(svc) == [
        ("payment.dispute-updated", "dispute_opened"),
        ("payment.dispute-updated", "dispute_challenged"),
    ]
    # Stripe's own event of the submission, delivered afterwards, changes nothing more.
    late = await deliver(svc, client, sandbox_event(sandbox, "charge.dispute.updated", dispute["id"]))
    assert late.json()["outcome"] == "duplicate"
    # A second submission is refused here, before Stripe is asked.
    again = await client.post(f"{base}/evidence", json={"uncategorized_text": "More"}, headers=svc.headers())
    assert again.status_code == 400 and again.json()["error"]["code"] == "IR_16", again.text
    assert "dispute_challenged: evidence was given" in again.json()["error"]["message"]

    accepted = await client.post(f"{base}/accept", headers=svc.headers())

    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["dispute_status"], accepted.json()["connector_status"]) == ("dispute_lost", "lost")
    assert at_stripe(stripe_api, dispute["id"])["status"] == "lost"
    assert told(svc)[-1] == ("payment.dispute-lost", "dispute_lost")
    assert svc.intents.intents[payment_id].disputes[0].status is DisputeStatus.DISPUTE_LOST
    # Ended: no answer any more.
    ended = await client.post(f"{base}/accept", headers=svc.headers())
    assert ended.status_code == 400 and "dispute_lost: an ended dispute takes no answer" in ended.text


async def test_answers_that_cannot_apply_are_refused_with_the_reason_and_nothing_is_sent_to_stripe(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment_id, dispute_id, dispute = await opened(sandbox, svc, client, stripe_api)
    base = f"/v2/payments/{payment_id}/disputes/{dispute_id}"
    headers = svc.headers()

    nothing = await client.post(f"{base}/evidence", json={}, headers=headers)
    not_a_file = await client.post(f"{base}/evidence", json={"receipt": "receipt.pdf"}, headers=headers)
    no_such_field = await client.post(
        f"{base}/evidence", json={"recurring_transaction_agreement": "file_123"}, headers=headers
    )
    empty = await client.post(f"{base}/evidence", json={"product_description": ""}, headers=headers)
    unknown = await client.post(f"/v2/payments/{payment_id}/disputes/dsp_unknown/accept", headers=headers)
    elsewhere = await client.post(f"/v2/payments/12345_pay_other/disputes/{dispute_id}/accept", headers=headers)
    read_only = await client.post(f"{base}/accept", headers={**headers, "api-key": "snd_wrong"})

    assert nothing.status_code == 400 and "give at least one evidence field" in nothing.text, nothing.text
    assert not_a_file.status_code == 400 and "receipt" in not_a_file.text, not_a_file.text
    # Hyperswitch's file fields Stripe has no field for are unknown here.
    assert no_such_field.status_code == 400 and "recurring_transaction_agreement" in no_such_field.text
    assert empty.status_code == 400 and "product_description" in empty.text, empty.text
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "IR_37", unknown.text
    assert f"no dispute dsp_unknown on payment {payment_id}" in unknown.text
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "HE_02", elsewhere.text
    assert read_only.status_code == 401, read_only.text
    stripes = at_stripe(stripe_api, dispute["id"])
    assert (stripes["status"], stripes["evidence_details"]["submission_count"]) == ("needs_response", 0)
    assert told(svc) == [("payment.dispute-updated", "dispute_opened")]


async def test_stripes_refusal_is_answered_with_its_words_and_stripe_not_answering_with_503(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment_id, dispute_id, dispute = await opened(sandbox, svc, client, stripe_api)
    base = f"/v2/payments/{payment_id}/disputes/{dispute_id}"
    # Accepted at Stripe's dashboard meanwhile; Stripe's event has not reached intake yet.
    assert at_stripe(stripe_api, dispute["id"], close=True)["status"] == "lost"
    refused_before = answers("evidence", "refused")

    refused = await client.post(f"{base}/evidence", json={"uncategorized_text": "Late"}, headers=svc.headers())

    assert refused.status_code == 400 and refused.json()["error"]["code"] == "IR_16", refused.text
    assert "Stripe refused: This dispute cannot be updated: it is lost." in refused.json()["error"]["message"]
    assert answers("evidence", "refused") == refused_before + 1
    assert told(svc) == [("payment.dispute-updated", "dispute_opened")]

    # A Stripe that does not answer (nothing listens on the port): 503 CE_01, nothing applied.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    silent = with_webhook_secret(
        intake(stripe_api_base=f"http://127.0.0.1:{port}", outbound_allowed_cidrs="127.0.0.0/8")
    )
    silent.intents.intents[payment_id] = svc.intents.intents[payment_id]
    silent.intents.applied[payment_id] = []
    async with http_client(silent) as other:
        unavailable = await other.post(f"{base}/accept", headers=silent.headers())
    assert unavailable.status_code == 503 and unavailable.json()["error"]["code"] == "CE_01", unavailable.text
    assert silent.intents.intents[payment_id].disputes[0].status is DisputeStatus.DISPUTE_OPENED
    assert json.loads(unavailable.text)["error"]["message"].startswith("The payment connector could not be read")


async def test_stripes_rate_limit_is_answered_503_to_send_again_not_as_a_refusal(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    """A Stripe answering 429 (its rate limit; a real HTTP server on loopback) has not refused the answer: 503 CE_01,
    nothing applied, and the same request may be sent again."""
    payment_id, dispute_id, _ = await opened(sandbox, svc, client, stripe_api)
    limited = FastAPI()

    @limited.post("/v1/disputes/{path:path}")
    async def too_many() -> JSONResponse:
        return JSONResponse({"error": {"type": "invalid_request_error", "message": "Too many requests"}}, 429)

    server = BackgroundServer(limited).start(timeout=30.0)
    try:
        busy = with_webhook_secret(intake(stripe_api_base=server.url, outbound_allowed_cidrs="127.0.0.0/8"))
        busy.intents.intents[payment_id] = svc.intents.intents[payment_id]
        busy.intents.applied[payment_id] = []
        async with http_client(busy) as other:
            answer = await other.post(f"/v2/payments/{payment_id}/disputes/{dispute_id}/accept", headers=busy.headers())
    finally:
        server.stop()

    assert answer.status_code == 503 and answer.json()["error"]["code"] == "CE_01", answer.text
    assert "Stripe answered 429" in answer.json()["error"]["message"] and "Too many requests" in answer.text
    assert busy.intents.intents[payment_id].disputes[0].status is DisputeStatus.DISPUTE_OPENED
