"""Settings of a service started in-process by a test, pointed at the test's own vhost and database."""

from __future__ import annotations

from typing import Any

from recovery_runtime.settings import ServiceSettings
from support.stack import Isolation


def settings_for(settings_type: type[ServiceSettings], isolation: Isolation, **overrides: Any) -> Any:
    return settings_type(
        rabbitmq_url=isolation.rabbitmq_url,
        mongodb_url=isolation.mongodb_url,
        mongodb_database=isolation.mongodb_database,
        time_scale=1000.0,
        **overrides,
    )
