"""Decline classes: every row of recovery-rules.md's table and every Mastercard advice code."""

from __future__ import annotations

from datetime import timedelta

import pytest

from recovery_scheduler.domain.declines import DECLINE_RULES, MASTERCARD_ADVICE_RULES, DeclineClass, assess_decline

pytestmark = pytest.mark.unit

H = timedelta(hours=1)
D = timedelta(days=1)
NEVER, FIX, CUSTOMER, LATER, TECH = (
    DeclineClass.NEVER,
    DeclineClass.FIX,
    DeclineClass.CUSTOMER,
    DeclineClass.LATER,
    DeclineClass.TECHNICAL,
)

# (ISO codes, Stripe decline codes, class, earliest smart retry after the decline or None).
DECLINE_TABLE = [
    (["04"], ["pickup_card"], NEVER, None),
    (["07"], ["fraudulent"], NEVER, None),
    (["12"], ["transaction_not_allowed"], NEVER, None),
    (["14"], ["incorrect_number", "invalid_number"], NEVER, None),
    (["15"], ["invalid_account"], NEVER, None),
    (["41"], ["lost_card"], NEVER, None),
    (["43"], ["stolen_card"], NEVER, None),
    (["46"], ["invalid_account"], NEVER, None),
    (["57"], ["transaction_not_allowed"], NEVER, None),
    (
        ["R0", "R1", "R3"],
        ["stop_payment_order", "revocation_of_authorization", "revocation_of_all_authorizations"],
        NEVER,
        None,
    ),
    (["03"], ["invalid_merchant"], LATER, D),
    (["19"], ["reenter_transaction"], TECH, H),
    (["51"], ["insufficient_funds"], LATER, D),
    (["59", "63"], ["security_violation"], LATER, 3 * D),
    (["61", "65"], ["card_velocity_exceeded", "withdrawal_count_limit_exceeded"], LATER, D),
    (["62"], ["restricted_card"], LATER, 3 * D),
    (["78"], ["account_blocked"], LATER, 3 * D),
    (["91"], ["issuer_not_available"], TECH, H),
    (["96"], ["processing_error"], TECH, H),
    (["54"], ["expired_card"], FIX, None),
    (["82", "N7"], ["incorrect_cvc"], FIX, None),
    (["1A"], ["authentication_required"], CUSTOMER, None),
    (["01", "02"], ["call_issuer"], LATER, D),
    (["05"], ["do_not_honor", "generic_decline"], LATER, D),
    (["13"], ["invalid_amount"], LATER, D),
    ([], ["highest_risk_level", "merchant_blacklist"], NEVER, None),
]

ISO_CASES = [(code, cls, wait) for isos, _, cls, wait in DECLINE_TABLE for code in isos]
STRIPE_CASES = [(code, cls, wait) for _, stripes, cls, wait in DECLINE_TABLE for code in stripes]


@pytest.mark.parametrize(("code", "expected", "wait"), ISO_CASES)
def test_iso_code_maps_to_its_class_and_earliest_time(
    code: str, expected: DeclineClass, wait: timedelta | None
) -> None:
    for field in ("decline_code", "network_decline_code"):
        assessment = assess_decline(**{field: code})
        assert assessment.decline_class is expected, field
        assert assessment.earliest_wait == wait, field


@pytest.mark.parametrize(("code", "expected", "wait"), STRIPE_CASES)
def test_stripe_decline_code_maps_to_its_class_and_earliest_time(
    code: str, expected: DeclineClass, wait: timedelta | None
) -> None:
    assert assess_decline(decline_code=code).decline_class is expected
    assert assess_decline(decline_code=code).earliest_wait == wait
    assert assess_decline(decline_code=code.upper()).decline_class is expected


def test_the_data_table_has_every_row_of_the_rules() -> None:
    table_codes = {c for isos, stripes, _, _ in DECLINE_TABLE for c in (*isos, *stripes)}
    data_codes = {c for rule in DECLINE_RULES for c in (*rule.iso_codes, *rule.stripe_codes)}
    assert table_codes <= data_codes


