"""The retry statistics the scheduler keeps from the executor's outcomes: each attempt counted once, and read
through the internal endpoint intake forwards `/v2/revenue-recovery/retry-stats` to."""

from __future__ import annotations

import httpx

from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_scheduler.domain.retry_stats import Counts, StatsKey
from support.payments import scheduled

from .builders import attempt_failed, payment, payment_succeeded
from .fakes import Scheduler

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
