"""Composition root of the analytics service (the read side): builds it from settings, or around the adapters it
is given."""

from __future__ import annotations

from functools import partial
from typing import Any

from recovery_analytics import http
from recovery_analytics.adapters import days, event_log, views
from recovery_analytics.dependencies import AnalyticsAdapters
from recovery_analytics.domain.payment_events import payment_of
from recovery_analytics.handlers import DayParts, project_event
from recovery_analytics.settings import AnalyticsSettings
from recovery_contracts.envelope import Envelope
from recovery_runtime.consumer import Lanes
from recovery_runtime.internal_api import InternalCaller
from recovery_runtime.service import Service
from recovery_runtime.topology import queues_of

NAME = "analytics"

INDEXES = event_log.INDEXES + views.INDEXES + days.INDEXES


def _lane(envelope: Envelope[Any]) -> str | None:
    return payment_of(envelope)


def build_service(settings: AnalyticsSettings | None = None, adapters: AnalyticsAdapters | None = None) -> Service:
    settings = settings or AnalyticsSettings()
    if adapters is None:
        service = Service(NAME, settings)
        adapters = mongo_adapters(service)
    else:
        service = Service(
            NAME, settings, clock=adapters.clock, publisher=adapters.publisher, unit_of_work=adapters.unit_of_work
        )
    # The events of one payment are folded one after another in this process (they would only conflict on its
    # view); other instances meet by compare-and-set on the view's version.
    lanes = Lanes(max_in_flight=settings.analytics_max_in_flight)
    # Each transaction in flight moves a day document of its own (handlers.DayParts).
    parts = DayParts()
    for queue in queues_of(NAME):
        service.consume(queue.name, partial(project_event, adapters, parts), lane_of=_lane, lanes=lanes)
    caller = InternalCaller(settings.internal_api_token)
    service.app.include_router(http.router(adapters, caller, settings.analytics_max_days))
    return service


def mongo_adapters(service: Service) -> AnalyticsAdapters:
    service.add_indexes(INDEXES)
    return AnalyticsAdapters(
        unit_of_work=service.unit_of_work,
        publisher=service.publisher,
        clock=service.clock,
        events=event_log.MongoEventLog(service.db),
        views=views.MongoViewStore(service.db),
        days=days.MongoDailyStore(service.db),
    )