# (MAC, class, network wait every algorithm obeys)
MAC_TABLE = [
    ("01", FIX, None),
    ("02", LATER, 72 * H),
    ("03", NEVER, None),
    ("04", FIX, None),
    ("21", NEVER, None),
    ("24", LATER, H),
    ("25", LATER, D),
    ("26", LATER, 2 * D),
    ("27", LATER, 4 * D),
    ("28", LATER, 6 * D),
    ("29", LATER, 8 * D),
    ("30", LATER, 10 * D),
]


@pytest.mark.parametrize(("mac", "expected", "network_wait"), MAC_TABLE)
def test_mastercard_advice_code_maps_to_its_class_and_wait(
    mac: str, expected: DeclineClass, network_wait: timedelta | None
) -> None:
    # A generic decline code under the advice: the MAC decides.
    assessment = assess_decline(decline_code="do_not_honor", network_advice_code=mac, card_network="MasterCard")
    assert assessment.decline_class is expected
    assert assessment.network_wait == network_wait
    if expected.retryable_off_session:
        assert assessment.earliest_wait == max(network_wait or D, D)
    else:
        assert assessment.earliest_wait is None


def test_every_mac_code_is_tested() -> None:
    assert {mac for mac, _, _ in MAC_TABLE} == set(MASTERCARD_ADVICE_RULES)


def test_mac_is_ignored_for_other_networks() -> None:
    assert (
        assess_decline(decline_code="insufficient_funds", network_advice_code="03", card_network="Visa").decline_class
        is LATER
    )


def test_mac_is_read_when_the_network_is_unknown() -> None:
    assert assess_decline(decline_code="insufficient_funds", network_advice_code="03").decline_class is NEVER


@pytest.mark.parametrize(
    ("advice", "expected"),
    [("do_not_try_again", NEVER), ("try_again_later", LATER), ("confirm_card_data", FIX)],
)
def test_stripe_advice_code_overrides_the_decline_code(advice: str, expected: DeclineClass) -> None:
    assert assess_decline(decline_code="reenter_transaction", advice_code=advice).decline_class is expected


def test_mac_overrides_stripe_advice() -> None:
    assessment = assess_decline(
        decline_code="do_not_honor",
        advice_code="confirm_card_data",
        network_advice_code="25",
        card_network="mastercard",
    )
    assert assessment.decline_class is LATER
    assert assessment.network_wait == D


def test_a_never_verdict_stands_against_softer_advice() -> None:
    assessment = assess_decline(decline_code="lost_card", network_advice_code="24", card_network="Mastercard")
    assert assessment.decline_class is NEVER


def test_same_class_advice_keeps_the_code_details() -> None:
    assessment = assess_decline(decline_code="insufficient_funds", network_advice_code="27", card_network="Mastercard")
    assert assessment.payday
    assert assessment.earliest_wait == 4 * D


def test_a_generic_code_yields_to_a_specific_one() -> None:
    assert assess_decline(decline_code="generic_decline", network_decline_code="54").decline_class is FIX
    assert assess_decline(error_code="card_declined", decline_code="stolen_card").decline_class is NEVER


def test_unknown_or_missing_codes_default_to_later() -> None:
    assert assess_decline().decline_class is LATER
    assert assess_decline(decline_code="something_new").decline_class is LATER
    assert assess_decline(decline_code="something_new").source == "default"


def test_single_digit_iso_codes_are_padded() -> None:
    assert assess_decline(network_decline_code="4").decline_class is NEVER


def test_stripes_own_refusal_of_a_card_declined_too_often_is_a_days_wait_for_every_algorithm() -> None:
    """`card_decline_rate_limit_exceeded`: Stripe refuses the card for 24 hours, whatever its issuer would say; the
    wait is a floor (`network_wait`), as network advice is, and a `never` code with it still stands."""
    refused = assess_decline(error_code="card_decline_rate_limit_exceeded")
    assert (refused.decline_class, refused.network_wait) == (LATER, D)
    assert refused.source.startswith("error_code=card_decline_rate_limit_exceeded")
    assert assess_decline(decline_code="stolen_card", error_code="card_decline_rate_limit_exceeded").decline_class is (
        NEVER
    )
