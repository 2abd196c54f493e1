"""The retry statistics the scheduler keeps from the executor's outcomes: each attempt counted once, and read
through the internal endpoint intake forwards `/v2/revenue-recovery/retry-stats` to."""

from __future__ import annotations

from datetime import timedelta

import httpx
from faststream.rabbit import TestRabbitBroker

from recovery_contracts.recovery import RecoveryPayment, RetryAlgorithm
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_scheduler.domain.plans import AttemptPlan
from recovery_scheduler.domain.retry_stats import Counts, RetryOutcome, StatsKey
from support.payments import scheduled

from .builders import T0, attempt_failed, payment, payment_succeeded
from .fakes import Scheduler, in_memory_scheduler

FAILED = "scheduler.attempt-failed"
SUCCEEDED = "scheduler.payment-succeeded"
# The billing system's failure in the builders' payment (code 110) names no row of the decline table.
AFTER_BILLING = StatsKey("merchant_test", "unrecognised", "visa", "unknown")
AFTER_INSUFFICIENT_FUNDS = StatsKey("merchant_test", "insufficient_funds", "visa", "unknown")


async def counts(scheduler: Scheduler) -> dict[StatsKey, Counts]:
    return {s.key: s.total for s in await scheduler.retry_stats.of_merchant("merchant_test")}


async def test_each_outcome_counts_once_however_often_it_is_delivered(
    scheduler: Scheduler, requeues: list[int]
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    failure, success = attempt_failed(recovery, 1, "51"), payment_succeeded(recovery, attempt_number=2)

    await scheduler.send(FAILED, failure)
    await scheduler.send(FAILED, failure)  # redelivered
    await scheduler.send(FAILED, attempt_failed(recovery, 1, "51"))  # the same attempt under another message id
    await scheduler.send(SUCCEEDED, success)
    await scheduler.send(SUCCEEDED, success)

    assert await counts(scheduler) == {AFTER_BILLING: Counts(1, 0), AFTER_INSUFFICIENT_FUNDS: Counts(1, 1)}
    assert [o.attempt_id for o in scheduler.retry_stats.counted] == ["12345_att_failed_1", "12345_att_ok_2"]
    assert requeues == []


async def test_the_merchant_reads_its_statistics_grouped_by_key_with_buckets_and_rates(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    first, second = payment(), payment()
    for recovery in (first, second):
        await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
        await scheduler.send(FAILED, attempt_failed(recovery, 1, "insufficient_funds"))
    await scheduler.send(FAILED, attempt_failed(first, 2, "insufficient_funds"))
    await scheduler.send(SUCCEEDED, payment_succeeded(second, attempt_number=2))

    answer = await operator.get("/internal/retry-stats/merchant_test")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["merchant_id"], body["time_zone"]) == ("merchant_test", "UTC")
    assert (body["attempts"], body["successes"], body["success_rate"]) == (4, 1, 0.25)
    retried, opening = body["data"]  # the most attempted key first
    assert (opening["decline_code"], opening["attempts"], opening["successes"]) == ("unrecognised", 2, 0)
    assert (retried["decline_code"], retried["card_network"], retried["funding"]) == (
        "insufficient_funds",
        "visa",
        "unknown",
    )
    assert (retried["attempts"], retried["successes"], retried["success_rate"]) == (2, 1, 0.5)
    # Every attempt at the builders' 2026-01-15 12:05 UTC: a Thursday, the 15th, hour 12.
    assert [len(retried[b]) for b in ("day_of_week", "day_of_month", "hour_of_day")] == [7, 31, 24]
    assert retried["day_of_week"][3] == {"bucket": 4, "attempts": 2, "successes": 1, "success_rate": 0.5}
    assert retried["day_of_month"][14]["attempts"] == 2 and retried["hour_of_day"][12]["successes"] == 1
    assert retried["hour_of_day"][11] == {"bucket": 11, "attempts": 0, "successes": 0, "success_rate": None}


async def test_only_the_merchant_itself_with_the_internal_token_is_answered(
    scheduler: Scheduler, operator: httpx.AsyncClient
) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send(FAILED, attempt_failed(recovery, 1))

    other = await operator.get("/internal/retry-stats/merchant_test", headers={MERCHANT_HEADER: "merchant_other"})
    elsewhere = await operator.get("/internal/retry-stats/merchant_other", headers={MERCHANT_HEADER: "merchant_other"})
    untrusted = await operator.get("/internal/retry-stats/merchant_test", headers={TOKEN_HEADER: "guess"})

    assert other.status_code == 404 and other.json()["error"]["code"] == "HE_02"
    assert elsewhere.status_code == 200 and elsewhere.json()["data"] == []
    assert untrusted.status_code == 403


def _taught(scheduler: Scheduler, key: StatsKey, good_hour: int) -> None:
    """The merchant's earlier retries under `key`: 20 an hour, 2 approved, except 12 at `good_hour`."""
    for hour in range(24):
        at = T0.replace(hour=hour, minute=30)
        for n in range(20):
            approved = n < (12 if hour == good_hour else 2)
            scheduler.retry_stats.counted.append(RetryOutcome(key, "pay_earlier", f"att_{hour}_{n}", at, approved))


async def _first_plan(scheduler: Scheduler, recovery: RecoveryPayment) -> AttemptPlan:
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    plan = scheduler.recovery(recovery.payment_id).plan
    assert isinstance(plan, AttemptPlan)
    return plan


async def test_smart_plans_at_the_hour_the_merchants_own_retries_succeed_most() -> None:
    on = in_memory_scheduler(smart_learned_hours=True)
    async with TestRabbitBroker(on.service.broker) as broker:
        on.broker = broker
        before = await _first_plan(on, payment(algorithm=RetryAlgorithm.SMART))
        good_hour = (before.planned_at.replace(minute=0) + timedelta(hours=1)).hour
        _taught(on, AFTER_BILLING, good_hour)
        after = await _first_plan(on, payment(algorithm=RetryAlgorithm.SMART))
        cascading = await _first_plan(on, payment())

    assert after.planned_at.hour == good_hour and after.planned_at > before.planned_at
    assert "learned hours" in after.reason and "learned hours" not in before.reason
    assert "learned hours" not in cascading.reason  # cascading reads no statistics


async def test_by_default_smart_plans_from_its_rules_alone(scheduler: Scheduler) -> None:
    before = await _first_plan(scheduler, payment(algorithm=RetryAlgorithm.SMART))
    _taught(scheduler, AFTER_BILLING, (before.planned_at.hour + 1) % 24)
    after = await _first_plan(scheduler, payment(algorithm=RetryAlgorithm.SMART))
    # The same hour (the jitter aside), the rules' reason: SMART_LEARNED_HOURS is off unless switched on.
    assert after.planned_at.hour == before.planned_at.hour and "learned hours" not in after.reason
