"""Composition root of the scheduler: builds the service from settings."""

from __future__ import annotations

from datetime import timedelta

from recovery_runtime.internal_api import InternalCaller
from recovery_runtime.service import Service
from recovery_scheduler import operator_api
from recovery_scheduler.adapters import recoveries as recoveries_adapter
from recovery_scheduler.adapters import timers as timers_adapter
from recovery_scheduler.handlers import SchedulerHandlers
from recovery_scheduler.settings import SchedulerSettings
from recovery_scheduler.timer_loop import TimerLoop
from recovery_scheduler.workflow import Workflow

NAME = "scheduler"


def build_service(settings: SchedulerSettings | None = None) -> Service:
    settings = settings or SchedulerSettings()
    service = Service(NAME, settings)
    service.add_indexes(recoveries_adapter.INDEXES + timers_adapter.INDEXES)
    recoveries = recoveries_adapter.RecoveryRepository(service.db)
    timers = timers_adapter.TimerRepository(service.db)
    # Every timer this process commits is reported to the loop (after the commit), so that one falling due before
    # the next poll is claimed when due, not at the poll. The loop runs the re-plans of the handlers built below.
    loop = TimerLoop(
        timers,
        service.publisher,
        lambda payment_id: handlers.replan(payment_id),
        service.clock,
        settings.service_instance_id,
        poll_seconds=settings.timer_poll_seconds,
        batch_size=settings.timer_batch_size,
        lease=timedelta(seconds=settings.timer_lease_seconds),
    )
    workflow = Workflow(
        recoveries, timers, service.clock, service.time_scale, settings.cell_id, timer_stored=loop.timer_stored
    )
    handlers = SchedulerHandlers(service.store, recoveries, timers, workflow, service.clock, loop.timer_stored)
    service.consume("scheduler.recovery-scheduled", handlers.recovery_scheduled)
    service.consume("scheduler.attempt-failed", handlers.attempt_failed)
    service.consume("scheduler.payment-succeeded", handlers.payment_succeeded)
    service.consume("scheduler.timer-schedule", handlers.schedule_timer)
    service.consume("scheduler.recovery-updated", handlers.recovery_updated)
    service.app.include_router(
        operator_api.router(recoveries, timers, InternalCaller(settings.internal_api_token), handlers.resume)
    )
    service.add_loop(loop.run)
    return service
