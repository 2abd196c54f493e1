"""Settings of a service started in-process by a test, pointed at the test's own vhost and database."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from recovery_analytics.app import build_service as build_analytics
from recovery_analytics.settings import AnalyticsSettings
from recovery_dispatcher.app import build_service as build_dispatcher
from recovery_dispatcher.settings import DispatcherSettings
from recovery_intake.app import build_service as build_intake
from recovery_intake.settings import IntakeSettings
from recovery_runtime.service import Service
from recovery_runtime.settings import ServiceSettings
from recovery_sandbox.serving import BackgroundServer
from recovery_scheduler.app import build_service as build_scheduler
from recovery_scheduler.settings import SchedulerSettings
from support.stack import Isolation


def settings_for(settings_type: type[ServiceSettings], isolation: Isolation, **overrides: Any) -> Any:
    return settings_type(
        rabbitmq_url=isolation.rabbitmq_url,
        mongodb_url=isolation.mongodb_url,
        mongodb_database=isolation.mongodb_database,
        time_scale=1000.0,
        **overrides,
    )


def dispatcher_with_few_slots(
    isolation: Isolation, *, in_flight: int, per_endpoint: int, **overrides: Any
) -> DispatcherSettings:
    """Dispatcher settings whose bounds a handful of deliveries fill: `in_flight` deliveries in flight and as the
    broker's prefetch, `per_endpoint` per endpoint; loopback receivers allowed."""
    return settings_for(
        DispatcherSettings,
        isolation,
        outbound_allowed_cidrs="127.0.0.0/8",
        webhook_max_in_flight=in_flight,
        prefetch_count=in_flight,
        webhook_endpoint_concurrency=per_endpoint,
        **overrides,
    )


def intake_with_its_owners(
    serve: Callable[[Any], BackgroundServer], isolation: Isolation, **intake_settings: Any
) -> Service:
    """Intake built once every owner it forwards to (scheduler, dispatcher, analytics) is served: the caller
    serves it (`serve(intake)`). Loopback webhook endpoints are allowed."""
    analytics = serve(build_analytics(settings_for(AnalyticsSettings, isolation)))
    scheduler = serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))
    dispatcher = serve(
        build_dispatcher(settings_for(DispatcherSettings, isolation, outbound_allowed_cidrs="127.0.0.0/8"))
    )
    return build_intake(
        settings_for(
            IntakeSettings,
            isolation,
            scheduler_internal_url=scheduler.url,
            dispatcher_internal_url=dispatcher.url,
            analytics_internal_url=analytics.url,
            **intake_settings,
        )
    )


@contextlib.contextmanager
def serving() -> Iterator[Callable[[Any], BackgroundServer]]:
    """`start(app_or_service)` runs it on a free loopback port; every server started stops on the way out (last
    first). Behind the `serve` fixtures, whatever their scope."""
    servers: list[BackgroundServer] = []

    def start(target: Any) -> BackgroundServer:
        app = target.app if isinstance(target, Service) else target
        server = BackgroundServer(app, graceful_seconds=5).start(timeout=60.0)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        # Every one stopped, even after one that does not stop (its error is raised last).
        unstopped: list[RuntimeError] = []
        for server in reversed(servers):
            try:
                server.stop()
            except RuntimeError as error:
                unstopped.append(error)
        if unstopped:
            raise unstopped[0]
