"""The payment fence's rule: an accepted cancel and a charge sent to the connector never both happen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery_runtime.payment_fence import CancelAnswer, FenceVerdict, PaymentFence
from recovery_runtime.testing import InMemoryPaymentFences

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
PAY, ATTEMPT_1, ATTEMPT_2 = "12345_pay_1", "12345_pay_1:1", "12345_pay_1:2"

OPEN = PaymentFence(PAY)
HELD = PaymentFence(PAY, version=1, holder=ATTEMPT_1, lease_until=NOW + LEASE)
EXPIRED = PaymentFence(PAY, version=1, holder=ATTEMPT_1, lease_until=NOW - timedelta(seconds=1))
RELEASED = PaymentFence(PAY, version=2)
CANCELLED = PaymentFence(PAY, version=1, cancelled_at=NOW - timedelta(minutes=1))
PAID = PaymentFence(PAY, version=2, paid=True)


@pytest.mark.parametrize(
    ("fence", "holder", "verdict"),
    [
        (OPEN, ATTEMPT_1, FenceVerdict.GRANTED),
        (RELEASED, ATTEMPT_2, FenceVerdict.GRANTED),  # the next attempt, once the previous one settled
        (HELD, ATTEMPT_1, FenceVerdict.GRANTED),  # renewed: a take-over re-sends the same idempotency key
        (HELD, ATTEMPT_2, FenceVerdict.CHARGING),
        (EXPIRED, ATTEMPT_2, FenceVerdict.GRANTED),  # a killed executor does not block the payment for ever
        (CANCELLED, ATTEMPT_1, FenceVerdict.CANCELLED),
        (PAID, ATTEMPT_2, FenceVerdict.PAID),
    ],
)
def test_a_charge_lease_is_granted_only_where_no_cancel_or_other_charge_stands(
    fence: PaymentFence, holder: str, verdict: FenceVerdict
) -> None:
    answer, after = fence.hold(holder, NOW, NOW + LEASE)

    assert answer is verdict
    if verdict is FenceVerdict.GRANTED:
        assert (after.holder, after.lease_until, after.version) == (holder, NOW + LEASE, fence.version + 1)
    else:
        assert after == fence


@pytest.mark.parametrize(
    ("fence", "verdict"),
    [
        (OPEN, FenceVerdict.GRANTED),
        (RELEASED, FenceVerdict.GRANTED),
        (EXPIRED, FenceVerdict.GRANTED),
        (HELD, FenceVerdict.CHARGING),
        (PAID, FenceVerdict.PAID),
        (CANCELLED, FenceVerdict.GRANTED),  # a cancel sent again is accepted again, nothing changes
    ],
)
def test_a_cancel_is_accepted_only_while_no_attempt_is_being_charged(
    fence: PaymentFence, verdict: FenceVerdict
) -> None:
    answer, after = fence.cancel(NOW)

    assert answer is verdict
    if fence is CANCELLED or verdict is not FenceVerdict.GRANTED:
        assert after == fence
    else:
        assert after.cancelled_at == NOW and after.holder is None and after.version == fence.version + 1
        # From then on no lease, for any attempt.
        assert after.hold(ATTEMPT_2, NOW + LEASE, NOW + 2 * LEASE)[0] is FenceVerdict.CANCELLED


def test_a_lease_ends_when_its_attempt_settles_and_a_success_fences_off_both_sides() -> None:
    _, declined = HELD.released(ATTEMPT_1, paid=False)
    assert declined.holder is None and not declined.paid
    assert declined.cancel(NOW)[0] is FenceVerdict.GRANTED

    _, succeeded = HELD.released(ATTEMPT_1, paid=True)
    assert succeeded.paid and succeeded.holder is None
    assert succeeded.cancel(NOW)[0] is FenceVerdict.PAID
    assert succeeded.hold(ATTEMPT_2, NOW, NOW + LEASE)[0] is FenceVerdict.PAID


def test_only_the_holder_releases_a_lease() -> None:
    taken_over = PaymentFence(PAY, version=3, holder=ATTEMPT_2, lease_until=NOW + LEASE)

    _, after = taken_over.released(ATTEMPT_1, paid=False)

    assert after == taken_over
    # A success found later (PSYNC after the lease expired) is still recorded.
    assert EXPIRED.released(ATTEMPT_2, paid=True)[1].paid


async def test_the_in_memory_fences_apply_the_same_rule_record_by_record() -> None:
    fences = InMemoryPaymentFences()

    assert await fences.hold_for_charge(PAY, ATTEMPT_1, NOW, NOW + LEASE) is FenceVerdict.GRANTED
    # A cancel refused by a lease names the lease's end (when to try again at the latest).
    assert await fences.cancel(PAY, NOW) == CancelAnswer(FenceVerdict.CHARGING, NOW + LEASE)
    assert await fences.cancel("12345_pay_2", NOW) == CancelAnswer(FenceVerdict.GRANTED)
    await fences.release(PAY, ATTEMPT_1, paid=False)
    assert await fences.cancel(PAY, NOW) == CancelAnswer(FenceVerdict.GRANTED)
    assert await fences.hold_for_charge(PAY, ATTEMPT_2, NOW, NOW + LEASE) is FenceVerdict.CANCELLED
