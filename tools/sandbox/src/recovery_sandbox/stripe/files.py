"""Stripe's File Upload API in the sandbox, for dispute evidence: a file uploaded (`POST /v1/files`, multipart, the
sandbox's one base URL standing in for Stripe's `files.stripe.com`) and read (`GET /v1/files/{id}`) by the account
that uploaded it, whose id a dispute's file evidence then names (disputes.py).

Shapes follow Stripe's API reference: https://docs.stripe.com/api/files/object and
https://docs.stripe.com/api/files/create; the rules for `purpose=dispute_evidence` (PDF, JPEG or PNG) follow
https://docs.stripe.com/file-upload, with the size limit this project holds evidence to (MAX_BYTES). The type is
the part's declared `Content-Type`; the bytes are not sniffed. Only the File object, its owner and a SHA-256 of the
bytes are kept, in the account's state (state.py), so a state directory keeps them and never the bytes; the
contents cannot be downloaded (`url` is null).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from recovery_sandbox.stripe.errors import invalid_request, missing_param, no_such
from recovery_sandbox.stripe.params import new_id
from recovery_sandbox.stripe.state import IdempotencySlot
from recovery_sandbox.stripe.store import StripeState
from recovery_sandbox.stripe.webhooks import Authenticate, Response, Run

# The one purpose the sandbox takes: evidence for a dispute.
DISPUTE_EVIDENCE = "dispute_evidence"
# The MIME types a dispute_evidence file may have, and the File object's `type` for each.
EVIDENCE_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}
# Stripe's file-upload guide lists 5 MB for a dispute_evidence file: taken as 5,000,000 bytes (not 5 MiB), so a client
# that fits here fits at Stripe.
MAX_BYTES = 5_000_000
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Upload:
    """What the sandbox keeps of an uploaded file's part: never its bytes."""

    filename: str | None
    content_type: str
    size: int
    sha256: str


def check_upload(purpose: str, upload: Upload) -> None:
    """Stripe's rules for a file of `purpose` (the sandbox takes dispute evidence only)."""
    if purpose != DISPUTE_EVIDENCE:
        raise invalid_request(
            f"Invalid purpose: {purpose}. The sandbox supports only {DISPUTE_EVIDENCE}.", param="purpose"
        )
    if upload.content_type not in EVIDENCE_TYPES:
        raise invalid_request(
            f"Files with purpose {DISPUTE_EVIDENCE} must be one of these types: {', '.join(sorted(EVIDENCE_TYPES))} "
            f"(this one is {upload.content_type or 'of no type'}).",
            param="file",
        )
    if upload.size == 0:
        raise invalid_request("The file is empty.", param="file")
    if upload.size > MAX_BYTES:
        raise invalid_request(
            f"Files with purpose {DISPUTE_EVIDENCE} can be at most {MAX_BYTES} bytes (this one is {upload.size}).",
            param="file",
        )


class FileCabinet:
    """The accounts' uploaded files: each File object with the account that owns it and its bytes' SHA-256."""

    def __init__(self, stripe: StripeState, clock: Callable[[], float] = time.time) -> None:
        self._stripe = stripe
        self._clock = clock

    def upload(self, account: str, purpose: str, upload: Upload, slot: IdempotencySlot | None) -> Response:
        check_upload(purpose, upload)
        file_id = new_id("file_")
        file = {
            "id": file_id,
            "object": "file",
            "created": int(self._clock()),
            "expires_at": None,
            "filename": upload.filename,
            "links": {"object": "list", "data": [], "has_more": False, "url": f"/v1/file_links?file={file_id}"},
            "purpose": purpose,
            "size": upload.size,
            "title": None,
            "type": EVIDENCE_TYPES[upload.content_type],
            "url": None,
        }
        self._stripe.files[file_id] = {"account": account, "sha256": upload.sha256, "file": file}
        return self._stripe._commit(200, file, slot)

    def get(self, account: str, file_id: str, *, param: str = "file", status: int = 404) -> dict[str, Any]:
        """The account's file; Stripe's `No such file upload` when there is none (another account's included)."""
        kept = self._stripe.files.get(file_id)
        if kept is None or kept["account"] != account:
            raise no_such("file upload", file_id, param=param, status=status)
        file: dict[str, Any] = kept["file"]
        return file

    def evidence(self, account: str, file_id: str, *, param: str) -> str:
        """`file_id` when it names one of the account's dispute_evidence files (as a dispute's file evidence must);
        Stripe's 400 otherwise, naming `param`."""
        file = self.get(account, file_id, param=param, status=400)
        if file["purpose"] != DISPUTE_EVIDENCE:
            raise invalid_request(
                f"The file {file_id} has purpose {file['purpose']}: dispute evidence takes {DISPUTE_EVIDENCE} files.",
                param=param,
            )
        return file_id

    def kept(self, file_id: str) -> dict[str, Any]:
        """What the sandbox keeps of a file (for tests): the File object, its owner and its bytes' SHA-256."""
        kept = self._stripe.files.get(file_id)
        if kept is None:
            raise no_such("file upload", file_id, param="file", status=404)
        return kept


async def _read_upload(request: Request) -> tuple[str | None, Upload | None]:
    """The request's `purpose` and `file` parts (None when missing), the file's bytes hashed and counted, never
    kept."""
    try:
        async with request.form() as form:
            purpose, part = form.get("purpose"), form.get("file")
            if not isinstance(part, UploadFile):
                if part is not None:
                    raise invalid_request(
                        "Invalid file: send the file's bytes as a multipart/form-data part with a filename.",
                        param="file",
                    )
                return _text(purpose), None
            digest, size = hashlib.sha256(), 0
            while chunk := await part.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
            content_type = (part.content_type or "").split(";", 1)[0].strip().lower()
            return _text(purpose), Upload(part.filename or None, content_type, size, digest.hexdigest())
    except StarletteHTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise invalid_request(f"Invalid multipart/form-data body: {exc.detail}") from exc


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise invalid_request("Invalid purpose: it must be a plain form field, not a file.", param="purpose")


def add_file_routes(app: FastAPI, cabinet: FileCabinet, run: Run, authenticate: Authenticate) -> None:
    @app.post("/v1/files")
    async def create_file(request: Request) -> JSONResponse:
        account = authenticate(request)  # before reading a body a stranger sent
        purpose, upload = await _read_upload(request)
        if upload is None:
            raise missing_param("file")
        if purpose is None:
            raise missing_param("purpose")
        # What an idempotent retry must repeat: the purpose and the same bytes under the same name and type.
        params = {"purpose": purpose, "file": [upload.filename, upload.content_type, upload.sha256]}
        return await run(request, params, lambda slot, _: cabinet.upload(account, purpose, upload, slot))

    @app.get("/v1/files/{file_id}")
    async def get_file(request: Request, file_id: str) -> dict[str, Any]:
        return cabinet.get(authenticate(request), file_id)

    # ----- sandbox controls (no auth: they are not Stripe's) ---------------------------------------------

    @app.get("/_sandbox/files/{file_id}")
    async def kept_file(file_id: str) -> dict[str, Any]:
        """What the sandbox keeps of a file: `file` (the File object), `account` (its owner's key digest) and
        `sha256` (of the bytes uploaded)."""
        return cabinet.kept(file_id)
