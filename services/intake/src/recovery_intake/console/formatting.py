"""How the console writes amounts, rates and times: minor units to major with the currency, rates as percentages,
UTC times and how long is left until one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from recovery_contracts.api.currency import currency_exponent
from recovery_contracts.api.currency import major_units as in_major_units


def major_units(amount_minor: int, currency: str) -> str:
    """`9000, "USD"` -> `"USD 90.00"`; `500, "JPY"` -> `"JPY 500"`; `1234567, "USD"` -> `"USD 12,345.67"`."""
    return f"{currency.upper()} {in_major_units(amount_minor, currency):,.{currency_exponent(currency)}f}"


def percentage(rate: float | None) -> str:
    """A rate in [0, 1] as a percentage with one decimal (`2/3` -> `66.7%`); `—` when there is none."""
    if rate is None:
        return "—"
    # Half up, as people round (Decimal's default, half-even, would show 0.05% as 0.0%).
    return f"{(Decimal(str(rate)) * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


def duration(seconds: float | None) -> str:
    """`5400` -> `1 h 30 min`; `86400 * 3` -> `3 d`; `—` when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min")] if seconds >= 60 else [(secs, "s")]
    shown = [f"{value} {unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0 s"


def moment(value: str | datetime | None) -> datetime | None:
    """An ISO time (as the APIs send it: `Z` or an offset; a naive one is UTC) as an aware datetime; None when there
    is none or it is not a time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def timestamp(value: str | datetime | None) -> str:
    """An ISO time (as the APIs send it) as `2026-12-03 14:05:09 UTC`; the value itself when it is not one."""
    if value is None or value == "":
        return "—"
    at = moment(value)
    if at is None:
        return str(value)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def time_left(deadline: datetime, now: datetime) -> str:
    """How long is left until `deadline` in its largest whole unit, rounded down (never more than is left):
    `in 2 days`, `in 5 hours`, `in 1 minute`, `in less than a minute`; `overdue` once it has come."""
    left = deadline - now
    if left <= timedelta(0):
        return "overdue"
    seconds = int(left.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if count := seconds // size:
            return f"in {count} {unit}{'' if count == 1 else 's'}"
    return "in less than a minute"


def text_of(value: object) -> str:
    """A value as a table cell shows it: nothing for a missing one."""
    return "" if value is None else str(value)
