"""Files for a dispute's evidence (`POST /v2/payments/{payment_id}/disputes/{dispute_id}/files`, multipart field
`file`), on in-memory repositories with the Stripe sandbox on loopback: a PDF or an image is uploaded to Stripe's
File Upload API (purpose `dispute_evidence`) with the payment account's key and answered with Stripe's file id, which
the evidence names (`receipt`, ...) and Stripe keeps on the dispute; the same file sent again is the same upload;
what Stripe would not take (another type, empty, over 5,000,000 bytes) is refused with the reason before Stripe is
asked, a body past its bound with 413; a dispute that takes no more evidence, another merchant's payment or an
unknown dispute are refused before the body is read; Stripe's refusal is answered with its words, Stripe not
answering with 503. The Payment page's evidence form with files: test_console_dispute_answers.py."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from recovery_contracts.api.disputes import MAX_EVIDENCE_FILE_BYTES
from recovery_sandbox.serving import BackgroundServer

from . import test_payment_webhooks as webhooks
from .fakes import Intake, http_client, intake
from .test_dispute_answers import answers, at_stripe, opened, told
from .test_payment_webhooks import with_webhook_secret

# The payment webhooks' fixtures: intake with the payment account's Stripe key, its client, and Stripe's API.
svc, client, stripe_api = webhooks.svc, webhooks.client, webhooks.stripe_api

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def at_stripe_file(sandbox: BackgroundServer, file_id: str) -> dict[str, Any]:
    """The file as the sandbox keeps it (its File object, the account, the bytes' digest)."""
    found: dict[str, Any] = httpx.get(f"{sandbox.url}/_sandbox/files/{file_id}").json()
    return found


async def test_a_file_uploaded_for_the_dispute_is_named_in_the_evidence_and_kept_on_it_at_stripe(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment_id, dispute_id, dispute = await opened(sandbox, svc, client, stripe_api)
    base = f"/v2/payments/{payment_id}/disputes/{dispute_id}"
    uploaded_before = answers("file", "answered")

    receipt = await client.post(
        f"{base}/files", files={"file": ("receipt.pdf", PDF, "application/pdf")}, headers=svc.headers()
    )
    again = await client.post(
        f"{base}/files", files={"file": ("receipt.pdf", PDF, "application/pdf")}, headers=svc.headers()
    )
    chat = await client.post(f"{base}/files", files={"file": ("chat.png", PNG, "image/png")}, headers=svc.headers())

    assert receipt.status_code == 200, receipt.text
    body = receipt.json()
    assert body["file_id"].startswith("file_")
    assert (body["file_name"], body["file_size"], body["file_type"]) == ("receipt.pdf", len(PDF), "application/pdf")
    # Sent again (a lost answer): the same upload at Stripe, by its idempotency key.
    assert again.status_code == 200 and again.json()["file_id"] == body["file_id"]
    assert chat.status_code == 200 and chat.json()["file_id"] != body["file_id"]
    kept = at_stripe_file(sandbox, body["file_id"])
    assert (kept["file"]["purpose"], kept["file"]["type"], kept["file"]["size"]) == (
        "dispute_evidence",
        "pdf",
        len(PDF),
    )
    assert answers("file", "answered") == uploaded_before + 3
    # Nothing changed on the dispute yet: a file is named in the evidence.
    assert at_stripe(stripe_api, dispute["id"])["status"] == "needs_response"
    assert told(svc) == [("payment.dispute-updated", "dispute_opened")]

    submitted = await client.post(
        f"{base}/evidence",
        json={"receipt": body["file_id"], "customer_communication": chat.json()["file_id"]},
        headers=svc.headers(),
    )

    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["dispute_status"] == "dispute_challenged"
    evidence = at_stripe(stripe_api, dispute["id"])["evidence"]
    assert (evidence["receipt"], evidence["customer_communication"]) == (body["file_id"], chat.json()["file_id"])
    # Challenged: no more evidence, and so no more files for it.
    late = await client.post(
        f"{base}/files", files={"file": ("more.pdf", PDF, "application/pdf")}, headers=svc.headers()
    )
    assert late.status_code == 400 and "evidence was given" in late.text, late.text


async def test_a_file_stripe_would_not_take_or_a_dispute_not_taking_one_is_refused_before_stripe_is_asked(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment_id, dispute_id, dispute = await opened(sandbox, svc, client, stripe_api)
    base = f"/v2/payments/{payment_id}/disputes/{dispute_id}"
    headers = svc.headers()
    sent_before = sum(answers("file", outcome) for outcome in ("answered", "refused", "unavailable", "error"))

    def post(name: str, content: bytes, kind: str, path: str = f"{base}/files") -> Any:
        return client.post(path, files={"file": (name, content, kind)}, headers=headers)

    text = await post("notes.txt", b"we shipped it", "text/plain")
    empty = await post("empty.pdf", b"", "application/pdf")
    too_big = await post("scan.pdf", PDF + bytes(MAX_EVIDENCE_FILE_BYTES + 1 - len(PDF)), "application/pdf")
    past_bound = await post("scan.pdf", bytes(MAX_EVIDENCE_FILE_BYTES + 128 * 1024), "application/pdf")
    no_file = await client.post(f"{base}/files", data={"note": "no file"}, headers=headers)
    unknown = await post("receipt.pdf", PDF, "application/pdf", f"/v2/payments/{payment_id}/disputes/dsp_unknown/files")
    elsewhere = await client.post(
        f"/v2/payments/12345_pay_other/disputes/{dispute_id}/files", content=b"not even a form", headers=headers
    )

    assert text.status_code == 422 and text.json()["error"]["code"] == "IR_06", text.text
    assert "file: type text/plain; Stripe takes dispute evidence as PDF, JPEG or PNG" in text.text
    assert empty.status_code == 422 and "file: empty" in empty.text, empty.text
    assert too_big.status_code == 422 and f"over the {MAX_EVIDENCE_FILE_BYTES} Stripe takes" in too_big.text
    assert past_bound.status_code == 413 and past_bound.json()["error"]["code"] == "RR_02", past_bound.text
    assert no_file.status_code == 400 and "file (a multipart/form-data field)" in no_file.text, no_file.text
    assert unknown.status_code == 404 and f"no dispute dsp_unknown on payment {payment_id}" in unknown.text
    # Another merchant's payment: refused as one that does not exist, whatever the body (it is not read).
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "HE_02", elsewhere.text
    assert sum(answers("file", o) for o in ("answered", "refused", "unavailable", "error")) == sent_before
    assert at_stripe(stripe_api, dispute["id"])["status"] == "needs_response"

    # Stripe's own refusal, in its words: evidence naming a file Stripe does not have (nothing applied).
    refused = await client.post(f"{base}/evidence", json={"receipt": "file_not_at_stripe"}, headers=headers)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "IR_16", refused.text
    assert "Stripe refused: No such file upload: 'file_not_at_stripe'" in refused.text
    assert at_stripe(stripe_api, dispute["id"])["status"] == "needs_response"


async def test_stripes_files_host_not_answering_is_a_503_to_send_again(
    sandbox: BackgroundServer, svc: Intake, client: httpx.AsyncClient, stripe_api: httpx.Client
) -> None:
    payment_id, dispute_id, _ = await opened(sandbox, svc, client, stripe_api)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    silent = with_webhook_secret(
        intake(
            stripe_api_base=sandbox.url,
            stripe_files_base=f"http://127.0.0.1:{port}",
            outbound_allowed_cidrs="127.0.0.0/8",
        )
    )
    silent.intents.intents[payment_id] = svc.intents.intents[payment_id]
    unavailable_before = answers("file", "unavailable")

    async with http_client(silent) as other:
        answer = await other.post(
            f"/v2/payments/{payment_id}/disputes/{dispute_id}/files",
            files={"file": ("receipt.pdf", PDF, "application/pdf")},
            headers=silent.headers(),
        )

    assert answer.status_code == 503 and answer.json()["error"]["code"] == "CE_01", answer.text
    assert answers("file", "unavailable") == unavailable_before + 1
