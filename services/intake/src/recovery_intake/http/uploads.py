"""A file uploaded to an API route (multipart field `file`): how OpenAPI describes the body (the form is read after
the caller is known, not by FastAPI), and reading it within the route's bound."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from recovery_contracts.api.errors import ApiError
from recovery_intake.http.errors import ApiProblem


def file_upload_body(description: str) -> dict[str, Any]:
    """The `openapi_extra` of a route whose body is one file (`description`: what it must be)."""
    field = {"type": "string", "format": "binary", "description": description}
    schema = {"type": "object", "required": ["file"], "properties": {"file": field}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


async def uploaded_file(request: Request, max_part_size: int, *, max_fields: int = 1) -> UploadFile:
    """The request's multipart field `file` (MISSING_REQUIRED_FIELD without one)."""
    form = await request.form(max_files=1, max_fields=max_fields, max_part_size=max_part_size)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiProblem(ApiError.MISSING_REQUIRED_FIELD, field_name="file (a multipart/form-data field)")
    return upload
