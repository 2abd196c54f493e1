"""Hyperswitch's timestamp format: ISO 8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def format_ms(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# A datetime that is always timezone-aware inside and serialises as 2025-09-07T20:02:09.947Z.
UtcMillis = Annotated[datetime, AfterValidator(_aware), PlainSerializer(format_ms, return_type=str)]
