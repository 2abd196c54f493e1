"""One control the sandboxes share: make the next calls of a billing system's record call fail (a 4xx or 5xx API
error that changes nothing), to show that a record back is retried until the billing system takes it."""

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field


class InjectedFailures(BaseModel):
    """The next `count` calls answer `status`."""

    count: int = Field(ge=0, le=1000)
    status: int = Field(default=500, ge=400, le=599)


class FailureSwitch:
    """The failures still to come; the caller holds its own lock around `take`."""

    def __init__(self) -> None:
        self.failures = InjectedFailures(count=0)

    def take(self) -> int | None:
        """The status this call fails with (one failure used up), or None when it goes through."""
        left = self.failures
        if left.count <= 0:
            return None
        self.failures = InjectedFailures(count=left.count - 1, status=left.status)
        return left.status


def add_failure_routes(app: FastAPI, path: str, switch: FailureSwitch) -> None:
    """`POST {path}` `{count, status}` sets the failures to come, `GET {path}` reads what is left."""

    @app.post(path)
    async def set_failures(failures: InjectedFailures) -> dict[str, Any]:
        switch.failures = failures
        return failures.model_dump()

    @app.get(path)
    async def get_failures() -> dict[str, Any]:
        return switch.failures.model_dump()
