"""The scheduler against real RabbitMQ and the MongoDB-wire server: plans, timers, terminal failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import AttemptOutcome, DeliverWebhook, PaymentAttemptFailed, ScheduleTimer
from recovery_contracts.recovery import RetryAlgorithm
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_scheduler.app import build_service
from recovery_scheduler.settings import SchedulerSettings
from support.broker import broker_probe, eventually
from support.payments import payment_succeeded, recovery_payment, scheduled
from support.services import settings_for
from support.stack import Isolation

# A poll far longer than any wait below: what fires in time was not found by a poll.
LONG_POLL_SECONDS = 60.0


@pytest.fixture
def scheduler(serve: Any, isolation: Isolation) -> Any:
    return serve(build_service(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))


@pytest.fixture
def slow_polling_scheduler(serve: Any, isolation: Isolation) -> Any:
    return serve(build_service(settings_for(SchedulerSettings, isolation, timer_poll_seconds=LONG_POLL_SECONDS)))


def failed(command: dict[str, Any], decline_code: str) -> Envelope[PaymentAttemptFailed]:
    payload = command["payload"]
    return Envelope[PaymentAttemptFailed](
        type=MessageType.PAYMENT_ATTEMPT_FAILED,
        correlation_id=payload["payment"]["payment_id"],
        merchant_id=command["merchant_id"],
        profile_id=command["profile_id"],
        payload=PaymentAttemptFailed(
            payment_id=payload["payment"]["payment_id"],
            attempt_id=payload["attempt_id"],
            attempt_number=payload["attempt_number"],
            token=payload["token"]["token"],
            outcome=AttemptOutcome.DECLINED,
            decline_code=decline_code,
            error_code="card_declined",
            message="declined",
            attempted_at=datetime.now(UTC),
        ),
    )


def duplicates(queue: str) -> float:
    """Copies of messages the scheduler found applied already (this process's counter)."""
    return REGISTRY.get_sample_value("recovery_messages_consumed_total", {"queue": queue, "result": "duplicate"}) or 0


async def test_recovery_is_planned_on_the_ladder_and_each_planned_attempt_is_commanded_once(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    payment = recovery_payment()
    message = scheduled(payment)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(message)
        await broker.publish(message)  # a redelivery: same message id
        await broker.publish(scheduled(payment))  # the same event published twice: another message id
        first = await broker.take_json("executor.execute-retry")
        assert first["payload"]["attempt_number"] == 1
        assert first["payload"]["total_retry_count"] == 2
        assert first["correlation_id"] == payment.payment_id

        await broker.publish(failed(first, "insufficient_funds"))
        second = await broker.take_json("executor.execute-retry")
        assert second["payload"]["attempt_number"] == 2
        assert second["payload"]["token"]["token"] == "pm_card_visa"
        assert await broker.depth("executor.execute-retry") == 0

    assert db.recoveries.count_documents({}) == 1
    recovery = db.recoveries.find_one({"_id": payment.payment_id})
    assert recovery["status"] == "scheduled"
    assert [a["number"] for a in recovery["attempts"]] == [1]
    assert recovery["plan"]["attempt_number"] == 2
    timers = list(db.timers.find({"payment_id": payment.payment_id}))
    assert sorted(t["_id"] for t in timers) == [f"execute:{payment.payment_id}:1", f"execute:{payment.payment_id}:2"]


async def test_hard_decline_on_the_only_token_ends_the_recovery_with_payment_failed(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    payment = recovery_payment()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(scheduled(payment))
        first = await broker.take_json("executor.execute-retry")
        await broker.publish(failed(first, "lost_card"))
        ended = await broker.take_json("dispatcher.payment-failed")
        assert ended["payload"]["business_status"] == "FAILED_DUE_TO_HARD_DECLINE_ERROR"
        assert ended["payload"]["payment"]["status"] == "failed"
        assert ended["payload"]["payment"]["error"]["code"] == "lost_card"
        assert ended["payload"]["attempt_id"] == first["payload"]["attempt_id"]
        # The intake's projection hears of it too; no further charge is commanded.
        await broker.take_json("intake.payment-failed")
        assert await broker.depth("executor.execute-retry") == 0

    recovery = await eventually(lambda: db.recoveries.find_one({"_id": payment.payment_id, "status": "failed"}))
    assert recovery["hard_declined_tokens"] == ["pm_card_visa"]
    assert db.timers.count_documents({"payment_id": payment.payment_id, "status": "pending"}) == 0


async def test_a_malformed_message_is_dead_lettered_with_its_reason(scheduler: Any, isolation: Isolation) -> None:
    payment = recovery_payment()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish_raw(b'{"type": "recovery.scheduled"}', "recovery.events", "recovery.scheduled")
        dead = await broker.take("scheduler.recovery-scheduled.dlq")
        assert "payload: Field required" in dead.headers["x-rejection-reason"]
        await broker.publish(scheduled(payment))
        assert (await broker.take_json("executor.execute-retry"))["correlation_id"] == payment.payment_id


async def test_a_new_recovery_is_written_once_and_its_later_plans_get_timers_of_their_own(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    """The first plan inserts the recovery with its plan (version 1, as insert-then-save gave) and its timer
    without a look-up; the next plan's timer id must not collide with it (ids follow the version)."""
    base = recovery_payment(algorithm=RetryAlgorithm.MONITORING)
    # Monitoring for a business hour (3.6 s at TIME_SCALE 1000), then cascading, which waits for the billing
    # system's own retries (threshold 5): its plan is a re-plan at the horizon, on a timer of its own.
    retry = base.retry.model_copy(update={"monitoring_threshold_seconds": 3600, "billing_connector_retry_threshold": 5})
    payment = base.model_copy(update={"retry": retry, "created_at": datetime.now(UTC)})
    message = scheduled(payment)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(message)
        await broker.publish(message)  # a redelivery: the inserted recovery carries the message's id
    recovery = await eventually(lambda: db.recoveries.find_one({"_id": payment.payment_id}))
    assert recovery["version"] == 1 and recovery["status"] == "monitoring"
    assert recovery["plan"]["kind"] == "monitoring" and recovery["plan"]["shadow"]["kind"] == "AwaitBillingSystem"
    assert recovery["plan"]["timer_id"] == f"replan:{payment.payment_id}:1"
    assert [h["what"] for h in recovery["history"]] == ["monitoring"]
    assert recovery["applied_messages"] == [f"scheduler.recovery-scheduled:{message.message_id}"]

    def timers() -> dict[str, str]:
        return {t["_id"]: t["status"] for t in db.timers.find({"payment_id": payment.payment_id})}

    # The monitoring period ends: the re-plan fires, cascading takes over and waits on a timer of its own.
    await eventually(lambda: timers().get(f"replan:{payment.payment_id}:2") == "pending", timeout=30)
    assert timers()[f"replan:{payment.payment_id}:1"] == "fired"
    recovery = db.recoveries.find_one({"_id": payment.payment_id})
    assert (recovery["version"], recovery["algorithm"], recovery["status"]) == (2, "cascading", "awaiting_billing")
    assert recovery["plan"]["timer_id"] == f"replan:{payment.payment_id}:2"


async def test_an_attempt_planned_due_now_is_commanded_at_once_not_at_the_next_poll(
    slow_polling_scheduler: Any, isolation: Isolation
) -> None:
    """The scheduler stores the attempt's timer and wakes its own timer loop once the write is committed: the first
    attempt (due ~0.06-0.4 s after planning at TIME_SCALE 1000) and the one planned after a decline are commanded
    when due, although the loop's next poll is a minute away."""
    payment = recovery_payment()
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(scheduled(payment))
        first = await broker.take_json("executor.execute-retry", timeout=5.0)
        assert first["payload"]["attempt_number"] == 1
        await broker.publish(failed(first, "insufficient_funds"))
        second = await broker.take_json("executor.execute-retry", timeout=5.0)
        assert second["payload"]["attempt_number"] == 2


async def test_a_timer_another_service_asks_for_due_now_fires_at_once_not_at_the_next_poll(
    slow_polling_scheduler: Any, isolation: Isolation
) -> None:
    deliver = Envelope[DeliverWebhook](
        type=MessageType.DELIVER_WEBHOOK,
        correlation_id="pay_wake",
        payload=DeliverWebhook(initial_attempt_id="evt_wake", retry_index=1),
    )
    request = Envelope[ScheduleTimer](
        type=MessageType.SCHEDULE_TIMER,
        correlation_id="pay_wake",
        payload=ScheduleTimer(
            timer_id="webhook:evt_wake:1",
            due_at=datetime.now(UTC),
            kind="webhook_retry",
            payment_id="pay_wake",
            message=deliver.model_dump(mode="json"),
        ),
    )
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(request)
        fired = await broker.take_json("dispatcher.deliver-webhook", timeout=5.0)
    assert fired["message_id"] == deliver.message_id


async def test_monitoring_recoveries_run_the_active_algorithm_once_the_profiles_threshold_has_passed(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    """Hyperswitch counts the monitoring threshold from when the profile chose monitoring, not from each payment:
    a profile monitoring since yesterday with a one-hour threshold has left monitoring."""
    base = recovery_payment(algorithm=RetryAlgorithm.MONITORING)
    since_yesterday = {
        "monitoring_threshold_seconds": 3600,
        "profile_created_at": datetime.now(UTC) - timedelta(days=1),
    }
    payment = base.model_copy(update={"retry": base.retry.model_copy(update=since_yesterday)})
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(scheduled(payment))
        command = await broker.take_json("executor.execute-retry")
    assert command["payload"]["payment"]["payment_id"] == payment.payment_id
    recovery = db.recoveries.find_one({"_id": payment.payment_id})
    assert recovery["algorithm"] == "cascading"
    assert recovery["history"][0]["what"] == "algorithm_switched"


async def test_a_monitoring_recovery_without_a_threshold_ends_at_its_horizon(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    # A horizon of 3,000 business seconds: 3 s at TIME_SCALE 1000.
    settings = settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05, recovery_horizon_seconds=3000)
    serve(build_service(settings))
    payment = recovery_payment(algorithm=RetryAlgorithm.MONITORING)
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(scheduled(payment))
        recovery = await eventually(
            lambda: db.recoveries.find_one({"_id": payment.payment_id, "status": "failed"}), timeout=30
        )
        # Nothing was charged, so no payment_failed (Hyperswitch: only a failure "from our side").
        assert await broker.depth("dispatcher.payment-failed") == 0
    assert recovery["business_status"] == "FAILED_DUE_TO_HORIZON_REACHED"
    assert recovery["history"][-1]["reason"].startswith("horizon_reached: ")
    assert db.timers.count_documents({"payment_id": payment.payment_id, "status": "pending"}) == 0


async def test_each_attempt_counts_once_in_the_retry_statistics_which_its_merchant_reads(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    """Both outcomes delivered twice: the copies are recognised, and the counts (the failure's in its transaction,
    the success's written after its one-document write) stay one per attempt."""
    payment = recovery_payment()
    queues = ("scheduler.attempt-failed", "scheduler.payment-succeeded")
    seen = [duplicates(queue) for queue in queues]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(scheduled(payment))
        first = await broker.take_json("executor.execute-retry")
        failure = failed(first, "51")
        await broker.publish(failure)
        await broker.publish(failure)
        second = await broker.take_json("executor.execute-retry")
        success = payment_succeeded(
            payment, attempt_id=second["payload"]["attempt_id"], attempt_number=second["payload"]["attempt_number"]
        )
        await broker.publish(success)
        await broker.publish(success)
    await eventually(lambda: [duplicates(queue) for queue in queues] == [n + 1 for n in seen])

    def stored_counts() -> dict[str, Any] | None:
        docs = {d["decline_code"]: d for d in db.retry_stats.find({"merchant_id": payment.merchant_id})}
        # The success's count is written in the background after its one-document write (within a second).
        return docs if docs.get("insufficient_funds", {}).get("counts", {}).get("successes") else None

    stored = await eventually(stored_counts)
    # The first attempt follows the billing system's failure (code 110: no row of the decline table).
    assert stored["unrecognised"]["counts"]["attempts"] == 1 and "successes" not in stored["unrecognised"]["counts"]
    assert (
        stored["insufficient_funds"]["counts"]["attempts"] == stored["insufficient_funds"]["counts"]["successes"] == 1
    )
    assert (stored["insufficient_funds"]["card_network"], stored["insufficient_funds"]["funding"]) == (
        "visa",
        "unknown",
    )
    assert sum(c.get("attempts", 0) for c in stored["insufficient_funds"]["counts"]["hour_of_day"].values()) == 1

    headers = {TOKEN_HEADER: SchedulerSettings().internal_api_token, MERCHANT_HEADER: payment.merchant_id}
    async with httpx.AsyncClient(base_url=scheduler.url, headers=headers) as http:
        answer = await http.get(f"/internal/retry-stats/{payment.merchant_id}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["attempts"], body["successes"], body["success_rate"]) == (2, 1, 0.5)
    retried = next(group for group in body["data"] if group["decline_code"] == "insufficient_funds")
    assert (retried["attempts"], retried["successes"], retried["success_rate"]) == (1, 1, 1.0)
    assert sum(b["successes"] for b in retried["hour_of_day"]) == 1
