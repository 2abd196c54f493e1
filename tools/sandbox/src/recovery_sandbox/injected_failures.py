"""The controls the sandboxes share: make the next calls of a billing system's record call fail (a 4xx or 5xx API
error that changes nothing), to show that a record back is retried until the billing system takes it; or answer
the next reads late, to show that a webhook whose read is slow is answered 503 and applied when delivered again."""

from typing import Any, Generic, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError


class Injected(BaseModel):
    """The next `count` calls are given what the subclass says."""

    count: int = Field(ge=0, le=1000)


class InjectedFailures(Injected):
    """The next `count` calls answer `status`."""

    status: int = Field(default=500, ge=400, le=599)


class InjectedDelays(Injected):
    """The next `count` calls are answered `seconds` late."""

    seconds: float = Field(default=5.0, gt=0, le=60)


InjectedT = TypeVar("InjectedT", bound=Injected)


class Countdown(Generic[InjectedT]):
    """What is still to come for the next calls; the caller holds its own lock around `next`."""

    def __init__(self, idle: InjectedT) -> None:
        self.left = idle

    def clear(self) -> None:
        """Nothing more to come (a sandbox's reset: the routes keep this switch)."""
        self.left = self.left.model_copy(update={"count": 0})

    def next(self) -> InjectedT | None:
        """What this call is given (one used up), or None when it goes through as usual."""
        left = self.left
        if left.count <= 0:
            return None
        self.left = left.model_copy(update={"count": left.count - 1})
        return left


class FailureSwitch(Countdown[InjectedFailures]):
    def __init__(self) -> None:
        super().__init__(InjectedFailures(count=0))

    def take(self) -> int | None:
        """The status this call fails with (one failure used up), or None when it goes through."""
        failing = self.next()
        return None if failing is None else failing.status


class DelaySwitch(Countdown[InjectedDelays]):
    def __init__(self) -> None:
        super().__init__(InjectedDelays(count=0))

    def take(self) -> float:
        """How long this call waits before it is answered (one delay used up): 0 when it is answered at once."""
        late = self.next()
        return 0.0 if late is None else late.seconds


def add_injection_routes(app: FastAPI, path: str, switch: Countdown[InjectedT]) -> None:
    """`POST {path}` sets what the next calls are given (`{count, status}` or `{count, seconds}`, as the switch
    takes), `GET {path}` reads what is left."""

    @app.post(path)
    async def set_injected(body: dict[str, Any]) -> dict[str, Any]:
        try:
            switch.left = type(switch.left).model_validate(body)
        except ValidationError as invalid:
            raise RequestValidationError(invalid.errors()) from invalid
        return switch.left.model_dump()

    @app.get(path)
    async def get_injected() -> dict[str, Any]:
        return switch.left.model_dump()
