"""What runs where: the processes a `StackConfig` asks for, their ports, URLs and environments, how each starts
and how to tell it is ready. Nothing here starts a process (the supervisor does)."""

from __future__ import annotations

from pathlib import Path

from recovery_cli.stack.components import (
    RECEIVER,
    SECANTUSDB,
    STRIPE_SANDBOX,
    Component,
    Role,
    component,
    instance_name,
)
from recovery_cli.stack.config import StackConfig
from recovery_cli.stack.infrastructure import secantus_url
from recovery_cli.stack.process import ProcessSpec
from recovery_cli.stack.readiness import HttpProbe, PortProbe, Probe, free_ports


class StackLayout:
    """The plan of one system from a `StackConfig`: every process's name, port, URL, environment and spec.

    `Stack` starts and stops the processes, and adds instances to the plan (`add_instance`).
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self._extra_instances: list[tuple[Component, str]] = []
        self._ports = self._assign_ports()
        self.rabbitmq_url = config.rabbitmq_url
        self.mongodb_url = config.mongodb_url or secantus_url(self._ports[SECANTUSDB.name], config.host)

    # ---- what runs where -------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    @property
    def names(self) -> list[str]:
        """Every process this stack runs (or will), in start order."""
        database = [SECANTUSDB.name] if self.config.mongodb_url is None else []
        return database + [name for _, name in self._instances()]

    def port(self, name: str) -> int:
        return self._ports[name]

    def url(self, name: str) -> str:
        return f"http://{self.config.host}:{self._ports[name]}"

    @property
    def intake_url(self) -> str:
        return self.url("intake")

    @property
    def stripe_url(self) -> str:
        return self.url(STRIPE_SANDBOX.name)

    @property
    def receiver_url(self) -> str:
        return self.url(RECEIVER.name)

    @property
    def webhook_url(self) -> str:
        """Where a profile should send webhooks so this stack's receiver gets them."""
        return f"{self.receiver_url}/webhooks"

    @property
    def admin_api_key(self) -> str:
        return self.config.admin_api_key

    def log_path(self, name: str) -> Path:
        return self.config.log_dir / f"{name}.log"

    @property
    def receiver_log_path(self) -> Path:
        return self.config.log_dir / "receiver-deliveries.jsonl"

    def instances(self, component_name: str) -> list[str]:
        return [name for comp, name in self._instances() if comp.name == component_name]

    def service_env(self, name: str) -> dict[str, str]:
        """The environment a service instance gets (what a test needs to start one by hand)."""
        config = self.config
        env = {
            "RABBITMQ_URL": self.rabbitmq_url,
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DATABASE": config.mongodb_database,
            "HTTP_PORT": str(self._ports[name]),
            "ADMIN_API_KEY": config.admin_api_key,
            "TIME_SCALE": repr(float(config.time_scale)),
            "OUTBOUND_ALLOWED_CIDRS": config.outbound_allowed_cidrs,
            "LOG_LEVEL": config.log_level,
            "SERVICE_INSTANCE_ID": name,
        }
        stripe = self._stripe_api_base()
        if stripe is not None:
            env["STRIPE_API_BASE"] = stripe
        if self.config.stripe_api_base is None and STRIPE_SANDBOX.name in self.config.components:
            # The sandbox serves Stripe's File Upload API on its one address too.
            env["STRIPE_FILES_BASE"] = self.url(STRIPE_SANDBOX.name)
        # Intake forwards the events, process-tracker and read-side APIs to the services owning that data.
        for owner, variable in (
            ("webhook-dispatcher", "DISPATCHER_INTERNAL_URL"),
            ("scheduler", "SCHEDULER_INTERNAL_URL"),
            ("analytics", "ANALYTICS_INTERNAL_URL"),
        ):
            if owner in self._ports:
                env[variable] = f"http://127.0.0.1:{self._ports[owner]}"
        if "executor" in self._ports:
            # A PSYNC resume (a record back started again) goes to the executor; the console shows its readiness.
            env["EXECUTOR_INTERNAL_URL"] = f"http://127.0.0.1:{self._ports['executor']}"
        return env

    # ---- inside ----------------------------------------------------------------------------------------

    def _instances(self) -> list[tuple[Component, str]]:
        planned: list[tuple[Component, str]] = []
        for name in self.config.components:
            comp = component(name)
            count = self.config.instances.get(name, 1) if comp.role == Role.SERVICE else 1
            planned.extend((comp, instance_name(comp.name, index)) for index in range(1, count + 1))
        return planned + self._extra_instances

    def _assign_ports(self) -> dict[str, int]:
        config = self.config
        wanted: list[tuple[str, int]] = [
            (name, comp.default_port if name == comp.name else 0) for comp, name in self._instances()
        ]
        if config.mongodb_url is None:
            wanted.insert(0, (SECANTUSDB.name, SECANTUSDB.default_port))
        ports: dict[str, int] = {}
        missing = []
        for name, default in wanted:
            port = config.ports.get(name, 0 if config.free_ports else default)
            if port:
                ports[name] = port
            else:
                missing.append(name)
        ports.update(zip(missing, free_ports(len(missing), config.host), strict=True))
        return ports

    def _stripe_api_base(self) -> str | None:
        if self.config.stripe_api_base is not None:
            return self.config.stripe_api_base
        if STRIPE_SANDBOX.name in self.config.components:
            return self.url(STRIPE_SANDBOX.name)
        return None

    def _secantus_spec(self) -> ProcessSpec:
        port = self._ports[SECANTUSDB.name]
        storage = self.config.mongodb_storage
        if storage != ":memory:":
            Path(storage).mkdir(parents=True, exist_ok=True)
        return ProcessSpec.python_module(
            SECANTUSDB.name,
            SECANTUSDB.module,
            "--host", self.config.host, "--port", str(port), "--storage-path", storage,
            probe=probe_for(Role.DATABASE, self.config.host, port),
            port=port,
            url=self.mongodb_url,
            role=Role.DATABASE.value,
        )  # fmt: skip

    def _spec(self, comp: Component, name: str) -> ProcessSpec:
        port = self._ports[name]
        url = self.url(name)
        env = {**self.config.extra_env}
        args: tuple[str, ...] = ()
        if comp.role == Role.SERVICE:
            env.update(self.service_env(name))
        else:
            args = ("--port", str(port))
            if comp is RECEIVER:
                args += ("--log", str(self.receiver_log_path))
            env["LOG_LEVEL"] = self.config.log_level
        env.update(self.config.component_env.get(comp.name, {}))
        return ProcessSpec.python_module(
            name,
            comp.module,
            *args,
            probe=probe_for(comp.role, self.config.host, port),
            env=env,
            port=port,
            url=url,
            role=comp.role.value,
        )


def probe_for(role: Role | str, host: str, port: int) -> Probe:
    """How to tell a process of this role is ready (also used by `recovery status` on a recorded stack)."""
    role = Role(role)
    if role == Role.SERVICE:
        return HttpProbe(f"http://{host}:{port}/readyz")
    if role == Role.PEER:
        # The peers are plain HTTP apps with nothing to wait for: any HTTP answer will do.
        return HttpProbe(f"http://{host}:{port}/healthz", expect_status=None)
    return PortProbe(host, port)
