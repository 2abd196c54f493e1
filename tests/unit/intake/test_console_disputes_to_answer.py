"""The Overview's "Disputes to answer" of known read-side answers at a fixed `now`: by when to answer (those without
a deadline first, then the nearest), at most five, amounts in major units, the deadline in UTC with how long is left,
urgent within 72 hours or past, "not given" (and not urgent) without a deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest

from recovery_intake.console import views
from recovery_intake.console.formatting import time_left

from .test_console_overview import NOW, dispute_to_answer


def test_the_disputes_to_answer_are_shaped_nearest_deadline_first() -> None:
    answered = [
        dispute_to_answer("pay_later", "2250", "USD", NOW + timedelta(days=4), reason=None),
        dispute_to_answer("pay_soon", "500", "JPY", NOW + timedelta(hours=5, minutes=59)),
        dispute_to_answer("pay_none", "1000", "EUR", None, reason="general"),
        dispute_to_answer("pay_overdue", "4500", "USD", NOW - timedelta(minutes=1)),
    ]

    rows = views.disputes_to_answer(answered, NOW)

    assert rows == [
        views.DisputeToAnswer("pay_none", "dsp_pay_none", "EUR 10.00", "general", "not given", "", urgent=False),
        views.DisputeToAnswer(
            "pay_overdue", "dsp_pay_overdue", "USD 45.00", "fraudulent", "2026-01-15 11:59:00 UTC", "overdue", True
        ),
        views.DisputeToAnswer(
            "pay_soon", "dsp_pay_soon", "JPY 500", "fraudulent", "2026-01-15 17:59:00 UTC", "in 5 hours", True
        ),
        views.DisputeToAnswer(
            "pay_later", "dsp_pay_later", "USD 22.50", "—", "2026-01-19 12:00:00 UTC", "in 4 days", False
        ),
    ]


@pytest.mark.parametrize(
    ("left", "urgent"),
    [
        (timedelta(hours=72), True),  # within 72 hours, the bound included
        (timedelta(hours=72, seconds=1), False),
        (timedelta(hours=71, minutes=59), True),
        (timedelta(0), True),  # the deadline is now: overdue
        (-timedelta(days=10), True),
    ],
)
def test_a_dispute_is_urgent_within_72_hours_of_its_deadline_or_past_it(left: timedelta, urgent: bool) -> None:
    [row] = views.disputes_to_answer([dispute_to_answer("pay_1", "100", "USD", NOW + left)], NOW)

    assert row.urgent is urgent


def test_at_most_five_disputes_are_shown() -> None:
    answered = [dispute_to_answer(f"pay_{n}", "100", "USD", NOW + timedelta(days=n)) for n in range(7, 0, -1)]

    rows = views.disputes_to_answer(answered, NOW)

    assert [row.payment_id for row in rows] == ["pay_1", "pay_2", "pay_3", "pay_4", "pay_5"]


@pytest.mark.parametrize(
    ("left", "shown"),
    [
        (timedelta(days=2, hours=23), "in 2 days"),  # rounded down: never more time than there is
        (timedelta(days=1), "in 1 day"),
        (timedelta(hours=23, minutes=59), "in 23 hours"),
        (timedelta(hours=5), "in 5 hours"),
        (timedelta(hours=1), "in 1 hour"),
        (timedelta(minutes=59), "in 59 minutes"),
        (timedelta(minutes=1), "in 1 minute"),
        (timedelta(seconds=30), "in less than a minute"),
        (timedelta(0), "overdue"),
        (-timedelta(seconds=1), "overdue"),
        (-timedelta(days=3), "overdue"),
    ],
)
def test_how_long_is_left_until_a_deadline(left: timedelta, shown: str) -> None:
    assert time_left(NOW + left, NOW) == shown
