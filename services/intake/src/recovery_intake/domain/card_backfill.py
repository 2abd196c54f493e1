"""The merchant's card-data backfill (`POST /v2/recovery/data-backfill`, Hyperswitch's `RevenueRecoveryBackfill`): a
CSV of its customers' saved payment methods with what is known of each card (expiry, network, funding, issuer),
read row by row into checked records, what a record makes of a saved token, and what is kept of it for the
customer's recoveries still to come (`SavedCard`). Pure: the use cases find the open recoveries and the saved cards
and store them."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from recovery_contracts.api.data_backfill import DataBackfillRecord, DataBackfillRowError, SavedCardView
from recovery_contracts.recovery import PRIOR_RETRIES_LOOKBACK, PaymentToken, PriorRetries

# An upload is one request: bounded so that it stays one (a larger file is split by the merchant).
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
COLUMNS = frozenset(DataBackfillRecord.model_fields)


class BackfillRefused(ValueError):
    """The file as a whole cannot be read (not CSV, no header, unknown columns, too large): nothing is applied."""


@dataclass(frozen=True)
class BackfillRow:
    row_number: int  # the CSV's line: 2 is the first row after the header
    record: DataBackfillRecord


def read_backfill(content: bytes) -> tuple[list[BackfillRow], list[DataBackfillRowError]]:
    """The file's rows, each checked: the good ones as records, the others with the reason (their line)."""
    if len(content) > MAX_BYTES:
        raise BackfillRefused(f"the file is {len(content)} bytes; at most {MAX_BYTES} are accepted in one upload")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BackfillRefused(f"the file is not UTF-8 text: {error.reason} at byte {error.start}") from error
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or ()]
    if not header:
        raise BackfillRefused("the file has no header row (customer_id_resp, token, exp_date, card_network, ...)")
    unknown = sorted(set(header) - COLUMNS)
    if unknown:
        raise BackfillRefused(f"unknown columns {', '.join(unknown)}; the columns are {', '.join(sorted(COLUMNS))}")
    missing = sorted({"customer_id_resp", "token"} - set(header))
    if missing:
        raise BackfillRefused(f"the header lacks {', '.join(missing)}")
    rows: list[BackfillRow] = []
    errors: list[DataBackfillRowError] = []
    for index, raw in enumerate(reader):
        line = index + 2
        if index >= MAX_ROWS:
            raise BackfillRefused(f"more than {MAX_ROWS} rows; split the file")
        if None in raw:
            errors.append(DataBackfillRowError(row_number=line, error="more values than the header has columns"))
            continue
        values = {name.strip(): value for name, value in raw.items() if value is not None}
        try:
            rows.append(BackfillRow(line, DataBackfillRecord.model_validate(values)))
        except ValidationError as invalid:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
            errors.append(DataBackfillRowError(row_number=line, error=reasons))
    return rows, errors


# A period of the retry history may begin this long after the upload's UTC time: the merchant's "today" in a time
# zone ahead of UTC (UTC+14 at most). Later is a history from the future: the row is refused.
AHEAD_OF_UTC = timedelta(hours=14)


def prior_retries(record: DataBackfillRecord, now: datetime) -> tuple[PriorRetries, ...] | None:
    """The row's `daily_retry_history` as the token keeps it: each day's or hour's retries placed at the period's
    end, or at the upload (`now`) for a period not over yet; periods that ended before the longest budget window
    left out (they never count). None: the row has no history (the token keeps what it had). ValueError, the row's
    reason, for a period that begins after the upload."""
    history = record.daily_retry_history
    if history is None:
        return None
    since = now - PRIOR_RETRIES_LOOKBACK
    kept: list[PriorRetries] = []
    for period in history:
        if period.start > now + AHEAD_OF_UTC:
            raise ValueError(
                f"daily_retry_history: {period.start.isoformat()} is after the upload ({now.isoformat()}): "
                "a history counts retries already made"
            )
        at = min(period.end, now)
        if at >= since:
            kept.append(PriorRetries(at=at, count=period.count))
    return tuple(sorted(kept, key=lambda p: p.at))


