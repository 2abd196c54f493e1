"""The alternative issuer models say what their docstrings say."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from recovery_simulator.issuer import AttemptContext, PastDecline
from recovery_simulator.models import BusinessDays, Churning

pytestmark = pytest.mark.unit

FAILED = datetime(2026, 5, 4, 12, tzinfo=UTC)  # a Monday


def _attempt(invoice: str, at: datetime, code: str = "do_not_honor", offset_hours: int = 0) -> AttemptContext:
    local = at + timedelta(hours=offset_hours)
    return AttemptContext(
        invoice=invoice,
        card_network="Visa",
        funding="debit",
        issuer_country="US",
        amount=2500,
        currency="USD",
        attempt_number=1,
        at=at,
        since_first_failure=at - FAILED,
        local_time=local,
        day_of_month=local.day,
        declines=(PastDecline(FAILED, code),),
    )


def test_a_churned_customer_is_never_approved_again() -> None:
    model = Churning()
    for n in range(40):
        invoice = f"in_{n}"
        churned = model.churn_time(_attempt(invoice, FAILED))
        after = _attempt(invoice, churned + timedelta(minutes=1), "processing_error")
        assert not any(model.outcome(after, random.Random(i)).approved for i in range(20))


def test_before_churning_a_technical_decline_still_clears() -> None:
    model = Churning()
    approved = 0
    for n in range(40):
        at = FAILED + timedelta(hours=8)
        attempt = _attempt(f"in_{n}", at, "processing_error")
        if model.churn_time(attempt) > at:
            approved += model.outcome(attempt, random.Random(n)).approved
    assert approved > 10


def test_business_days_move_a_weekend_resolution_to_monday_morning() -> None:
    model = BusinessDays()
    moved = 0
    for n in range(200):
        attempt = _attempt(f"in_{n}", FAILED + timedelta(days=1), "insufficient_funds", offset_hours=-5)
        resolved = model.resolution_time(attempt)
        if resolved is None:
            continue
        local = resolved - timedelta(hours=5)
        assert local.weekday() < 5
        if local.weekday() == 0 and (local.hour, local.minute) == (6, 0):
            moved += 1
    assert moved > 0
