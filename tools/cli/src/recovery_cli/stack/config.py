"""What a stack is made of: URLs, ports, instance counts, time scale, and where its logs go."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from recovery_cli.stack.components import EVERYTHING
from recovery_cli.stack.infrastructure import DEFAULT_RABBITMQ_URL

DEFAULT_ADMIN_API_KEY = "test_admin"
DEFAULT_DATABASE = "recovery"
LOCAL_OUTBOUND_CIDRS = "127.0.0.0/8,::1/128"


@dataclass(frozen=True)
class StackConfig:
    run_dir: Path
    rabbitmq_url: str = DEFAULT_RABBITMQ_URL
    # None: start SecantusDB as its own process and use it.
    mongodb_url: str | None = None
    mongodb_database: str = DEFAULT_DATABASE
    # SecantusDB's storage: ":memory:" (gone when it stops) or a directory.
    mongodb_storage: str = ":memory:"
    admin_api_key: str = DEFAULT_ADMIN_API_KEY
    time_scale: float = 1.0
    outbound_allowed_cidrs: str = LOCAL_OUTBOUND_CIDRS
    log_level: str = "INFO"
    # Component names to run (see components.py); SecantusDB is added when mongodb_url is None.
    components: tuple[str, ...] = EVERYTHING
    # Port per instance name ("intake", "executor-2", "secantusdb"); 0 means a free port.
    ports: Mapping[str, int] = field(default_factory=dict)
    # True: every port not given in `ports` is a free one (tests, the demo); False: the default ports.
    free_ports: bool = False
    # Instances per service, e.g. {"executor": 2}; one each by default.
    instances: Mapping[str, int] = field(default_factory=dict)
    # None: the stripe-sandbox of this stack when it runs, else STRIPE_API_BASE or the service's default.
    stripe_api_base: str | None = None
    # Laid over every process's environment, then `component_env[name]` over that component's instances.
    extra_env: Mapping[str, str] = field(default_factory=dict)
    component_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    readiness_timeout: float = 60.0
    # Longer than the services' own shutdown grace (20 s by default) so a stop does not cut one short.
    stop_grace: float = 30.0
    # Start a local rabbitmq-server when the broker does not answer (the CLI: yes; tests: no, they fail).
    start_rabbitmq: bool = False
    # True: the processes outlive this Python process (`recovery up`); False: they die with it.
    detach: bool = False
    host: str = "127.0.0.1"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    def with_changes(self, **changes: object) -> StackConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_environment(
        cls, run_dir: Path, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> StackConfig:
        """The configuration the README documents: the same variables the services read."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "run_dir": run_dir,
            "rabbitmq_url": env.get("RABBITMQ_URL") or DEFAULT_RABBITMQ_URL,
            "mongodb_url": env.get("MONGODB_URL") or None,
            "mongodb_database": env.get("MONGODB_DATABASE") or DEFAULT_DATABASE,
            "admin_api_key": env.get("ADMIN_API_KEY") or DEFAULT_ADMIN_API_KEY,
            "time_scale": float(env.get("TIME_SCALE") or 1.0),
            "outbound_allowed_cidrs": env.get("OUTBOUND_ALLOWED_CIDRS")
            or env.get("WEBHOOK_ALLOWED_CIDRS")
            or LOCAL_OUTBOUND_CIDRS,
            "log_level": env.get("LOG_LEVEL") or "INFO",
            "stripe_api_base": env.get("STRIPE_API_BASE") or None,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
