"""`POST /v2/recovery/data-backfill`: card data of the customers' saved payment methods, uploaded as CSV (multipart
field `file`), in Hyperswitch's columns (`RevenueRecoveryBackfillRequest`), and the answer."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from recovery_contracts.api.fields import RequestBody, ResponseBody
from recovery_contracts.api.payment_methods import CardNetwork

# The CSV's words for "no value" (a spreadsheet's export of an empty pandas cell is "nan").
NO_VALUE = frozenset({"", "nan", "NaN", "null", "None"})


def _absent_as_none(value: object) -> object:
    return None if isinstance(value, str) and value.strip() in NO_VALUE else value


def _absent_as_empty(value: object) -> object:
    """A required column's "no value" is an empty string, which its `min_length` refuses with the reason."""
    return "" if isinstance(value, str) and value.strip() in NO_VALUE else value


Text = Annotated[Annotated[str, Field(max_length=255)] | None, BeforeValidator(_absent_as_none)]
Required = Annotated[str, BeforeValidator(_absent_as_empty), Field(min_length=1, max_length=255)]


class DataBackfillRecord(RequestBody):
    """One row of the upload. `customer_id_resp` (the customer at the payment processor) and `token` (the saved
    payment method) name the card; the other columns are what is known of it. Accepted and not used:
    `bin_number`, `connector_payment_id`, `country_name` (no field holds them) and `daily_retry_history` (network
    budgets count this system's own reservations and the billing system's reported retries)."""

    customer_id_resp: Required
    token: Required
    exp_date: Text = None
    card_network: Annotated[CardNetwork | None, BeforeValidator(_absent_as_none)] = None
    payment_method_sub_type: Text = None
    clean_bank_name: Text = None
    country_name: Text = None
    bin_number: Text = None
    connector_payment_id: Text = None
    daily_retry_history: Annotated[
        Annotated[str, Field(max_length=20_000)] | None, BeforeValidator(_absent_as_none)
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
    """Hyperswitch's `processed_records` / `failed_records`, and why each failed row failed (an extension)."""

    processed_records: int
    failed_records: int
    # Open recoveries whose card data changed (`recovery.updated` sent to the scheduler and the executor).
    updated_recoveries: int
    errors: list[DataBackfillRowError]
