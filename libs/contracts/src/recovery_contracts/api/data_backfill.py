"""`POST /v2/recovery/data-backfill`: card data of the customers' saved payment methods, uploaded as CSV (multipart
field `file`), in Hyperswitch's columns (`RevenueRecoveryBackfillRequest`), and the answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from recovery_contracts.api.fields import ExternalReference, RequestBody, ResponseBody
from recovery_contracts.api.payment_methods import CardNetwork
from recovery_contracts.recovery import MAX_PRIOR_RETRIES_IN_A_PERIOD, PriorRetries
from recovery_contracts.timestamps import UtcMillis

# The CSV's words for "no value" (a spreadsheet's export of an empty pandas cell is "nan").
NO_VALUE = frozenset({"", "nan", "NaN", "null", "None"})


def _absent_as_none(value: object) -> object:
    return None if isinstance(value, str) and value.strip() in NO_VALUE else value


def _absent_as_empty(value: object) -> object:
    """A required column's "no value" is an empty string, which its `min_length` refuses with the reason."""
    return "" if isinstance(value, str) and value.strip() in NO_VALUE else value


Text = Annotated[Annotated[str, Field(max_length=255)] | None, BeforeValidator(_absent_as_none)]

# The column's text, before it is read: an upload is bounded as a whole, a row's history by this.
MAX_HISTORY_CHARS = 20_000


@dataclass(frozen=True)
class RetriesInPeriod:
    """One entry of a card's `daily_retry_history`: `count` retries in the day (`hours` 24) or the hour (1) that
    began at `start` (UTC)."""

    start: datetime
    hours: int
    count: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours)


def _period(key: str) -> tuple[datetime, int]:
    """A history key: a day (`2026-11-30`, Hyperswitch's daily history) or a moment within an hour
    (`2026-11-30 14:00:00`, its hourly one; ISO 8601, `T` or a space, an offset or none for UTC)."""
    text = key.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=UTC), 24
    moment = datetime.fromisoformat(text)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0), 1


def _retry_history(value: object) -> object:
    """The column's JSON object of day (or hour) -> retries, as periods oldest first (two keys naming one period
    add up); refused with what is wrong, naming the key."""
    value = _absent_as_none(value)
    if not isinstance(value, str):
        return value
    if len(value) > MAX_HISTORY_CHARS:
        raise ValueError(f"daily_retry_history is {len(value)} characters; at most {MAX_HISTORY_CHARS} are read")
    example = '{"2026-11-30": 2, "2026-12-01": 1}'
    try:
        history = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"daily_retry_history is not JSON ({error.msg}); write it as {example}") from None
    if not isinstance(history, dict):
        raise ValueError(f"daily_retry_history must be a JSON object of day -> retries, such as {example}")
    periods: dict[tuple[datetime, int], int] = {}
    for key, count in history.items():
        try:
            period = _period(key)
        except ValueError:
            raise ValueError(
                f"daily_retry_history: {key!r} is neither a day (YYYY-MM-DD) nor a date-time (YYYY-MM-DD HH:MM:SS)"
            ) from None
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_PRIOR_RETRIES_IN_A_PERIOD:
            raise ValueError(
                f"daily_retry_history: {key!r} has {count!r} retries; a whole number from 0 to "
                f"{MAX_PRIOR_RETRIES_IN_A_PERIOD} is expected"
            )
        periods[period] = periods.get(period, 0) + count
    entries = [RetriesInPeriod(start, hours, count) for (start, hours), count in sorted(periods.items()) if count]
    for entry in entries:
        if entry.count > MAX_PRIOR_RETRIES_IN_A_PERIOD:
            raise ValueError(
                f"daily_retry_history: {entry.count} retries from {entry.start.isoformat()}; at most "
                f"{MAX_PRIOR_RETRIES_IN_A_PERIOD} in one day or hour are counted"
            )
    return tuple(entries)


Required = Annotated[str, BeforeValidator(_absent_as_empty), Field(min_length=1, max_length=255)]


class DataBackfillRecord(RequestBody):
    """One row of the upload. `customer_id_resp` (the customer at the payment processor) and `token` (the saved
    payment method) name the card; the other columns are what is known of it, `daily_retry_history` the retries
    made on it before this system (network budgets count them). Accepted and not used: `bin_number`,
    `connector_payment_id`, `country_name` (no field holds them)."""

    customer_id_resp: Required
    token: Required
    exp_date: Text = None
    card_network: Annotated[CardNetwork | None, BeforeValidator(_absent_as_none)] = None
    payment_method_sub_type: Text = None
    clean_bank_name: Text = None
    country_name: Text = None
    bin_number: Text = None
    connector_payment_id: Text = None
    # The column is text, a JSON object of day (or hour) -> retries; read into periods.
    daily_retry_history: Annotated[
        tuple[RetriesInPeriod, ...] | None,
        BeforeValidator(_retry_history),
        WithJsonSchema(
            {
                "anyOf": [{"type": "string", "maxLength": MAX_HISTORY_CHARS}, {"type": "null"}],
                "description": 'A JSON object of day (or hour) -> retries, e.g. {"2026-11-30": 2}',
            }
        ),
    ] = None

    @field_validator("exp_date")
    @classmethod
    def _expiry(cls, value: str | None) -> str | None:
        """`MM/YY` or `MM/YYYY`, as Hyperswitch's backfill reads it."""
        if value is None:
            return None
        month, _, year = value.strip().partition("/")
        if not (month.isdigit() and 1 <= int(month) <= 12 and year.isdigit() and len(year) in (2, 4)):
            raise ValueError(f"exp_date must be MM/YY or MM/YYYY, not {value!r}")
        return f"{int(month):02d}/{year[-2:]}"

    @field_validator("payment_method_sub_type")
    @classmethod
    def _funding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        funding = value.strip().lower()
        if funding not in ("credit", "debit"):
            raise ValueError(f"payment_method_sub_type must be credit or debit, not {value!r}")
        return funding


