"""How the sandboxes deliver an event again while it is not taken (answered 2xx), as the billing systems do on
their own (Stripe: in test mode three more times over a few hours, in live mode for up to three days; Recurly: ten
times over about three days): after each of the schedule's delays in turn, shortened to minutes by default for a
development peer, set by `POST <path>` (`{"seconds": [...]}`; `[]`: never), read by `GET <path>`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from pydantic import BaseModel, Field, field_validator

# The sandboxes' default: three more deliveries, after 1, 5 and 15 minutes.
DEFAULT_SECONDS = (60.0, 300.0, 900.0)


class Redelivery(BaseModel):
    """The delays (seconds) before each delivery again of an event that was not answered 2xx."""

    seconds: list[float] = Field(max_length=20)

    @field_validator("seconds")
    @classmethod
    def _in_range(cls, seconds: list[float]) -> list[float]:
        if any(not 0 < s <= 86_400 for s in seconds):
            raise ValueError("each delay is more than 0 and at most 86400 seconds")
        return seconds


class Schedule:
    """The delays in force; a delivery under way keeps the ones it started with."""

    def __init__(self, seconds: tuple[float, ...] = DEFAULT_SECONDS) -> None:
        self.seconds = seconds

    async def until_taken(self, send: Callable[[], Awaitable[int | None]]) -> int | None:
        """`send()` (the delivery's HTTP status, None when no answer), then again after each delay while it is not
        2xx; the last status."""
        status = await send()
        for delay in self.seconds:
            if status is not None and 200 <= status < 300:
                break
            await asyncio.sleep(delay)
            status = await send()
        return status


def add_redelivery_routes(app: FastAPI, path: str, schedule: Schedule) -> None:
    @app.post(path)
    async def set_redelivery(body: Redelivery) -> Redelivery:
        """How long after an undelivered event it is delivered again, each in turn; `[]`: never."""
        schedule.seconds = tuple(body.seconds)
        return body

    @app.get(path)
    async def get_redelivery() -> Redelivery:
        return Redelivery(seconds=list(schedule.seconds))
