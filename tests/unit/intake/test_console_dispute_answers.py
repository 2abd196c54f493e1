"""The Payment page's answers to an open dispute (`POST /console/payments/{id}/disputes/{dispute_id}/evidence` and
`.../accept`): the API's use cases, for a signed-in merchant key with the payments scope, behind the session's CSRF
token, on in-memory repositories with the Stripe sandbox on loopback. The page's forms are driven in a browser
(tests/e2e/test_billing_stripe.py)."""

from __future__ import annotations

import httpx

from recovery_contracts.disputes import DisputeStatus
from recovery_sandbox.serving import BackgroundServer

from . import test_payment_webhooks as webhooks
from .api_calls import mint
from .fakes import ADMIN_KEY, API_KEY, Intake, http_client
from .test_console_routes import session_token, signed_in, signed_in_on_merchant
from .test_dispute_answers import at_stripe, opened

# The payment webhooks' fixtures: intake with the payment account's Stripe key, its client, and Stripe's API.
svc, client, stripe_api = webhooks.svc, webhooks.client, webhooks.stripe_api


async def answer(
    svc: Intake, console: httpx.AsyncClient, path: str, token: str | None = None, **fields: str
) -> httpx.Response:
    token = token if token is not None else session_token(svc, console)
    return await console.post(f"/console{path}", data={"csrf_token": token, **fields})


def status_of(svc: Intake, payment_id: str) -> DisputeStatus:
    return svc.intents.intents[payment_id].disputes[0].status


async def test_a_merchant_submits_evidence_then_accepts_from_the_payment_page(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment_id, dispute_id, dispute = await opened(sandbox, svc, client, stripe_api)
    base = f"/payments/{payment_id}/disputes/{dispute_id}"
    async with signed_in(svc) as console:
        nothing = await answer(svc, console, f"{base}/evidence", product_description="  ")
        submitted = await answer(
            svc, console, f"{base}/evidence", product_description="A yearly plan", customer_name="Jenny Rosen"
        )
        accepted = await answer(svc, console, f"{base}/accept")
        again = await answer(svc, console, f"{base}/accept")
        unknown = await answer(svc, console, f"/payments/{payment_id}/disputes/dsp_unknown/accept")
        other = await answer(svc, console, f"{base}/refund")

    assert nothing.status_code == 400 and "give at least one evidence field" in nothing.text, nothing.text
    assert submitted.status_code == 303
    assert submitted.headers["location"] == f"/console/payments/{payment_id}?done=evidence"
    evidence = at_stripe(stripe_api, dispute["id"])["evidence"]
    assert (evidence["product_description"], evidence["customer_name"]) == ("A yearly plan", "Jenny Rosen")
    assert accepted.status_code == 303 and accepted.headers["location"].endswith("?done=accept")
    assert status_of(svc, payment_id) is DisputeStatus.DISPUTE_LOST
    assert again.status_code == 409 and "an ended dispute takes no answer" in again.text, again.text
    assert unknown.status_code == 404 and f"no dispute dsp_unknown on payment {payment_id}" in unknown.text
    assert other.status_code == 404


async def test_without_the_token_or_the_payments_scope_nothing_is_sent(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment_id, dispute_id, dispute = await opened(sandbox, svc, client, stripe_api)
    path = f"/payments/{payment_id}/disputes/{dispute_id}/accept"
    async with signed_in(svc) as console:
        forged = await answer(svc, console, path, token="forged")
    async with http_client(svc) as api:
        reader = await mint(api, API_KEY, ["read_only"])
    refused = []
    for key in (reader["api_key"], ADMIN_KEY):
        async with signed_in_on_merchant(svc, key) as console:
            refused.append(await answer(svc, console, path))

    assert forged.status_code == 403
    assert [r.status_code for r in refused] == [403, 403]
    assert all("payments scope" in r.text for r in refused)
    assert at_stripe(stripe_api, dispute["id"])["status"] == "needs_response"
    assert status_of(svc, payment_id) is DisputeStatus.DISPUTE_OPENED


async def test_the_evidence_form_uploads_its_files_for_the_dispute_and_names_them_in_the_evidence(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    """Files only (no text) are evidence enough; each is uploaded for the dispute and named in its field. A file
    Stripe would not take stops the form before anything is submitted."""
    payment_id, dispute_id, dispute = await opened(sandbox, svc, client, stripe_api)
    path = f"/console/payments/{payment_id}/disputes/{dispute_id}/evidence"
    pdf = b"%PDF-1.7\n%%EOF\n"
    async with signed_in(svc) as console:
        token = session_token(svc, console)
        wrong = await console.post(
            path,
            data={"csrf_token": token},
            files={
                "receipt": ("receipt.pdf", pdf, "application/pdf"),
                "customer_communication": ("notes.txt", b"shipped", "text/plain"),
            },
        )
        unanswered = at_stripe(stripe_api, dispute["id"])["evidence"]
        sent = await console.post(
            path,
            data={"csrf_token": token},
            files={
                "receipt": ("receipt.pdf", pdf, "application/pdf"),
                "uncategorized_file": ("", b"", "application/octet-stream"),  # a file input left empty
            },
        )

    assert wrong.status_code == 400 and "Stripe takes dispute evidence as PDF, JPEG or PNG" in wrong.text, wrong.text
    # Every file is checked before the first is uploaded: the form is refused naming the one Stripe would not take.
    assert "customer_communication" in wrong.text and unanswered["receipt"] is None
    assert sent.status_code == 303, sent.text
    evidence = at_stripe(stripe_api, dispute["id"])["evidence"]
    assert evidence["receipt"].startswith("file_") and evidence["uncategorized_file"] is None
    assert status_of(svc, payment_id) is DisputeStatus.DISPUTE_CHALLENGED
