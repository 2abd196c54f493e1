"""Composition root of the scheduler: builds the service from settings, or around the adapters it is given."""

from __future__ import annotations

import random
from datetime import timedelta
from functools import partial

from recovery_contracts.ids import new_attempt_id, new_message_id
from recovery_runtime.internal_api import InternalCaller
from recovery_runtime.service import Service
from recovery_scheduler import http
from recovery_scheduler.adapters import card_budgets as card_budgets_adapter
from recovery_scheduler.adapters import recoveries as recoveries_adapter
from recovery_scheduler.adapters import retry_stats as retry_stats_adapter
from recovery_scheduler.adapters import timers as timers_adapter
from recovery_scheduler.dependencies import Dependencies, SchedulerAdapters
from recovery_scheduler.handlers import HANDLERS, replan
from recovery_scheduler.settings import SchedulerSettings
from recovery_scheduler.timer_loop import TimerLoop

NAME = "scheduler"


class CellIds:
    """Time-ordered ids of this cell for what plans create."""

    def __init__(self, cell_id: str) -> None:
        self._cell_id = cell_id

    def attempt_id(self) -> str:
        return new_attempt_id(self._cell_id)

    def message_id(self) -> str:
        return new_message_id()


def build_service(settings: SchedulerSettings | None = None, adapters: SchedulerAdapters | None = None) -> Service:
    settings = settings or SchedulerSettings()
    service, adapters = Service.on_adapters(
        NAME, settings, adapters, lambda service: _mongo_adapters(service, settings)
    )
    # Every timer this process commits is reported to the loop (after the commit), so that one falling due before
    # the next poll is claimed when due, not at the poll. The loop runs the re-plans of the handlers bound below.
    loop = TimerLoop(
        adapters.timers,
        adapters.publisher,
        lambda payment_id: replan(dependencies, payment_id),
        adapters.clock,
        settings.service_instance_id,
        poll_seconds=settings.timer_poll_seconds,
        batch_size=settings.timer_batch_size,
        lease=timedelta(seconds=settings.timer_lease_seconds),
    )
    dependencies = Dependencies.of(
        adapters,
        time_scale=service.time_scale.scale,
        timer_stored=loop.timer_stored,
        horizon=timedelta(seconds=settings.recovery_horizon_seconds),
        learned_hours=settings.smart_learned_hours,
    )
    for queue_name, handle in HANDLERS.items():
        service.consume(queue_name, partial(handle, dependencies))
    caller = InternalCaller(settings.internal_api_token)
    service.app.include_router(http.router(dependencies, caller))
    service.app.include_router(http.retry_stats_router(dependencies, caller))
    service.app.include_router(http.cards_router(dependencies, caller))
    service.add_loop(loop.run)
    return service


def _mongo_adapters(service: Service, settings: SchedulerSettings) -> SchedulerAdapters:
    service.add_indexes(
        recoveries_adapter.INDEXES + card_budgets_adapter.INDEXES + timers_adapter.INDEXES + retry_stats_adapter.INDEXES
    )
    retry_stats = retry_stats_adapter.MongoRetryStatsRepository(service.db)
    # The retry statistics' counts are written together in the background, and once more after the last handler
    # (adapters/retry_stats.py).
    service.add_loop(retry_stats.run)
    service.on_drain(retry_stats.flush)
    return SchedulerAdapters(
        unit_of_work=service.unit_of_work,
        publisher=service.publisher,
        clock=service.clock,
        recoveries=recoveries_adapter.MongoRecoveryRepository(service.db),
        card_budgets=card_budgets_adapter.MongoCardBudgetRepository(service.db),
        timers=timers_adapter.MongoTimerRepository(service.db),
        retry_stats=retry_stats,
        ids=CellIds(settings.cell_id),
        rng=random.Random(),
    )
