"""Monitoring as Hyperswitch counts it (the threshold from when the profile chose monitoring), and the horizon
every recovery ends at, whatever it waits for: monitoring, the billing system, a pause, a late next step."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from faststream.rabbit import TestRabbitBroker

from recovery_contracts.envelope import MessageType
from recovery_contracts.recovery import RecoveryPayment
from recovery_scheduler.domain.model import Attempt, AttemptOutcome
from recovery_scheduler.domain.planning import Planning
from recovery_scheduler.domain.plans import AttemptPlan, AwaitBillingPlan, MonitoringPlan
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.status import RecoveryStatus
from support.payments import scheduled

from .builders import T0, attempt_failed, monitoring_payment, payment, recovery_updated
from .fakes import CountingIds, Scheduler, in_memory_scheduler

HORIZON = timedelta(days=60)


def planning(now: datetime = T0, **fields: object) -> Planning:
    return Planning(now, random.Random(7), CountingIds(), card_budgets={}, **fields)  # type: ignore[arg-type]


def monitoring_since(profile_created_at: object, threshold_seconds: int = 3600) -> RecoveryPayment:
    base = monitoring_payment(threshold_seconds)
    retry = base.retry.model_copy(update={"profile_created_at": profile_created_at})
    return base.model_copy(update={"retry": retry})


def test_the_monitoring_threshold_counts_from_when_the_profile_chose_monitoring() -> None:
    """Hyperswitch's monitoring_configured_timestamp: a profile monitoring for two hours with a one-hour threshold
    has left monitoring, so a recovery it starts now runs the active algorithm at once."""
    started = Recovery.start(monitoring_since(T0 - timedelta(hours=2)), planning()).recovery

    assert started.algorithm.value == "cascading" and isinstance(started.plan, AttemptPlan)
    assert [n.what for n in started.history] == ["algorithm_switched", "attempt_planned"]


def test_a_recovery_started_during_the_profiles_monitoring_switches_when_the_profiles_period_ends() -> None:
    started = Recovery.start(monitoring_since(T0 - timedelta(minutes=45)), planning()).recovery

    plan = started.plan
    assert started.status is RecoveryStatus.MONITORING and isinstance(plan, MonitoringPlan)
    assert plan.switch_at == plan.due_at == T0 + timedelta(minutes=15)


def test_a_profile_that_turned_to_monitoring_later_counts_its_period_from_then_not_from_its_creation() -> None:
    # Created two hours ago in another algorithm, turned to monitoring 45 minutes ago: 15 minutes of it are left.
    base = monitoring_since(T0 - timedelta(hours=2))
    retry = base.retry.model_copy(update={"monitoring_configured_at": T0 - timedelta(minutes=45)})
    started = Recovery.start(base.model_copy(update={"retry": retry}), planning()).recovery

    plan = started.plan
    assert started.status is RecoveryStatus.MONITORING and isinstance(plan, MonitoringPlan)
    assert plan.switch_at == T0 + timedelta(minutes=15)


def test_monitoring_without_a_threshold_asks_again_at_the_horizon() -> None:
    change = Recovery.start(monitoring_payment(monitoring_seconds=0), planning())

    plan = change.recovery.plan
    assert isinstance(plan, MonitoringPlan) and plan.switch_at is None and plan.due_at == T0 + HORIZON
    [timer] = change.timers
    assert (timer.timer_id, timer.due_at) == (plan.timer_id, T0 + HORIZON)


def test_a_switch_after_the_horizon_asks_again_at_the_horizon() -> None:
    change = Recovery.start(monitoring_payment(monitoring_seconds=90 * 86_400), planning())

    plan = change.recovery.plan
    assert isinstance(plan, MonitoringPlan) and plan.switch_at == T0 + timedelta(days=90)
    assert plan.due_at == T0 + HORIZON


def test_the_horizon_is_business_time_under_the_time_scale() -> None:
    change = Recovery.start(monitoring_payment(monitoring_seconds=0), planning(time_scale=1000.0))

    assert change.timers[0].due_at == T0 + HORIZON / 1000


def test_waiting_for_the_billing_system_ends_at_the_horizon() -> None:
    waiting = payment(retry=payment().retry.model_copy(update={"billing_connector_retry_threshold": 5}))
    started = Recovery.start(waiting, planning()).recovery
    plan = started.plan
    assert isinstance(plan, AwaitBillingPlan) and plan.due_at == T0 + HORIZON

    ended = started.replanned(planning(now=T0 + HORIZON)).recovery

    assert (ended.status, ended.business_status) == (RecoveryStatus.FAILED, "FAILED_DUE_TO_HORIZON_REACHED")
    assert ended.history[-1].reason == "horizon_reached: 60 days of business time since the payment was created"


@pytest.fixture
async def short_horizon(requeues: list[int]) -> AsyncIterator[Scheduler]:
    """A scheduler whose recoveries last one day."""
    running = in_memory_scheduler(recovery_horizon_seconds=86_400)
    async with TestRabbitBroker(running.service.broker) as broker:
        running.broker = broker
        yield running


async def test_a_monitoring_recovery_ends_at_its_horizon_without_payment_failed(scheduler: Scheduler) -> None:
    recovery = monitoring_payment(monitoring_seconds=0)
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    assert scheduler.recovery(recovery.payment_id).status is RecoveryStatus.MONITORING

    scheduler.clock.current = T0 + HORIZON
    assert await scheduler.loop.fire_due() == 1

    ended = scheduler.recovery(recovery.payment_id)
    assert (ended.status, ended.business_status) == (RecoveryStatus.FAILED, "FAILED_DUE_TO_HORIZON_REACHED")
    assert ended.history[-1].details["outcome"] == "horizon_reached" and ended.ended_at == T0 + HORIZON
    # Nothing was charged: no payment_failed (Hyperswitch: only a failure "from our side").
    assert scheduler.published(MessageType.PAYMENT_FAILED) == []


async def test_a_paused_recovery_ends_at_its_horizon(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-scheduled", scheduled(recovery))
    await scheduler.send("scheduler.recovery-updated", recovery_updated(recovery, "pending_payment", version=2))

    scheduler.clock.current = T0 + HORIZON
    assert await scheduler.loop.fire_due() == 1

    ended = scheduler.recovery(recovery.payment_id)
    assert (ended.status, ended.paused) == (RecoveryStatus.FAILED, False)
    assert ended.business_status == "FAILED_DUE_TO_HORIZON_REACHED"


async def test_a_pause_seen_before_the_recovery_waits_until_the_horizon_too(scheduler: Scheduler) -> None:
    recovery = payment()
    await scheduler.send("scheduler.recovery-updated", recovery_updated(recovery, "pending_payment", version=2))

    tombstone = scheduler.recovery(recovery.payment_id)
    assert (tombstone.status, tombstone.version) == (RecoveryStatus.AWAITING_BILLING, 1)
    assert scheduler.timers.status_of(recovery.payment_id) == {f"replan:{recovery.payment_id}:1": "pending"}


async def test_an_attempt_that_would_fall_after_the_horizon_ends_the_recovery_with_payment_failed(
    short_horizon: Scheduler,
) -> None:
    """Two-day ladder steps, a one-day horizon: after the first decline the next step is past the horizon."""
    slow = payment(retry=payment().retry.model_copy(update={"ladder_seconds": (60, 2 * 86_400)}))
    await short_horizon.send("scheduler.recovery-scheduled", scheduled(slow))

    await short_horizon.send("scheduler.attempt-failed", attempt_failed(slow, 1))

    ended = short_horizon.recovery(slow.payment_id)
    assert (ended.status, ended.business_status) == (RecoveryStatus.FAILED, "FAILED_DUE_TO_HORIZON_REACHED")
    [failed] = short_horizon.published(MessageType.PAYMENT_FAILED)
    assert failed.payload.reason.startswith("horizon_reached: the next attempt (")
    assert failed.payload.business_status == "FAILED_DUE_TO_HORIZON_REACHED"


def test_a_wait_past_the_horizon_is_cut_to_the_horizon() -> None:
    """An unknown outcome rechecks in an hour; with the horizon half an hour away, the re-plan is at the horizon."""
    started = Recovery.start(payment(), planning()).recovery
    unknown = Attempt(
        number=1,
        attempt_id="12345_att_unknown",
        token="pm_card_visa",
        at=T0 + timedelta(minutes=5),
        outcome=AttemptOutcome.UNKNOWN,
    )
    pending = replace(started, attempts=(unknown,))
    half_an_hour_before = T0 + timedelta(hours=23, minutes=30)

    change = pending.replanned(planning(half_an_hour_before, horizon=timedelta(days=1)))

    [timer] = change.timers
    assert timer.due_at == T0 + timedelta(days=1)
    assert change.recovery.history[-1].reason.endswith("the recovery's horizon comes first: it ends then")
