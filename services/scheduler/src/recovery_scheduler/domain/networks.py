"""Card networks, by the names billing systems and processors spell them."""

from __future__ import annotations

from enum import StrEnum


class CardNetwork(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"


_ALIASES = {
    "visa": CardNetwork.VISA,
    "mastercard": CardNetwork.MASTERCARD,
    "mc": CardNetwork.MASTERCARD,
    "amex": CardNetwork.AMEX,
    "americanexpress": CardNetwork.AMEX,
    "discover": CardNetwork.DISCOVER,
}


def normalize_card_network(name: str | None) -> CardNetwork | None:
    """`"Visa"`, `"MasterCard"`, `"American Express"`, `"AmericanExpress"` ...; None when unknown."""
    if not name:
        return None
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return _ALIASES.get(key)
