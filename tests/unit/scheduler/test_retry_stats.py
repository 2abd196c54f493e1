"""The retry statistics' rules: the key an attempt counts under, its UTC buckets, the sums a reader gets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from recovery_contracts.payments import ErrorDetails
from recovery_contracts.recovery import PaymentToken
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import Attempt, AttemptOutcome
from recovery_scheduler.domain.planning import Change
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.retry_stats import (
    Bucketing,
    Counts,
    RetryStats,
    StatsKey,
    funding_of,
    merged,
    retry_outcomes,
    standard_decline_code,
)

from .builders import T0, payment


@pytest.mark.parametrize(
    ("codes", "error", "standard"),
    [
        (("51", None, None), False, "insufficient_funds"),
        (("insufficient_funds", None, None), False, "insufficient_funds"),
        (("1", None, None), False, "call_issuer"),  # ISO 01, written without its zero
        (("generic_decline", "51", "card_declined"), False, "insufficient_funds"),  # a catch-all yields
        (("05", None, None), False, "do_not_honor"),
        ((None, None, "card_declined"), False, "card_declined"),
        (("zz_unheard_of", None, None), False, "unrecognised"),
        ((None, None, None), True, "connector_error"),
        ((None, None, "processing_error"), True, "processing_error"),
    ],
)
def test_a_decline_is_named_by_its_decline_table_row_whatever_field_or_spelling_named_it(
    codes: tuple[str | None, str | None, str | None], error: bool, standard: str
) -> None:
    assert standard_decline_code(*codes, error=error) == standard


@pytest.mark.parametrize(
    ("card_type", "funding"),
    [("credit", "credit"), ("DEBIT", "debit"), ("prepaid debit", "prepaid"), ("charge", "unknown"), (None, "unknown")],
)
def test_funding_comes_from_the_card_type(card_type: str | None, funding: str) -> None:
    assert funding_of(card_type).value == funding


def card(token: str, network: str | None, card_type: str | None) -> PaymentToken:
    return PaymentToken(token=token, card_network=network, card_type=card_type)


def recovery_with(*attempts: Attempt) -> Recovery:
    tokens = (card("pm_visa", "Visa", "debit"), card("pm_mc", "MasterCard", None))
    first = ErrorDetails(code="05", message="Do not honor", network_decline_code="51")
    recovery = Recovery.new(payment(first_error=first).model_copy(update={"tokens": tokens}), T0)
    return replace(recovery, attempts=attempts)


def declined(number: int, token: str, decline_code: str | None, outcome: AttemptOutcome = AttemptOutcome.DECLINED):
    at = T0 + timedelta(days=number)
    return Attempt(
        number=number,
        attempt_id=f"att_{number}",
        token=token,
        at=at,
        outcome=outcome,
        codes=DeclineCodes(decline_code=decline_code),
    )


def test_each_attempt_a_change_adds_counts_under_the_decline_that_led_to_it_and_the_card_charged() -> None:
    before = recovery_with(declined(1, "pm_visa", "insufficient_funds"))
    after = replace(
        before,
        attempts=(
            *before.attempts,
            declined(2, "pm_mc", None, AttemptOutcome.ERROR),
            declined(3, "pm_visa", None, AttemptOutcome.SUCCEEDED),
        ),
    )

    counted = retry_outcomes(Change(before, after))

    assert [(o.attempt_id, o.key, o.succeeded) for o in counted] == [
        ("att_2", StatsKey("merchant_test", "insufficient_funds", "mastercard", "unknown"), False),
        ("att_3", StatsKey("merchant_test", "connector_error", "visa", "debit"), True),
    ]
    # The first attempt of this system follows the billing system's failure (05 yields to the network's 51).
    [first] = retry_outcomes(Change(recovery_with(), before))
    assert first.key == StatsKey("merchant_test", "insufficient_funds", "visa", "debit")


def test_an_outcome_already_recorded_counts_nothing() -> None:
    recovery = recovery_with(declined(1, "pm_visa", "insufficient_funds"))

    assert retry_outcomes(Change(recovery, recovery)) == ()


def test_without_a_known_first_failure_or_card_the_key_says_unknown() -> None:
    recovery = recovery_with(declined(1, "pm_gone", "insufficient_funds"))
    recovery = replace(recovery, payment=recovery.payment.model_copy(update={"first_error": None}))

    [outcome] = retry_outcomes(Change(replace(recovery, attempts=()), recovery))

    assert outcome.key == StatsKey("merchant_test", "unknown", "unknown", "unknown")


def test_the_buckets_are_those_of_the_attempt_in_utc() -> None:
    # Sunday 01:30 at UTC+2 is Saturday 23:30 UTC, the 17th.
    at = datetime(2026, 1, 18, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    recovery = recovery_with(replace(declined(1, "pm_visa", None, AttemptOutcome.SUCCEEDED), at=at))

    [outcome] = retry_outcomes(Change(recovery_with(), recovery))

    assert outcome.at == datetime(2026, 1, 17, 23, 30, tzinfo=UTC)
    assert outcome.increments() == {
        "attempts": 1,
        "successes": 1,
        "day_of_week.sat.attempts": 1,
        "day_of_week.sat.successes": 1,
        "day_of_month.d17.attempts": 1,
        "day_of_month.d17.successes": 1,
        "hour_of_day.h23.attempts": 1,
        "hour_of_day.h23.successes": 1,
    }
    declines = replace(outcome, succeeded=False).increments()
    assert declines == {
        "attempts": 1,
        "day_of_week.sat.attempts": 1,
        "day_of_month.d17.attempts": 1,
        "hour_of_day.h23.attempts": 1,
    }


def test_a_key_stored_in_parts_reads_as_their_sum_and_the_most_attempted_key_comes_first() -> None:
    often = StatsKey("m", "insufficient_funds", "visa", "credit")
    rarely = StatsKey("m", "do_not_honor", "visa", "credit")
    part = {"attempts": 3, "successes": 1, "hour_of_day": {"h09": {"attempts": 3, "successes": 1}}}
    other = {"attempts": 2, "hour_of_day": {"h09": {"attempts": 1}, "h10": {"attempts": 1}}}

    stats = merged(
        [
            RetryStats.from_counters(rarely, {"attempts": 4}),
            RetryStats.from_counters(often, part),
            RetryStats.from_counters(often, other),
        ]
    )

    assert [s.key for s in stats] == [often, rarely]
    assert stats[0].total == Counts(5, 1) and stats[0].total.success_rate == 0.2
    assert stats[0].bucket(Bucketing.HOUR_OF_DAY, 9) == Counts(4, 1)
    assert stats[0].bucket(Bucketing.HOUR_OF_DAY, 10).success_rate == 0.0
    assert stats[0].bucket(Bucketing.DAY_OF_MONTH, 31) == Counts() and Counts().success_rate is None
    assert [len(stats[0].by[b]) for b in Bucketing] == [7, 31, 24]
