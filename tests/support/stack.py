"""Starting the whole running system for an e2e or fault test, isolated by its own vhost and database."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from recovery_cli.scenario import BILLING_CONNECTOR_ACCOUNT, RECOVERY_REQUEST, seed_body
from recovery_cli.seed_scenario import Endpoints, MerchantSetup, SeedScenario
from recovery_cli.stack import EVERYTHING, Stack, StackConfig
from support.mongodb import database_name_for, drop_database
from support.rabbitmq import VhostUnavailable, VirtualHosts, vhost_name_for

TEST_TIME_SCALE = 1000.0


@dataclass(frozen=True)
class Isolation:
    """Where one test's services meet: its own RabbitMQ vhost and its own MongoDB database."""

    rabbitmq_url: str
    mongodb_url: str
    mongodb_database: str

    def service_env(self) -> dict[str, str]:
        return {
            "RABBITMQ_URL": self.rabbitmq_url,
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DATABASE": self.mongodb_database,
        }


class StackFactory:
    """`start(...)` starts a stack (the whole system by default) on free ports; `stop_all()` tears down.

    Every stack of a test shares its isolation, so a test may start, say, a second executor as its own stack
    with `components=("executor",)`; logs go to `<run_root>/stack-N/logs/`.
    """

    def __init__(self, run_root: Path, isolation: Isolation) -> None:
        self.run_root = run_root
        self.isolation = isolation
        self.stacks: list[Stack] = []

    def start(
        self,
        components: tuple[str, ...] = EVERYTHING,
        *,
        instances: Mapping[str, int] | None = None,
        time_scale: float = TEST_TIME_SCALE,
        component_env: Mapping[str, Mapping[str, str]] | None = None,
        **config: object,
    ) -> Stack:
        settings: dict[str, object] = {
            "run_dir": self.run_root / f"stack-{len(self.stacks) + 1}",
            "rabbitmq_url": self.isolation.rabbitmq_url,
            "mongodb_url": self.isolation.mongodb_url,
            "mongodb_database": self.isolation.mongodb_database,
            "components": components,
            "instances": dict(instances or {}),
            "time_scale": time_scale,
            "component_env": dict(component_env or {}),
            "free_ports": True,
            "readiness_timeout": 90.0,
            "stop_grace": 10.0,
            "log_level": "DEBUG",
        }
        settings.update(config)
        stack = Stack(StackConfig(**settings))  # type: ignore[arg-type]
        # Registered before it starts, so a stack that fails half-way is still stopped and its logs reported.
        self.stacks.append(stack)
        stack.start()
        return stack

    __call__ = start

    def stop_all(self) -> None:
        for stack in reversed(self.stacks):
            stack.stop()

    def log_tails(self, lines: int = 60) -> str:
        return "\n".join(stack.log_tails(lines) for stack in self.stacks)


def seed_scenario(stack: Stack) -> SeedScenario:
    """The seed's steps against `stack`, quiet (progress lines go nowhere): `bootstrap()`, `run()`, ..."""
    return SeedScenario(Endpoints.of(stack), say=lambda _: None)


def setup_merchant(
    scenario: SeedScenario, ladder: list[int], record_back_url: str | None = None, max_retry_count: int = 9
) -> MerchantSetup:
    """The seed's merchant, with a billing connector account of its own: short ladder, record back."""
    setup = scenario.bootstrap()
    body = seed_body(BILLING_CONNECTOR_ACCOUNT, payment_mca=setup.payment_mca, profile_id=setup.profile_id)
    recovery = body["feature_metadata"]["revenue_recovery"]
    recovery["retry_ladder_seconds"] = ladder
    recovery["max_retry_count"] = max_retry_count
    if record_back_url:
        recovery["record_back_url"] = record_back_url
    body["connector_label"] = "billing_retry_engine"
    created = scenario.http.post(
        f"{scenario.endpoints.intake_url}/v2/connector-accounts", json=body, headers=setup.headers()
    )
    assert created.status_code == 200, created.text
    return MerchantSetup(**{**setup.__dict__, "billing_mca": created.json()["id"]})


def recovery_body(setup: MerchantSetup, **overrides: Any) -> dict[str, Any]:
    """The seed's `POST /v2/payments/recovery` body for the merchant's accounts (customer `cus_test`, card `pm_test`),
    with `overrides` on top."""
    body = seed_body(
        RECOVERY_REQUEST,
        customer_id_from_stripe="cus_test",
        payment_method_id_from_stripe="pm_test",
        billing_mca=setup.billing_mca,
        payment_mca=setup.payment_mca,
    )
    body.update(overrides)
    return body


def resume_workflow(
    intake_url: str, headers: dict[str, str], payment_id: str, task: str, dispute_id: str | None = None
) -> httpx.Response:
    """The process-tracker API's resume of `task` (`EXECUTE_WORKFLOW` or `PSYNC_WORKFLOW`) for the payment's
    workflow, due now, with the status Hyperswitch's resume body names for that task; with `dispute_id`, the
    refund record of that dispute lost on the payment (extension)."""
    execute = task == "EXECUTE_WORKFLOW"
    body = {
        "revenue_recovery_task": task,
        "schedule_time": datetime.now(UTC).isoformat(),
        "status": "pending" if execute else "finish",
        "business_status": "Pending" if execute else "COMPLETED_PSYNC_TASK",
    }
    url = f"{intake_url}/v2/process-trackers/revenue-recovery-workflow/{payment_id}/resume"
    params = {"dispute_id": dispute_id} if dispute_id is not None else None
    return httpx.post(url, json=body, params=params, headers=headers, timeout=10)


def attach_card(stack: Stack, scenario: SeedScenario, customer: str, card: str) -> str:
    """Save another card (a test alias such as `pm_card_visa`) on the sandbox customer; its payment method id."""
    auth = {"Authorization": f"Bearer {scenario.sandbox_secret_key}"}
    answer = httpx.post(
        f"{stack.stripe_url}/v1/payment_methods/{card}/attach", data={"customer": customer}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


@contextlib.contextmanager
def own_isolation(name: str, virtual_hosts: VirtualHosts, mongodb_url: str) -> Iterator[Isolation]:
    """A vhost and a database of their own for `name` (a module, say), deleted and dropped afterwards."""
    vhost = vhost_name_for(name)
    url = ""
    for attempt in range(4):
        # A busy broker can take longer than one management call's timeout; creating a vhost is idempotent.
        try:
            url = virtual_hosts.create(vhost)
            break
        except VhostUnavailable:
            if attempt == 3:
                raise
            time.sleep(5)
    database = database_name_for(name)
    try:
        yield Isolation(rabbitmq_url=url, mongodb_url=mongodb_url, mongodb_database=database)
    finally:
        virtual_hosts.delete(vhost, wait=False)
        drop_database(mongodb_url, database)
