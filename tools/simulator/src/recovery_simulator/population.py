"""A seeded population of failed invoice payments: card network, funding, issuer country, amount, currency, the
first decline (Stripe decline code, advice code, Mastercard advice), whether the account updater refreshes an
expired card and, optionally, which payments' billing country the billing system does not know.

The mixes are ASSUMPTIONS (stated here, shown in docs/simulator.md), shaped by public figures: Visa and Mastercard
carry most card volume; insufficient funds and generic "do not honor" are the most common soft declines; expired
cards are a large share of involuntary churn; account updaters (Visa Account Updater, Mastercard ABU) refresh a
majority of expired cards.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

START = datetime(2026, 5, 1, tzinfo=UTC)

NETWORKS = (("Visa", 0.55), ("Mastercard", 0.35), ("AmericanExpress", 0.07), ("Discover", 0.03))
FUNDING = (("credit", 0.55), ("debit", 0.40), ("prepaid", 0.05))
# country, share, UTC offset (hours), currency
COUNTRIES = (
    ("US", 0.45, -5, "USD"),
    ("GB", 0.12, 0, "GBP"),
    ("DE", 0.10, 1, "EUR"),
    ("FR", 0.07, 1, "EUR"),
    ("CA", 0.06, -5, "CAD"),
    ("AU", 0.05, 10, "AUD"),
    ("BR", 0.05, -3, "BRL"),
    ("IN", 0.05, 5, "INR"),
    ("JP", 0.05, 9, "JPY"),
)
# Minor units per USD minor unit (fixed, for summing recovered amounts in USD cents; JPY has no minor unit).
USD_PER_MINOR = {"USD": 1.0, "GBP": 1.27, "EUR": 1.08, "CAD": 0.73, "AUD": 0.66, "BRL": 0.18, "INR": 0.012, "JPY": 0.64}
# First decline (Stripe decline code), its share of failed renewals.
FIRST_DECLINES = (
    ("insufficient_funds", 0.40),
    ("do_not_honor", 0.17),
    ("generic_decline", 0.08),
    ("card_velocity_exceeded", 0.03),
    ("processing_error", 0.04),
    ("issuer_not_available", 0.02),
    ("call_issuer", 0.02),
    ("expired_card", 0.10),
    ("incorrect_cvc", 0.01),
    ("authentication_required", 0.03),
    ("lost_card", 0.02),
    ("stolen_card", 0.01),
    ("pickup_card", 0.01),
    ("fraudulent", 0.01),
    ("transaction_not_allowed", 0.02),
    ("invalid_account", 0.01),
    ("security_violation", 0.01),
    ("restricted_card", 0.01),
)
# Debit and prepaid cards run out of funds more often (assumption): insufficient funds weighs this much more.
INSUFFICIENT_FUNDS_WEIGHT = {"credit": 0.8, "debit": 1.4, "prepaid": 2.0}
# Stripe's advice_code where Stripe sends it (share of declines of that code carrying it).
STRIPE_ADVICE = {
    "insufficient_funds": ("try_again_later", 0.5),
    "expired_card": ("confirm_card_data", 0.8),
    "incorrect_cvc": ("confirm_card_data", 0.8),
    "lost_card": ("do_not_try_again", 0.9),
    "stolen_card": ("do_not_try_again", 0.9),
    "pickup_card": ("do_not_try_again", 0.9),
    "fraudulent": ("do_not_try_again", 0.9),
}
# Mastercard Merchant Advice Codes on a first decline (Mastercard cards only).
MASTERCARD_ADVICE = {
    "lost_card": ("03", 0.5),
    "stolen_card": ("03", 0.5),
    "card_velocity_exceeded": ("25", 0.6),
    "do_not_honor": ("02", 0.2),
    "expired_card": ("01", 0.5),
}
ACCOUNT_UPDATER_SHARE = 0.6  # expired cards the account updater refreshes...
ACCOUNT_UPDATER_DAYS = (1, 10)  # ... this many days after the failure (uniform)


@dataclass(frozen=True)
class FailedPayment:
    invoice: str
    card_network: str
    funding: str
    issuer_country: str
    utc_offset_hours: int
    amount: int  # minor units
    currency: str
    failed_at: datetime  # the billing system's failed charge: the recovery starts here
    decline_code: str
    advice_code: str | None = None
    network_advice_code: str | None = None
    # When the account updater refreshes the card (expired cards), or None.
    card_updated_at: datetime | None = None
    # False: the billing system sent no billing address, so the scheduler does not know the customer's country
    # (the issuer, and the issuer model, still live at `utc_offset_hours`).
    billing_country_known: bool = True

    @property
    def usd_minor(self) -> int:
        return round(self.amount * USD_PER_MINOR.get(self.currency, 1.0))


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([name for name, _ in table], weights=[w for _, w in table])[0]


def _first_decline(rng: random.Random, funding: str) -> str:
    weights = [
        w * (INSUFFICIENT_FUNDS_WEIGHT[funding] if c == "insufficient_funds" else 1.0) for c, w in FIRST_DECLINES
    ]
    return rng.choices([c for c, _ in FIRST_DECLINES], weights=weights)[0]


def generate_population(
    count: int, seed: int, start: datetime = START, spread_days: int = 30, unknown_country_share: float = 0.0
) -> list[FailedPayment]:
    """`count` failed payments, first failures spread over `spread_days` from `start`. Deterministic for `seed`.

    `unknown_country_share`: the share of payments whose billing country the billing system does not send (many
    send no billing address). Drawn from a generator of its own, so the payments are otherwise the same as with
    the share 0 (and with 0, the same as without the option)."""
    if not 0.0 <= unknown_country_share <= 1.0:
        raise ValueError(f"unknown_country_share must be between 0 and 1, not {unknown_country_share}")
    rng = random.Random(seed)
    country_rng = random.Random(f"{seed}:country") if unknown_country_share > 0 else None
    payments = []
    for index in range(count):
        network = _pick(rng, NETWORKS)
        funding = _pick(rng, FUNDING)
        country, _, offset, currency = rng.choices(COUNTRIES, weights=[c[1] for c in COUNTRIES])[0]
        dollars = math.exp(rng.gauss(math.log(25.0), 0.8))  # median 25 USD, long tail
        amount = max(100, round(dollars * 100 / USD_PER_MINOR[currency]))
        if currency == "JPY":
            amount = round(amount, -1)
        failed_at = start + timedelta(seconds=rng.randrange(spread_days * 86400))
        code = _first_decline(rng, funding)
        advice = None
        if code in STRIPE_ADVICE and rng.random() < STRIPE_ADVICE[code][1]:
            advice = STRIPE_ADVICE[code][0]
        mac = None
        if network == "Mastercard" and code in MASTERCARD_ADVICE and rng.random() < MASTERCARD_ADVICE[code][1]:
            mac = MASTERCARD_ADVICE[code][0]
        updated = None
        if code == "expired_card" and rng.random() < ACCOUNT_UPDATER_SHARE:
            updated = failed_at + timedelta(days=rng.uniform(*ACCOUNT_UPDATER_DAYS))
        known = country_rng is None or country_rng.random() >= unknown_country_share
        payments.append(
            FailedPayment(
                invoice=f"in_{seed}_{index:06d}",
                card_network=network,
                funding=funding,
                issuer_country=country,
                utc_offset_hours=offset,
                amount=amount,
                currency=currency,
                failed_at=failed_at,
                decline_code=code,
                advice_code=advice,
                network_advice_code=mac,
                card_updated_at=updated,
                billing_country_known=known,
            )
        )
    return payments
