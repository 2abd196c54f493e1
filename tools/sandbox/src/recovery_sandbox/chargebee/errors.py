"""Chargebee's error responses: the JSON body `{message, type, api_error_code, http_status_code}` and its status."""

from __future__ import annotations

from typing import Any


class ChargebeeError(Exception):
    """Raised anywhere in the Chargebee sandbox; the app turns it into Chargebee's error body and status."""

    def __init__(
        self,
        status: int,
        api_error_code: str,
        message: str,
        error_type: str = "invalid_request",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.api_error_code, self.message, self.error_type = status, api_error_code, message, error_type
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "type": self.error_type,
            "api_error_code": self.api_error_code,
            **({"param": self.param} if self.param else {}),
            "http_status_code": self.status,
        }