class DataBackfillRowError(ResponseBody):
    row_number: int  # the CSV's line: 2 is the first row after the header
    error: str


class DataBackfillResponse(ResponseBody):
    """Hyperswitch's `processed_records` / `failed_records`; as extensions, what the processed rows did and why
    each failed row failed. Every processed row is kept for the customer's recoveries still to come."""

    processed_records: int
    failed_records: int
    # Open recoveries whose card data changed (`recovery.updated` sent to the scheduler and the executor).
    updated_recoveries: int
    # Processed rows about a card no open recovery holds: kept for the customer's next recovery with that card.
    kept_for_later: int
    errors: list[DataBackfillRowError]


class SavedCardView(ResponseBody):
    """What the merchant's uploads said of one saved card of the customer, kept for its recoveries still to come:
    the card fields given (`null`: no upload gave one), the latest retry history given (`null`: none was; `[]`:
    cleared), when the card was last uploaded and until when it is kept."""

    token: str
    card_exp_month: str | None = None
    card_exp_year: str | None = None
    card_network: str | None = None
    card_type: str | None = None
    card_issuer: str | None = None
    prior_retries: list[PriorRetries] | None = None
    uploaded_at: datetime
    kept_until: datetime


class SavedCardsResponse(ResponseBody):
    """`GET /v2/recovery/data-backfill/cards` (the customer's kept cards, at most 100, by token) and `DELETE` of the
    same (the cards forgotten). An extension: Hyperswitch keeps them in Redis and shows them to operators only."""

    connector_customer_id: ExternalReference
    cards: list[SavedCardView]


class UpdateTokenStatusRequest(RequestBody):
    """`PUT /v2/recovery/data-backfill/update-token` (Hyperswitch's `UpdateTokenStatusRequest`): the merchant's word
    on one of the customer's saved cards. `is_hard_decline: true` marks it hard-declined for every recovery of the
    merchant (the customer reported it lost or stolen, the account is closed); `error_code` says why and is kept
    with the mark. `false` clears what is recorded: the merchant's mark and the `never` declines its recoveries met on
    the card. `scheduled_at` (Hyperswitch's time for the token's next try; ISO 8601, UTC when it names no offset):
    none of the merchant's recoveries tries the card before then (those with an attempt planned on it sooner plan
    again at once); a time now or past lifts it. At least one of `is_hard_decline` and `scheduled_at`
    (docs/retry-engine.md, "The merchant's word on a card")."""

    connector_customer_id: ExternalReference
    payment_processor_token: ExternalReference
    scheduled_at: UtcMillis | None = None
    is_hard_decline: bool | None = None
    error_code: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class UpdateTokenStatusResponse(ResponseBody):
    """Hyperswitch's `updated` (false: nothing changed, the card stood so already) and `message`; as extensions,
    whether the card is now hard-declined for the merchant's recoveries, and how many recoveries with an attempt
    planned on it were asked to plan again at once (one whose attempt is already due lets it stand, as any
    attempt in flight)."""

    updated: bool
    message: str
    hard_declined: bool
    recoveries_planned_again: int


class TokenHardDecline(ResponseBody):
    """One hard decline recorded on the card: the merchant's mark (`marked_by_merchant`, `payment_id` null) or the
    `never` decline a recovery met (`payment_id`, its attempt `attempt_number`, 0: the billing system's failure the
    recovery started from); when, the rule that made it one, and until when it counts."""

    payment_id: str | None
    marked_by_merchant: bool
    attempt_number: int
    at: datetime
    rule: str
    counts_until: datetime


class TokenStatusResponse(ResponseBody):
    """`GET /v2/recovery/data-backfill/token-status?payment_processor_token=` (an extension; Hyperswitch's operators
    read its Redis token status): whether the merchant's recoveries may charge the card, the hard declines recorded
    on it, and the merchant's own use of the card as the card networks' budgets count it: attempts made in the last
    30 days (and how many were declined or are not settled), and recoveries holding an attempt planned on it."""

    payment_processor_token: str
    hard_declined: bool
    hard_declines: list[TokenHardDecline]
    # The merchant's `scheduled_at` while it is ahead: no recovery tries the card before it (null: none).
    scheduled_at: UtcMillis | None = None
    attempts_last_30_days: int
    declined_last_30_days: int
    planned_attempts: int
