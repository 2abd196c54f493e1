"""Hyperswitch's timestamp format: ISO 8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, PlainSerializer


def format_ms(value: datetime) -> str:
    """`2025-09-07T20:02:09.947Z`: milliseconds truncated, as `microsecond // 1000`; a naive value is UTC.
    (`isoformat` ends in `+00:00` once in UTC; it is several times cheaper than `strftime`, and this runs for
    every timestamp of every message serialized.)"""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


_NO_OFFSET = timedelta(0)


def in_utc(value: datetime) -> datetime:
    """The same moment in UTC (a naive value is UTC already). A moment that has no UTC time, the calendar's first
    hours given with an offset east of UTC or its last ones west of it (`0001-01-01T00:00:00+01:00`), is a
    ValueError: stored or sent on, it would fail there (BSON and this format both take it to UTC)."""
    zone = value.tzinfo
    if zone is None:
        return value.replace(tzinfo=UTC)
    # UTC, as every time this system writes itself (the zone asked alone: a fixed offset answers without the
    # datetime, several times cheaper than `value.utcoffset()`; a zone whose offset varies answers None).
    if zone is UTC or zone.utcoffset(None) == _NO_OFFSET:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the calendar once in UTC (years 1 to 9999)") from None


# A datetime that is always in UTC inside and serialises as 2025-09-07T20:02:09.947Z.
UtcMillis = Annotated[datetime, AfterValidator(in_utc), PlainSerializer(format_ms, return_type=str)]
