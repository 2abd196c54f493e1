"""A request intake refuses, with the API error it answers and the reason in words."""

from __future__ import annotations

from recovery_contracts.api.errors import ApiError


class Rejection(Exception):
    def __init__(self, error: ApiError, reason: str | None = None, **params: object) -> None:
        super().__init__(reason or error.name)
        self.error = error
        self.reason = reason
        self.params = params

    def describe(self) -> str:
        message = self.error.value.message.format(**self.params) if self.params else self.error.value.message
        return f"{message}: {self.reason}" if self.reason else message
