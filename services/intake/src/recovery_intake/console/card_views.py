"""What the Card data page shows of a customer's kept cards (`SavedCardsResponse`): one row a card, its fields
formatted; its Card status lookup (the scheduler's `TokenStatusResponse`: hard-declined or not, one row a hard
decline, the attempts on the card); and its Card status form, as the API's `UpdateTokenStatusRequest`. Pure: the
page's routes read the use case or the port and render these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from recovery_contracts.api.data_backfill import SavedCardsResponse, SavedCardView, UpdateTokenStatusRequest
from recovery_contracts.api.errors import describe_validation_errors
from recovery_contracts.api.fields import EXTERNAL_REFERENCE_CHARS
from recovery_intake.console.formatting import text_of, timestamp
from recovery_intake.console.ports import Document


@dataclass(frozen=True)
class KeptCard:
    token: str
    expiry: str
    network: str
    funding: str
    issuer: str
    history: str
    uploaded: str
    kept_until: str


def kept_cards(answer: SavedCardsResponse) -> list[KeptCard]:
    return [_row(card) for card in answer.cards]


def _row(card: SavedCardView) -> KeptCard:
    month, year = card.card_exp_month, card.card_exp_year
    return KeptCard(
        token=card.token,
        expiry=f"{month}/{year}" if month and year else "",
        network=text_of(card.card_network),
        funding=text_of(card.card_type),
        issuer=text_of(card.card_issuer),
        history=_history(card),
        uploaded=timestamp(card.uploaded_at),
        kept_until=timestamp(card.kept_until),
    )


def _history(card: SavedCardView) -> str:
    """`3 retries, the last by 2026-01-15 00:00:00 UTC` (the end of the last period with retries); `cleared` for
    an upload's `{}`; nothing when no upload gave one."""
    if card.prior_retries is None:
        return ""
    if not card.prior_retries:
        return "cleared"
    retries = sum(p.count for p in card.prior_retries)
    last = max(p.at for p in card.prior_retries)
    return f"{retries} retr{'y' if retries == 1 else 'ies'}, the last by {timestamp(last)}"


@dataclass(frozen=True)
class CardStatus:
    """The Card status form as the visitor sent it, with the scheduler's answer or why it was not taken."""

    customer: str
    token: str
    error_code: str
    # `Hold until`'s time as the form's date-and-time field gives it (`2026-12-10T08:00`, read as UTC); empty: none.
    not_before: str = ""
    message: str = ""
    refused: bool = False


def card_status_sent(form: Mapping[str, object]) -> CardStatus:
    """The form's fields, trimmed (a field that is not text reads as empty)."""

    def field(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    return CardStatus(
        customer=field("customer"), token=field("token"), error_code=field("error_code"), not_before=field("not_before")
    )


class CardStatusRefused(ValueError):
    """The form cannot be sent as it is: the message says what to change."""


# The API's bound on a card token (`payment_processor_token`).
TOKEN_CHARS = EXTERNAL_REFERENCE_CHARS


@dataclass(frozen=True)
class HardDeclineRow:
    """One hard decline recorded on the card: the merchant's mark, or the `never` decline a payment's attempt met
    (attempt 0: the billing system's failure the recovery started from)."""

    payment_id: str  # the payment that met it (its page is linked); empty for the merchant's mark
    who: str
    attempt: str
    at: str
    rule: str
    counts_until: str


@dataclass(frozen=True)
class CardLookup:
    """The card as the merchant's recoveries see it."""

    token: str
    hard_declined: bool
    declines: list[HardDeclineRow]
    # `3 attempts in the last 30 days (1 declined or not settled), 1 planned`
    usage: str
    # Anything at all: a hard decline, an attempt in the last 30 days, one planned, a "not before".
    recorded: bool
    # The merchant's "not before" on the card (`scheduled_at`) while it is ahead; empty: none.
    not_before: str = ""


def card_lookup(answer: Document) -> CardLookup:
    """`TokenStatusResponse` as the Card status section shows it."""
    declines = [_decline(d) for d in answer.get("hard_declines") or []]
    attempts, declined, planned = (
        int(answer.get(name) or 0) for name in ("attempts_last_30_days", "declined_last_30_days", "planned_attempts")
    )
    hard_declined = bool(answer.get("hard_declined"))
    not_before = timestamp(answer.get("scheduled_at")) if answer.get("scheduled_at") else ""
    return CardLookup(
        token=text_of(answer.get("payment_processor_token")),
        hard_declined=hard_declined,
        declines=declines,
        usage=(
            f"{attempts} attempt{'' if attempts == 1 else 's'} in the last 30 days "
            f"({declined} declined or not settled), {planned} planned"
        ),
        recorded=bool(hard_declined or declines or attempts or planned or not_before),
        not_before=not_before,
    )


def _decline(decline: Document) -> HardDeclineRow:
    by_merchant = bool(decline.get("marked_by_merchant"))
    payment_id = "" if by_merchant else text_of(decline.get("payment_id"))
    attempt = int(decline.get("attempt_number") or 0)
    return HardDeclineRow(
        payment_id=payment_id,
        who="the merchant" if by_merchant else payment_id,
        attempt="" if by_merchant else str(attempt) if attempt else "first failure",
        at=timestamp(decline.get("at")),
        rule=text_of(decline.get("rule")),
        counts_until=timestamp(decline.get("counts_until")),
    )


# The form's words: its buttons' `hard_decline` values.
MARK, CLEAR, HOLD = "true", "false", "hold"


def token_status_update(form: CardStatus, action: str) -> UpdateTokenStatusRequest:
    """The API's body for the form: the card marked hard-declined (with the error code, if given), cleared, or held
    back until the time given (`scheduled_at`; a time now or past lifts the hold)."""
    if action not in (MARK, CLEAR, HOLD):
        raise CardStatusRefused("Choose Mark hard-declined, Clear hard declines or Hold until.")
    if not form.customer or not form.token:
        raise CardStatusRefused("Name the customer and the card token.")
    if form.error_code and action != MARK:
        raise CardStatusRefused("An error code goes with Mark hard-declined only: clear it for the other words.")
    scheduled_at = None
    if action == HOLD:
        try:
            given = datetime.fromisoformat(form.not_before)
            scheduled_at = given.replace(tzinfo=UTC) if given.tzinfo is None else given.astimezone(UTC)
        except ValueError:
            raise CardStatusRefused("Give the date and time (UTC) before which no recovery tries the card.") from None
    try:
        return UpdateTokenStatusRequest(
            connector_customer_id=form.customer,
            payment_processor_token=form.token,
            is_hard_decline=None if action == HOLD else action == MARK,
            error_code=form.error_code or None,
            scheduled_at=scheduled_at,
        )
    except ValidationError as error:
        raise CardStatusRefused(f"Not sent: {describe_validation_errors(error.errors())}.") from error
