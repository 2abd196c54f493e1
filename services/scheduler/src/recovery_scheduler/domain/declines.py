"""Decline classes: what a decline, the processor's advice and the network's advice say about retrying.

Source: recovery-rules.md (Visa Core Rules decline categories, Stripe decline and advice codes, Mastercard
Merchant Advice Codes). Waits marked `network_wait` are network advice every algorithm obeys; `wait` is the
smart algorithm's backoff policy for the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from enum import StrEnum

from recovery_contracts.messages import PAYMENT_METHOD_UNUSABLE
from recovery_contracts.payments import ErrorDetails

from .networks import CardNetwork, normalize_card_network


class DeclineClass(StrEnum):
    NEVER = "never"  # hard decline: never charge this credential again
    FIX = "fix"  # retry only after the card data changes (new card, account updater)
    CUSTOMER = "customer"  # the customer must act on-session; no off-session retry
    LATER = "later"  # soft decline: retry after a wait, within network budgets
    TECHNICAL = "technical"  # issuer or processor trouble: retry soon

    @property
    def retryable_off_session(self) -> bool:
        return self in (DeclineClass.LATER, DeclineClass.TECHNICAL)


HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class DeclineRule:
    """One row of the decline table: ISO/Visa codes and Stripe decline codes that mean the same thing."""

    iso_codes: tuple[str, ...]
    stripe_codes: tuple[str, ...]
    meaning: str
    visa_category: int | None
    decline_class: DeclineClass
    # The smart algorithm's minimum wait after this decline (None: no off-session retry at all).
    wait: timedelta | None
    # At most this many retries after the first decline of this kind on one token ("few retries").
    retry_cap: int | None = None
    # Insufficient funds: aim the retry at a payday window.
    payday: bool = False
    # A catch-all code that yields to a more specific code from another field.
    generic: bool = False


_NEVER, _FIX, _CUSTOMER, _LATER, _TECH = (
    DeclineClass.NEVER,
    DeclineClass.FIX,
    DeclineClass.CUSTOMER,
    DeclineClass.LATER,
    DeclineClass.TECHNICAL,
)

# recovery-rules.md section 2, every row, in its order.
DECLINE_RULES: tuple[DeclineRule, ...] = (
    DeclineRule(("04",), ("pickup_card",), "pick up card", 1, _NEVER, None),
    DeclineRule(("07",), ("fraudulent",), "pick up, fraud", 1, _NEVER, None),
    DeclineRule(("12",), ("transaction_not_allowed",), "invalid transaction", 1, _NEVER, None),
    DeclineRule(("14",), ("incorrect_number", "invalid_number"), "invalid account number", 1, _NEVER, None),
    DeclineRule(("15",), ("invalid_account",), "no such issuer", 1, _NEVER, None),
    DeclineRule(("41",), ("lost_card",), "lost card", 1, _NEVER, None),
    DeclineRule(("43",), ("stolen_card",), "stolen card", 1, _NEVER, None),
    DeclineRule(("46",), ("invalid_account",), "closed account", 1, _NEVER, None),
    DeclineRule(("57",), ("transaction_not_allowed",), "not permitted to cardholder", 1, _NEVER, None),
    DeclineRule(
        ("R0", "R1", "R3"),
        ("stop_payment_order", "revocation_of_authorization", "revocation_of_all_authorizations"),
        "stop payment / revocation (treat as cancellation)",
        1,
        _NEVER,
        None,
    ),
    # Merchant-side: one more try after a day, then stop spending the customer's budget on our problem.
    DeclineRule(("03",), ("invalid_merchant",), "invalid merchant", 2, _LATER, DAY, retry_cap=1),
    DeclineRule(("19",), ("reenter_transaction",), "re-enter transaction", 2, _TECH, HOUR),
    DeclineRule(("51",), ("insufficient_funds",), "insufficient funds", 2, _LATER, DAY, payday=True),
    DeclineRule(
        ("59", "63"),
        ("security_violation",),
        "suspected fraud / security violation",
        2,
        _LATER,
        3 * DAY,
        retry_cap=2,
    ),
    DeclineRule(
        ("61", "65"),
        ("card_velocity_exceeded", "withdrawal_count_limit_exceeded"),
        "amount / frequency limit exceeded",
        2,
        _LATER,
        DAY,
    ),
    DeclineRule(("62",), ("restricted_card",), "restricted card", 2, _LATER, 3 * DAY, retry_cap=2),
    DeclineRule(("78",), ("account_blocked",), "blocked / first use", 2, _LATER, 3 * DAY),
    DeclineRule(("91",), ("issuer_not_available",), "issuer unavailable", 2, _TECH, HOUR),
    DeclineRule(("96",), ("processing_error",), "system malfunction", 2, _TECH, HOUR),
    DeclineRule(("54",), ("expired_card",), "expired card", 3, _FIX, None),
    DeclineRule(("82", "N7"), ("incorrect_cvc",), "CVV failure", 3, _FIX, None),
    DeclineRule(("1A",), ("authentication_required",), "authentication required", 4, _CUSTOMER, None),
    DeclineRule(("01", "02"), ("call_issuer",), "refer to issuer", 4, _LATER, DAY),
    DeclineRule(
        ("05",),
        ("do_not_honor", "generic_decline"),
        "do not honor (most common generic decline)",
        4,
        _LATER,
        DAY,
        generic=True,
    ),
    # "later / fix" in the table: Visa puts it in category 4 (retryable), so later, capped.
    DeclineRule(("13",), ("invalid_amount",), "invalid amount", 4, _LATER, DAY, retry_cap=2),
    DeclineRule((), ("highest_risk_level", "merchant_blacklist"), "processor risk block", None, _NEVER, None),
    # Stripe's error `code` for every decline (the detail is in decline_code) and its unknown-reason code.
    DeclineRule((), ("card_declined", "try_again_later"), "declined, no reason given", None, _LATER, DAY, generic=True),
)


def _build_index(rules: tuple[DeclineRule, ...], iso: bool) -> Mapping[str, DeclineRule]:
    index: dict[str, DeclineRule] = {}
    for rule in rules:
        for code in rule.iso_codes if iso else rule.stripe_codes:
            index.setdefault(code, rule)
    return index


ISO_CODE_RULES: Mapping[str, DeclineRule] = _build_index(DECLINE_RULES, iso=True)
STRIPE_CODE_RULES: Mapping[str, DeclineRule] = _build_index(DECLINE_RULES, iso=False)


@dataclass(frozen=True)
class AdviceRule:
    decline_class: DeclineClass
    # Network advice is obeyed by every algorithm (None: no wait given).
    network_wait: timedelta | None
    meaning: str


# Mastercard Merchant Advice Codes (recovery-rules.md section 2).
MASTERCARD_ADVICE_RULES: Mapping[str, AdviceRule] = {
    "01": AdviceRule(_FIX, None, "new account information available"),
    "02": AdviceRule(_LATER, 72 * HOUR, "cannot approve at this time, try again later (processors: 72 h)"),
    "03": AdviceRule(_NEVER, None, "do not try again (fee per resubmission within 30 days)"),
    "04": AdviceRule(_FIX, None, "token requirements not fulfilled for this token type"),
    "21": AdviceRule(_NEVER, None, "recurring payment cancelled: end the subscription"),
    "24": AdviceRule(_LATER, HOUR, "retry after 1 hour"),
    "25": AdviceRule(_LATER, DAY, "retry after 24 hours"),
    "26": AdviceRule(_LATER, 2 * DAY, "retry after 2 days"),
    "27": AdviceRule(_LATER, 4 * DAY, "retry after 4 days"),
    "28": AdviceRule(_LATER, 6 * DAY, "retry after 6 days"),
    "29": AdviceRule(_LATER, 8 * DAY, "retry after 8 days"),
    "30": AdviceRule(_LATER, 10 * DAY, "retry after 10 days"),
}

# Stripe `advice_code` on a decline.
STRIPE_ADVICE_RULES: Mapping[str, AdviceRule] = {
    "do_not_try_again": AdviceRule(_NEVER, None, "Stripe: do not try again"),
    "try_again_later": AdviceRule(_LATER, None, "Stripe: try again later"),
    "confirm_card_data": AdviceRule(_FIX, None, "Stripe: the card data must be confirmed or updated"),
}

# Stripe's own refusals of a card, whatever its issuer would say (Stripe error `code`): a wait every algorithm obeys,
# as network advice is. `card_decline_rate_limit_exceeded`: "You have exceeded the maximum number of declines on
# this card in the last 24 hour period": Stripe refuses the card until a day has passed, so a retry sooner is lost.
PROCESSOR_RULES: Mapping[str, AdviceRule] = {
    "card_decline_rate_limit_exceeded": AdviceRule(
        _LATER, DAY, "Stripe: too many declines on this card in 24 hours, retry after a day"
    ),
}

# Policy waits of the smart algorithm for a class when no table row gives one.
DEFAULT_CLASS_WAIT: Mapping[DeclineClass, timedelta | None] = {
    _NEVER: None,
    _FIX: None,
    _CUSTOMER: None,
    _LATER: DAY,
    _TECH: HOUR,
}


@dataclass(frozen=True)
class DeclineAssessment:
    """What one decline means for retrying: its class, the waits and where the verdict came from."""

    decline_class: DeclineClass
    # Smart's policy backoff after the decline.
    wait: timedelta | None
    # Network advice (Mastercard MAC): a floor for every algorithm.
    network_wait: timedelta | None = None
    retry_cap: int | None = None
    payday: bool = False
    # e.g. "network_advice_code=25", "advice_code=try_again_later", "decline_code=51", "default".
    source: str = "default"
    rule: DeclineRule | None = None

    @property
    def earliest_wait(self) -> timedelta | None:
        """The wait before the smart algorithm may retry (None: not off-session, ever)."""
        if not self.decline_class.retryable_off_session:
            return None
        waits = [w for w in (self.wait, self.network_wait) if w is not None]
        return max(waits) if waits else timedelta(0)


DEFAULT_ASSESSMENT = DeclineAssessment(DeclineClass.LATER, DAY, source="default")
TECHNICAL_ERROR_ASSESSMENT = DeclineAssessment(DeclineClass.TECHNICAL, HOUR, source="connector error")
UNUSABLE_PAYMENT_METHOD_ASSESSMENT = DeclineAssessment(
    DeclineClass.FIX, None, source=f"error_code={PAYMENT_METHOD_UNUSABLE} (the connector refused the saved method)"
)


@dataclass(frozen=True)
class DeclineCodes:
    """The codes one decline carries, as the connector reports them (all optional: a success or an error carries
    none or some). Their names are the wire's (`PaymentAttemptFailed`) and `assess_decline`'s."""

    decline_code: str | None = None  # Stripe decline_code or an ISO code ("51")
    error_code: str | None = None  # Stripe error code ("card_declined", "expired_card", ...)
    advice_code: str | None = None  # Stripe advice_code
    network_advice_code: str | None = None  # Mastercard MAC ("01".."30")
    network_decline_code: str | None = None  # ISO/Visa response code

    @classmethod
    def of(cls, source: object) -> DeclineCodes:
        """The codes `source` carries under these names (a `PaymentAttemptFailed`, an issuer's answer); a name it
        does not have is None."""
        return cls(**{f.name: getattr(source, f.name, None) for f in fields(cls)})

    @property
    def empty(self) -> bool:
        return self == NO_DECLINE_CODES

    def assessment(self, card_network: str | None) -> DeclineAssessment:
        """What this decline means for retrying on a card of `card_network`."""
        return assess_decline(card_network=card_network, **vars(self))

    def error_assessment(self) -> DeclineAssessment:
        """What an attempt the connector refused before any authorization (an `error`) means: technical trouble,
        retried soon; but a saved method the connector will not charge any more (`PAYMENT_METHOD_UNUSABLE`:
        detached, another customer's) waits for the card data to change, as a `fix` decline does."""
        if self.error_code == PAYMENT_METHOD_UNUSABLE:
            return UNUSABLE_PAYMENT_METHOD_ASSESSMENT
        return TECHNICAL_ERROR_ASSESSMENT


NO_DECLINE_CODES = DeclineCodes()


def first_failure_codes(first: ErrorDetails | None) -> DeclineCodes:
    """The billing system's failure as the planner reads it: its one `code` may be a decline code or an error code."""
    if first is None:
        return NO_DECLINE_CODES
    return DeclineCodes(
        decline_code=first.code,
        error_code=first.code,
        network_advice_code=first.network_advice_code,
        network_decline_code=first.network_decline_code,
    )


def _normalize_iso(code: str) -> str:
    code = code.strip().upper()
    return code.zfill(2) if code.isdigit() and len(code) == 1 else code


def _rule_for_code(code: str | None) -> DeclineRule | None:
    if code is None or not code.strip():
        return None
    return STRIPE_CODE_RULES.get(code.strip().lower()) or ISO_CODE_RULES.get(_normalize_iso(code))


def matching_rule(
    decline_code: str | None, network_decline_code: str | None = None, error_code: str | None = None
) -> tuple[str, DeclineRule] | None:
    """The table row the codes of a decline name, and which field named it (`decline_code=51`); None: no row.
    A catch-all (generic_decline, 05, card_declined) yields to a specific code in another field."""
    found: list[tuple[str, DeclineRule]] = []
    for field, code in (
        ("decline_code", decline_code),
        ("network_decline_code", network_decline_code),
        ("error_code", error_code),
    ):
        rule = _rule_for_code(code)
        if rule is not None:
            found.append((f"{field}={code}", rule))
    if not found:
        return None
    return next(((s, r) for s, r in found if not r.generic), found[0])


def _code_assessment(
    decline_code: str | None, network_decline_code: str | None, error_code: str | None
) -> DeclineAssessment | None:
    matched = matching_rule(decline_code, network_decline_code, error_code)
    if matched is None:
        return None
    source, rule = matched
    return DeclineAssessment(
        rule.decline_class, rule.wait, retry_cap=rule.retry_cap, payday=rule.payday, source=source, rule=rule
    )


def _overlay(base: DeclineAssessment, advice: AdviceRule, source: str) -> DeclineAssessment:
    """Higher-precedence advice decides the class; a code of the same class keeps its details."""
    if advice.decline_class is base.decline_class:
        network_wait = max((w for w in (base.network_wait, advice.network_wait) if w is not None), default=None)
        return replace(base, network_wait=network_wait, source=f"{source}; {base.source}")
    return DeclineAssessment(
        advice.decline_class,
        DEFAULT_CLASS_WAIT[advice.decline_class],
        network_wait=advice.network_wait,
        source=source,
    )


def assess_decline(
    decline_code: str | None = None,
    error_code: str | None = None,
    advice_code: str | None = None,
    network_advice_code: str | None = None,
    card_network: str | None = None,
    network_decline_code: str | None = None,
) -> DeclineAssessment:
    """Classify a decline with precedence MAC > Stripe advice_code > Stripe's own refusal (`PROCESSOR_RULES`) >
    decline code > default.

    One exception, for safety: a `never` verdict from any source stands, whatever softer advice says.
    MACs are read only for Mastercard cards or cards of unknown network.
    """
    code = _code_assessment(decline_code, network_decline_code, error_code)
    assessment = code or DEFAULT_ASSESSMENT
    processor = PROCESSOR_RULES.get((error_code or "").strip().lower())
    if processor is not None:
        assessment = _overlay(assessment, processor, f"error_code={error_code}")
    stripe_advice = STRIPE_ADVICE_RULES.get((advice_code or "").strip().lower())
    if stripe_advice is not None:
        assessment = _overlay(assessment, stripe_advice, f"advice_code={advice_code}")
    network = normalize_card_network(card_network)
    mac = (
        MASTERCARD_ADVICE_RULES.get(_normalize_iso(network_advice_code))
        if network_advice_code and network in (CardNetwork.MASTERCARD, None)
        else None
    )
    if mac is not None:
        assessment = _overlay(assessment, mac, f"network_advice_code={network_advice_code}")
    if assessment.decline_class is not DeclineClass.NEVER:
        for verdict in (code, stripe_advice):
            if verdict is not None and verdict.decline_class is DeclineClass.NEVER:
                source = verdict.source if isinstance(verdict, DeclineAssessment) else f"advice_code={advice_code}"
                return DeclineAssessment(DeclineClass.NEVER, None, source=f"{source} (never stands)")
    return assessment