# How long an upload's word on a card is kept for the customer's invoices still to come (a new upload of the card
# starts it again): a merchant backfills before the invoices it is about, days or weeks ahead; past this its card
# data may have changed at the issuer, and its retry history has long left every network window.
SAVED_CARD_DAYS = 90
# The two fields that make an expiry: taken as a pair.
EXPIRY = ("card_exp_month", "card_exp_year")


@dataclass(frozen=True)
class SavedCard:
    """What the merchant's uploads said of one card of one customer (`customer_id`, `token`), kept for the
    customer's recoveries still to come: the card fields given (`card_exp_month`, `card_exp_year`, `card_network`,
    `card_type`, `card_issuer`; a later upload's replace an earlier one's, one it leaves empty keeps them) and the
    latest history given (None: none was)."""

    customer_id: str
    token: str
    card: Mapping[str, str]
    prior_retries: tuple[PriorRetries, ...] | None
    uploaded_at: datetime

    @property
    def kept_until(self) -> datetime:
        return self.uploaded_at + timedelta(days=SAVED_CARD_DAYS)

    def view(self) -> SavedCardView:
        """As `GET /v2/recovery/data-backfill/cards` shows it."""
        prior = None if self.prior_retries is None else list(self.prior_retries)
        return SavedCardView.model_validate(
            {
                "token": self.token,
                **self.card,
                "prior_retries": prior,
                "uploaded_at": self.uploaded_at,
                "kept_until": self.kept_until,
            }
        )


def saved_card(record: DataBackfillRecord, prior: tuple[PriorRetries, ...] | None, now: datetime) -> SavedCard:
    """A checked row as it is kept for the customer's recoveries still to come."""
    return SavedCard(record.customer_id_resp, record.token, card_fields(record), prior, now)


def card_fields(record: DataBackfillRecord) -> dict[str, str]:
    """The token fields the record's columns give (an empty column gives none)."""
    fields: dict[str, str] = {}
    if record.exp_date is not None:
        month, year = record.exp_date.split("/")
        fields.update(card_exp_month=month, card_exp_year=f"20{year}")
    if record.card_network is not None:
        fields["card_network"] = record.card_network.value
    if record.payment_method_sub_type is not None:
        fields["card_type"] = record.payment_method_sub_type
    if record.clean_bank_name is not None:
        fields["card_issuer"] = record.clean_bank_name
    return fields


def backfilled(token: PaymentToken, record: DataBackfillRecord, prior: tuple[PriorRetries, ...] | None) -> PaymentToken:
    """The saved token with the record's card data: a column left empty keeps what the token had. `prior`: the
    row's retry history (`prior_retries`), which replaces the token's (the latest upload states it)."""
    return _with_card(token, card_fields(record), prior)


def with_saved_card(token: PaymentToken, saved: SavedCard) -> PaymentToken:
    """A new request's token with what an earlier upload said of the card: the request's own card fields stand
    (the billing system's word is the newer), the upload fills those it left empty; the upload's history is the
    token's prior retries, as the open recoveries took it (periods that have left every window since count
    nowhere)."""
    has_expiry = token.card_exp_month is not None or token.card_exp_year is not None
    given = {
        field: value
        for field, value in saved.card.items()
        if getattr(token, field) is None and not (has_expiry and field in EXPIRY)
    }
    return _with_card(token, given, saved.prior_retries)


def _with_card(token: PaymentToken, fields: Mapping[str, str], prior: tuple[PriorRetries, ...] | None) -> PaymentToken:
    changes: dict[str, object] = {k: v for k, v in fields.items() if k not in EXPIRY}
    if "card_exp_month" in fields and f"{fields['card_exp_month']}/{fields['card_exp_year'][-2:]}" != _expiry_of(token):
        changes.update(card_exp_month=fields["card_exp_month"], card_exp_year=fields["card_exp_year"])
    if prior is not None:
        changes["prior_retries"] = prior
    return token.model_copy(update=changes) if changes else token


def _expiry_of(token: PaymentToken) -> str | None:
    """The token's expiry as `MM/YY` (the billing system may have sent `7` / `2027`), to compare with a record's."""
    month, year = token.card_exp_month, token.card_exp_year
    if not (month and year and month.isdigit() and year.isdigit()):
        return None
    return f"{int(month):02d}/{year[-2:]}"
