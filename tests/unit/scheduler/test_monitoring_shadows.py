"""Monitoring compares: at each planning step it records what cascading and smart would do (the same planner,
nothing charged), in the plan, in the timeline, and in the process-tracker answer."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

import httpx

from recovery_contracts.envelope import MessageType
from recovery_contracts.payments import ErrorDetails
from recovery_contracts.recovery import RetryAlgorithm
from recovery_runtime.internal_api import MERCHANT_HEADER, TOKEN_HEADER
from recovery_scheduler.domain.config import RetryConfig
from recovery_scheduler.domain.declines import DeclineCodes
from recovery_scheduler.domain.model import Algorithm, AwaitBillingSystem, Observe, ScheduleAttempt
from recovery_scheduler.domain.planner import decide_next
from recovery_scheduler.domain.planning import Planning
from recovery_scheduler.domain.plans import MonitoringPlan
from recovery_scheduler.domain.recovery import Recovery
from recovery_scheduler.domain.status import RecoveryStatus
from recovery_scheduler.http import tracker_view
from recovery_scheduler.settings import SchedulerSettings
from support.payments import scheduled

from . import retry_builders as planner
from .builders import T0, monitoring_payment, recovery_updated
from .fakes import CountingIds, Scheduler


def planning(now: datetime = T0) -> Planning:
    return Planning(now, random.Random(7), CountingIds(), card_budgets={})  # type: ignore[arg-type]


def test_monitoring_records_what_cascading_and_smart_would_each_decide() -> None:
    config = RetryConfig(monitoring_threshold=timedelta(days=3))
    monitored = planner.view(
        Algorithm.MONITORING, first_codes=DeclineCodes(error_code="insufficient_funds"), billing_retry_count=1
    )

    decision = decide_next(monitored, planner.T0, config, random.Random(5))

    assert isinstance(decision, Observe) and decision.active is Algorithm.CASCADING
    assert list(decision.shadows) == [Algorithm.CASCADING, Algorithm.SMART]
    # Each shadow is that algorithm's own decision (the same randomness, drawn in the same order).
    rng = random.Random(5)
    as_cascading = decide_next(replace(monitored, algorithm=Algorithm.CASCADING), planner.T0, config, rng)
    as_smart = decide_next(replace(monitored, algorithm=Algorithm.SMART), planner.T0, config, rng)
    assert decision.shadows == {Algorithm.CASCADING: as_cascading, Algorithm.SMART: as_smart}
    cascading, smart = decision.shadows.values()
    assert isinstance(cascading, ScheduleAttempt) and cascading.reason.startswith("cascading ladder step 1")
    # Insufficient funds: smart waits hours (its cadence's first step) where cascading's ladder retries within
    # minutes.
    assert isinstance(smart, ScheduleAttempt) and smart.reason.startswith("smart: ")
    assert "insufficient_funds cadence" in smart.reason
    assert smart.at - planner.T0 >= timedelta(hours=4) > cascading.at - planner.T0
    assert decision.shadow is cascading


def test_the_active_algorithm_is_the_shadow_that_takes_over() -> None:
    config = RetryConfig(active_algorithm=Algorithm.SMART)
    decision = decide_next(planner.view(Algorithm.MONITORING), planner.T0, config, random.Random(1))
    assert isinstance(decision, Observe) and decision.active is Algorithm.SMART
    assert decision.shadow is decision.shadows[Algorithm.SMART]
    assert set(decision.shadows) == {Algorithm.CASCADING, Algorithm.SMART}


def test_shadows_wait_for_the_billing_system_like_the_algorithms_would() -> None:
    config = RetryConfig(billing_connector_retry_threshold=3)
    decision = decide_next(planner.view(Algorithm.MONITORING), planner.T0, config, random.Random(1))
    assert isinstance(decision, Observe)
    assert all(isinstance(shadow, AwaitBillingSystem) for shadow in decision.shadows.values())


def test_a_monitoring_recovery_keeps_both_shadow_plans_in_its_plan_and_timeline_at_each_step() -> None:
    first = monitoring_payment(monitoring_seconds=7 * 86400)
    first = first.model_copy(update={"first_error": ErrorDetails(code="insufficient_funds", message="nsf")})
    started = Recovery.start(first, planning()).recovery

    plan = started.plan
    assert started.status is RecoveryStatus.MONITORING and isinstance(plan, MonitoringPlan)
    assert list(plan.shadows) == ["cascading", "smart"] and plan.shadow == plan.shadows["cascading"]
    assert plan.shadows["smart"]["reason"].startswith("smart: ")  # type: ignore[union-attr]
    [note] = started.history
    assert note.what == "monitoring" and note.details["shadows"] == plan.shadows
    assert note.details["active"] == "cascading"
    assert "cascading would attempt 1 with pm_card_visa at " in note.reason
    assert "; smart would attempt 1 with pm_card_visa at " in note.reason

    # The billing system reports another failure: the comparison is made again, a line of its own.
    again = first.model_copy(update={"billing_retry_count": 2})
    later = planning(T0 + timedelta(hours=2))
    change = started.updated(recovery_updated(again, "schedule_failed_payment", 2).payload, later)
    replanned = change.recovery
    assert [n.what for n in replanned.history].count("monitoring") == 2
    assert replanned.history[-1].details["shadows"] == replanned.plan.shadows  # type: ignore[union-attr]
    assert replanned.history[-1].at == T0 + timedelta(hours=2)
    # Nothing is charged in monitoring: no attempt timer; the one message tells the read side of the comparison.
    assert all(t.timer_id.startswith("replan:") for t in change.timers)
    [message] = change.messages
    assert message.type is MessageType.RECOVERY_SHADOW_PLANNED and message.correlation_id == first.payment_id
    planned = message.payload
    assert (planned.active_algorithm, planned.at) == (RetryAlgorithm.CASCADING, T0 + timedelta(hours=2))
    assert [(p.algorithm, p.kind) for p in planned.shadows] == [
        (RetryAlgorithm.CASCADING, "attempt"),
        (RetryAlgorithm.SMART, "attempt"),
    ]
    assert [p.reason for p in planned.shadows] == [p["reason"] for p in replanned.plan.shadows.values()]  # type: ignore[union-attr]


def test_the_process_tracker_shows_the_shadow_plans_with_json_times() -> None:
    recovery = Recovery.start(monitoring_payment(monitoring_seconds=3600), planning()).recovery

    view = tracker_view(recovery, None)

    shadows = view["plan"]["shadows"]
    assert set(shadows) == {"cascading", "smart"}
    assert all(isinstance(s["at"], str) and s["at"].endswith("Z") for s in shadows.values())
    assert view["plan"]["shadow"] == shadows["cascading"]
    assert view["timeline"][0]["shadows"] == shadows


async def test_the_internal_endpoint_answers_the_shadow_comparison(scheduler: Scheduler) -> None:
    monitored = monitoring_payment(monitoring_seconds=3600)
    await scheduler.send("scheduler.recovery-scheduled", scheduled(monitored))
    transport = httpx.ASGITransport(app=scheduler.service.app)
    headers = {TOKEN_HEADER: SchedulerSettings().internal_api_token, MERCHANT_HEADER: "merchant_test"}
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler", headers=headers) as http:
        answer = await http.get(f"/internal/recoveries/merchant_test/{monitored.payment_id}")

    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["recovery_status"] == "monitoring" and view["attempts"] == []
    assert [s["kind"] for s in view["plan"]["shadows"].values()] == ["attempt", "attempt"]
    assert view["plan"]["shadows"]["smart"]["reason"].startswith("smart: ")
