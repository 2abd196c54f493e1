"""What the Card data page shows of a customer's kept cards (`SavedCardsResponse`): one row a card, its fields
formatted. Pure: the page's routes read the use case and render these."""

from __future__ import annotations

from dataclasses import dataclass

from recovery_contracts.api.data_backfill import SavedCardsResponse, SavedCardView
from recovery_intake.console.formatting import text_of, timestamp


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
