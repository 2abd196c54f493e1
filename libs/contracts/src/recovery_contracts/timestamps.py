"""Hyperswitch's timestamp format: ISO 8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def format_ms(value: datetime) -> str:
    """`2025-09-07T20:02:09.947Z`: milliseconds truncated, as `microsecond // 1000`; a naive value is UTC.
    (`isoformat` ends in `+00:00` once in UTC; it is several times cheaper than `strftime`, and this runs for
    every timestamp of every message serialized.)"""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# A datetime that is always timezone-aware inside and serialises as 2025-09-07T20:02:09.947Z.
UtcMillis = Annotated[datetime, AfterValidator(_aware), PlainSerializer(format_ms, return_type=str)]
