"""How the console writes amounts, rates and times: minor units to major with the currency, rates as percentages."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 minor-unit exponents that are not 2 (every other active code has 2 decimals).
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF",
         "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip


def currency_exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has (ISO 4217): JPY 0, USD 2, KWD 3."""
    return _EXPONENTS.get(currency.upper(), 2)


def major_units(amount_minor: int, currency: str) -> str:
    """`9000, "USD"` -> `"USD 90.00"`; `500, "JPY"` -> `"JPY 500"`; `1234567, "USD"` -> `"USD 12,345.67"`."""
    exponent = currency_exponent(currency)
    value = Decimal(int(amount_minor)).scaleb(-exponent)
    return f"{currency.upper()} {value:,.{exponent}f}"


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


def timestamp(value: str | datetime | None) -> str:
    """An ISO time (as the APIs send it) as `2026-12-03 14:05:09 UTC`; the value itself when it is not one."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def text_of(value: object) -> str:
    """A value as a table cell shows it: nothing for a missing one."""
    return "" if value is None else str(value)
