"""Stripe's documented test cards and PaymentMethod aliases, and how a charge on each one ends."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ChargeBehaviour(StrEnum):
    SUCCEED = "succeed"
    DECLINE = "decline"
    # Stripe asks for 3-D Secure; off-session that becomes an `authentication_required` decline.
    REQUIRE_AUTHENTICATION = "require_authentication"


@dataclass(frozen=True)
class Decline:
    """A decline as Stripe reports it: `code` is the error code, `decline_code` the issuer's reason."""

    code: str
    decline_code: str
    message: str
    # Not on Stripe's test-card table: the sandbox's choice of what a real issuer would plausibly send,
    # so that retry logic has network codes and advice to read.
    network_decline_code: str | None = None
    advice_code: str | None = None
    param: str | None = None


@dataclass(frozen=True)
class TestCard:
    __test__ = False  # not a pytest test class, despite the name

    number: str
    brand: str
    funding: str = "credit"
    country: str = "US"
    behaviour: ChargeBehaviour = ChargeBehaviour.SUCCEED
    decline: Decline | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]


# Messages are the ones Stripe's API returns for these decline codes (docs.stripe.com/declines/codes).
GENERIC_DECLINE = Decline("card_declined", "generic_decline", "Your card was declined.", "05", "try_again_later")
INSUFFICIENT_FUNDS = Decline(
    "card_declined", "insufficient_funds", "Your card has insufficient funds.", "51", "try_again_later"
)
LOST_CARD = Decline("card_declined", "lost_card", "Your card was declined.", "41", "do_not_try_again")
STOLEN_CARD = Decline("card_declined", "stolen_card", "Your card was declined.", "43", "do_not_try_again")
EXPIRED_CARD = Decline("expired_card", "expired_card", "Your card has expired.", "54", "confirm_card_data", "exp_month")
INCORRECT_CVC = Decline(
    "incorrect_cvc",
    "incorrect_cvc",
    "Your card's security code is incorrect.",
    "N7",
    "confirm_card_data",
    "cvc",
)
PROCESSING_ERROR = Decline(
    "processing_error",
    "processing_error",
    "An error occurred while processing your card. Try again in a little bit.",
    "96",
    "try_again_later",
)
FRAUDULENT = Decline("card_declined", "fraudulent", "Your card was declined.", "59", "do_not_try_again")
VELOCITY_EXCEEDED = Decline(
    "card_declined",
    "card_velocity_exceeded",
    "Your card was declined for making repeated attempts too frequently or exceeding its amount limit.",
    "61",
    "try_again_later",
)
AUTHENTICATION_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
    "1A",
    None,
)

DECLINES_BY_CODE: dict[str, Decline] = {
    d.decline_code: d
    for d in (
        GENERIC_DECLINE,
        INSUFFICIENT_FUNDS,
        LOST_CARD,
        STOLEN_CARD,
        EXPIRED_CARD,
        INCORRECT_CVC,
        PROCESSING_ERROR,
        FRAUDULENT,
        VELOCITY_EXCEEDED,
        AUTHENTICATION_REQUIRED,
    )
}


def _declining(number: str, decline: Decline, brand: str = "visa") -> TestCard:
    return TestCard(number=number, brand=brand, behaviour=ChargeBehaviour.DECLINE, decline=decline)


VISA = TestCard("4242424242424242", "visa")

# Stripe documents most aliases both with and without the `visa_` infix; both are accepted.
TEST_PAYMENT_METHODS: dict[str, TestCard] = {
    "pm_card_visa": VISA,
    "pm_card_visa_debit": TestCard("4000056655665556", "visa", funding="debit"),
    "pm_card_mastercard": TestCard("5555555555554444", "mastercard"),
    "pm_card_mastercard_debit": TestCard("5200828282828210", "mastercard", funding="debit"),
    "pm_card_mastercard_prepaid": TestCard("5105105105105100", "mastercard", funding="prepaid"),
    "pm_card_amex": TestCard("378282246310005", "amex"),
    "pm_card_discover": TestCard("6011111111111117", "discover"),
    "pm_card_chargeDeclined": _declining("4000000000000002", GENERIC_DECLINE),
    "pm_card_visa_chargeDeclined": _declining("4000000000000002", GENERIC_DECLINE),
    # Attaches fine, every charge fails: Stripe's card for "a saved card that stopped working".
    "pm_card_chargeCustomerFail": _declining("4000000000000341", GENERIC_DECLINE),
    "pm_card_chargeDeclinedInsufficientFunds": _declining("4000000000009995", INSUFFICIENT_FUNDS),
    "pm_card_visa_chargeDeclinedInsufficientFunds": _declining("4000000000009995", INSUFFICIENT_FUNDS),
    "pm_card_chargeDeclinedLostCard": _declining("4000000000009987", LOST_CARD),
    "pm_card_visa_chargeDeclinedLostCard": _declining("4000000000009987", LOST_CARD),
    "pm_card_chargeDeclinedStolenCard": _declining("4000000000009979", STOLEN_CARD),
    "pm_card_visa_chargeDeclinedStolenCard": _declining("4000000000009979", STOLEN_CARD),
    "pm_card_chargeDeclinedExpiredCard": _declining("4000000000000069", EXPIRED_CARD),
    "pm_card_chargeDeclinedIncorrectCvc": _declining("4000000000000127", INCORRECT_CVC),
    "pm_card_chargeDeclinedProcessingError": _declining("4000000000000119", PROCESSING_ERROR),
    "pm_card_chargeDeclinedFraudulent": _declining("4100000000000019", FRAUDULENT),
    "pm_card_chargeDeclinedVelocityLimitExceeded": _declining("4000000000006975", VELOCITY_EXCEEDED),
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": _declining("4000000000006975", VELOCITY_EXCEEDED),
    "pm_card_authenticationRequired": TestCard(
        "4000002760003184",
        "visa",
        behaviour=ChargeBehaviour.REQUIRE_AUTHENTICATION,
        decline=AUTHENTICATION_REQUIRED,
    ),
    # Needs 3-D Secure when set up on-session, then succeeds off-session: the usual saved-card path.
    "pm_card_authenticationRequiredOnSetup": TestCard("4000002500003155", "visa"),
}

TEST_CARDS_BY_NUMBER: dict[str, TestCard] = {card.number: card for card in TEST_PAYMENT_METHODS.values()}


def card_for_number(number: str) -> TestCard:
    """A raw card number: a documented test card, else a card that succeeds (any Luhn-valid number)."""
    digits = number.replace(" ", "")
    if digits in TEST_CARDS_BY_NUMBER:
        return TEST_CARDS_BY_NUMBER[digits]
    brand = {"4": "visa", "5": "mastercard", "3": "amex", "6": "discover"}.get(digits[:1], "unknown")
    return TestCard(digits, brand)
