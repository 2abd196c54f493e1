"""The Stripe sandbox's File Upload API over real HTTP: dispute evidence uploaded as multipart (a PDF, a PNG), read
back by the account that uploaded it and by no other, Stripe's refusals of what dispute evidence may not be, and
the files kept across a restart without their bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from recovery_sandbox import stripe
from recovery_sandbox.serving import BackgroundServer
from recovery_sandbox.stripe.state import STATE_FILE, account_of

pytestmark = pytest.mark.integration

OTHER_KEY = "sk_test_sandbox_tests_0002"
# Enough of each format to look the part; the sandbox goes by the part's declared Content-Type.
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)


def upload(api: httpx.Client, name: str, content: bytes, content_type: str, **data: str) -> httpx.Response:
    return api.post(
        "/v1/files", files={"file": (name, content, content_type)}, data={"purpose": "dispute_evidence"} | data
    )


def test_a_pdf_and_a_png_are_uploaded_as_dispute_evidence_and_read_back_by_their_account_only(
    stripe_server: BackgroundServer, stripe_api: httpx.Client, api_key: str
) -> None:
    pdf = upload(stripe_api, "receipt.pdf", PDF, "application/pdf")
    png = upload(stripe_api, "signature.png", PNG, "image/png")
    read = stripe_api.get(f"/v1/files/{pdf.json()['id']}")
    kept = httpx.get(f"{stripe_server.url}/_sandbox/files/{png.json()['id']}").json()
    stranger = httpx.get(
        f"{stripe_server.url}/v1/files/{pdf.json()['id']}", headers={"Authorization": f"Bearer {OTHER_KEY}"}
    )
    unauthenticated = httpx.get(f"{stripe_server.url}/v1/files/{pdf.json()['id']}")
    unknown = stripe_api.get("/v1/files/file_unknown")

    assert pdf.status_code == png.status_code == 200
    file = pdf.json()
    assert file["id"].startswith("file_") and isinstance(file["created"], int)
    expected = {
        "object": "file",
        "expires_at": None,
        "filename": "receipt.pdf",
        "purpose": "dispute_evidence",
        "size": len(PDF),
        "title": None,
        "type": "pdf",
        "url": None,
    }
    assert {name: file[name] for name in expected} == expected
    assert file["links"] == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": f"/v1/file_links?file={file['id']}",
    }
    assert (png.json()["type"], png.json()["size"], png.json()["filename"]) == ("png", len(PNG), "signature.png")
    assert read.status_code == 200 and read.json() == file
    assert kept == {"file": png.json(), "account": account_of(api_key), "sha256": hashlib.sha256(PNG).hexdigest()}
    # Another account's file is no file at all to it, as Stripe answers.
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json()["error"] == {
        "code": "resource_missing",
        "doc_url": "https://docs.stripe.com/error-codes/resource-missing",
        "message": f"No such file upload: '{file['id']}'",
        "param": "file",
        "type": "invalid_request_error",
    }
    assert unknown.json()["error"]["message"] == "No such file upload: 'file_unknown'"
    assert unauthenticated.status_code == 401


def _error(response: httpx.Response) -> tuple[int, str | None, str | None, str]:
    error: dict[str, Any] = response.json()["error"]
    return response.status_code, error.get("code"), error.get("param"), error["message"]


def test_what_dispute_evidence_may_not_be_is_refused_as_stripe_refuses_it(
    stripe_server: BackgroundServer, stripe_api: httpx.Client
) -> None:
    refused = {
        "no file": stripe_api.post("/v1/files", data={"purpose": "dispute_evidence"}, files={"x": ("x", b"")}),
        "no purpose": stripe_api.post("/v1/files", files={"file": ("receipt.pdf", PDF, "application/pdf")}),
        "another purpose": upload(stripe_api, "logo.png", PNG, "image/png", purpose="business_logo"),
        "a gif": upload(stripe_api, "receipt.gif", b"GIF89a" + bytes(10), "image/gif"),
        "too big": upload(stripe_api, "scan.pdf", PDF + bytes(5_000_001 - len(PDF)), "application/pdf"),
        "empty": upload(stripe_api, "receipt.pdf", b"", "application/pdf"),
        "form-encoded": stripe_api.post("/v1/files", data={"purpose": "dispute_evidence", "file": "receipt"}),
    }
    at_the_limit = upload(stripe_api, "scan.pdf", PDF + bytes(5_000_000 - len(PDF)), "application/pdf")

    assert {case: _error(response) for case, response in refused.items()} == {
        "no file": (400, "parameter_missing", "file", "Missing required param: file."),
        "no purpose": (400, "parameter_missing", "purpose", "Missing required param: purpose."),
        "another purpose": (
            400,
            None,
            "purpose",
            "Invalid purpose: business_logo. The sandbox supports only dispute_evidence.",
        ),
        "a gif": (
            400,
            None,
            "file",
            "Files with purpose dispute_evidence must be one of these types: application/pdf, image/jpeg, image/png "
            "(this one is image/gif).",
        ),
        "too big": (
            400,
            None,
            "file",
            "Files with purpose dispute_evidence can be at most 5000000 bytes (this one is 5000001).",
        ),
        "empty": (400, None, "file", "The file is empty."),
        "form-encoded": (
            400,
            None,
            "file",
            "Invalid file: send the file's bytes as a multipart/form-data part with a filename.",
        ),
    }
    assert at_the_limit.status_code == 200 and at_the_limit.json()["size"] == 5_000_000
    assert (
        httpx.post(stripe_server.url + "/v1/files", files={"file": ("a.pdf", PDF, "application/pdf")}).status_code
        == 401
    )


def test_an_upload_sent_again_with_its_idempotency_key_answers_the_same_file(stripe_api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "upload-receipt-1"}
    part = {"file": ("receipt.pdf", PDF, "application/pdf")}
    first = stripe_api.post("/v1/files", files=part, data={"purpose": "dispute_evidence"}, headers=headers)
    again = stripe_api.post("/v1/files", files=part, data={"purpose": "dispute_evidence"}, headers=headers)
    other = {"file": ("receipt.pdf", PDF + b"%", "application/pdf")}
    reused = stripe_api.post("/v1/files", files=other, data={"purpose": "dispute_evidence"}, headers=headers)

    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert reused.status_code == 400 and reused.json()["error"]["type"] == "idempotency_error"


def test_a_state_dir_keeps_files_across_a_restart_but_never_their_bytes(tmp_path: Path, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    marker = b"%PDF-1.4\n(only-in-the-upload)\n%%EOF\n"
    with BackgroundServer(stripe.create_app(tmp_path)) as before:
        part = {"file": ("receipt.pdf", marker, "application/pdf")}
        file = httpx.post(
            before.url + "/v1/files", files=part, data={"purpose": "dispute_evidence"}, headers=headers
        ).json()

    with BackgroundServer(stripe.create_app(tmp_path)) as after:
        kept = httpx.get(after.url + f"/v1/files/{file['id']}", headers=headers)

    assert kept.json() == file
    state = (tmp_path / STATE_FILE).read_text()
    assert file["id"] in state and hashlib.sha256(marker).hexdigest() in state
    assert "only-in-the-upload" not in state
