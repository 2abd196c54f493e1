"""The services as the catalogues see them, each built from its settings' defaults: connected to nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recovery_runtime.settings import ServiceSettings

if TYPE_CHECKING:
    from recovery_runtime.service import Service

# The broker address printed in the AsyncAPI document: a name, never the environment's URL (it may hold
# credentials, and the document must not change with the machine that generates it).
DOCUMENTED_BROKER_URL = "amqp://rabbitmq:5672/"


@dataclass(frozen=True)
class ServiceEntry:
    """A service as the catalogues see it: its name, its settings class, how to build it."""

    name: str
    settings: type[ServiceSettings]
    # Each service's build_service takes its own settings class (the one in `settings`), hence Any.
    build: Callable[[Any], Service]


def services() -> list[ServiceEntry]:
    from recovery_analytics.app import build_service as build_analytics
    from recovery_analytics.settings import AnalyticsSettings
    from recovery_dispatcher.app import build_service as build_dispatcher
    from recovery_dispatcher.settings import DispatcherSettings
    from recovery_executor.app import build_service as build_executor
    from recovery_executor.settings import ExecutorSettings
    from recovery_intake.app import build_service as build_intake
    from recovery_intake.settings import IntakeSettings
    from recovery_scheduler.app import build_service as build_scheduler
    from recovery_scheduler.settings import SchedulerSettings

    return [
        ServiceEntry("intake", IntakeSettings, build_intake),
        ServiceEntry("scheduler", SchedulerSettings, build_scheduler),
        ServiceEntry("executor", ExecutorSettings, build_executor),
        ServiceEntry("webhook-dispatcher", DispatcherSettings, build_dispatcher),
        ServiceEntry("analytics", AnalyticsSettings, build_analytics),
    ]


def build(entry: ServiceEntry) -> Service:
    # model_construct: the defaults only, whatever the environment says; building connects to nothing.
    return entry.build(entry.settings.model_construct(rabbitmq_url=DOCUMENTED_BROKER_URL))
