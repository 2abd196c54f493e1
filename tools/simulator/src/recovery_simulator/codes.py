"""The simulator's own reading of recovery-rules.md section 2: which decline codes and advice codes mean what.

Deliberately independent of the scheduler's `declines.py`: the rule checker must not share the planner's
bookkeeping, or a bug in one would hide in the other.
"""

from __future__ import annotations

from datetime import timedelta

NEVER, FIX, CUSTOMER, LATER, TECHNICAL = "never", "fix", "customer", "later", "technical"

# recovery-rules.md section 2 (Visa category 1 rows, the processor risk block).
NEVER_CODES = frozenset(
    {
        "pickup_card",
        "fraudulent",
        "transaction_not_allowed",
        "incorrect_number",
        "invalid_number",
        "invalid_account",
        "lost_card",
        "stolen_card",
        "stop_payment_order",
        "revocation_of_authorization",
        "revocation_of_all_authorizations",
        "highest_risk_level",
        "merchant_blacklist",
    }
)
FIX_CODES = frozenset({"expired_card", "incorrect_cvc"})
CUSTOMER_CODES = frozenset({"authentication_required"})
TECHNICAL_CODES = frozenset({"reenter_transaction", "issuer_not_available", "processing_error"})

# Stripe advice_code and Mastercard Merchant Advice Codes (network advice wins over the processor's).
STRIPE_ADVICE = {"do_not_try_again": NEVER, "try_again_later": LATER, "confirm_card_data": FIX}
MASTERCARD_ADVICE = {"01": FIX, "02": LATER, "03": NEVER, "04": FIX, "21": NEVER}
MASTERCARD_WAITS = {
    "24": timedelta(hours=1),
    "25": timedelta(hours=24),
    "26": timedelta(days=2),
    "27": timedelta(days=4),
    "28": timedelta(days=6),
    "29": timedelta(days=8),
    "30": timedelta(days=10),
}


def decline_class(code: str | None, advice_code: str | None = None, network_advice_code: str | None = None) -> str:
    """Precedence: Mastercard advice > Stripe advice > decline code > later."""
    if network_advice_code in MASTERCARD_ADVICE:
        return MASTERCARD_ADVICE[network_advice_code]
    if advice_code in STRIPE_ADVICE:
        return STRIPE_ADVICE[advice_code]
    if code in NEVER_CODES:
        return NEVER
    if code in FIX_CODES:
        return FIX
    if code in CUSTOMER_CODES:
        return CUSTOMER
    if code in TECHNICAL_CODES:
        return TECHNICAL
    return LATER


def report_group(code: str) -> str:
    """The group a payment is reported under (by its first decline): insufficient funds apart from other soft
    declines, since it is where payday timing matters."""
    if code == "insufficient_funds":
        return "insufficient_funds"
    cls = decline_class(code)
    return "other_later" if cls == LATER else cls
