"""The executor recording at a billing system's API in tests, over real HTTP on loopback: its client goes through the
egress policy (loopback allowed), keeps every request it sends, and loses the next answer to a path on demand (the
billing system acted, the executor timed out)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from faststream.rabbit import TestRabbitBroker

from recovery_contracts.envelope import Envelope
from recovery_executor.adapters.billing_systems import BillingSystemRecorder
from recovery_executor.dependencies import ConnectorAccountRepository
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.egress import EgressGuard, EgressPolicy, guarded_http_client
from recovery_runtime.secrets import SecretBox

from .fakes import Executor, in_memory_executor


@asynccontextmanager
async def executor_at_billing_api(
    billing_account: Envelope[Any], sent: list[httpx.Request], lost_answers: list[str], stripe_api_base: str = ""
) -> AsyncIterator[Executor]:
    """The executor with `billing_account` projected, its billing-system calls appended to `sent`; the next answer
    to each path in `lost_answers` never reaches it (a read timeout), and the path leaves the list."""
    http = guarded_http_client(EgressGuard(EgressPolicy.from_setting("127.0.0.0/8")))

    async def keep(request: httpx.Request) -> None:
        sent.append(request)

    async def lose(response: httpx.Response) -> None:
        if response.request.url.path in lost_answers:
            lost_answers.remove(response.request.url.path)
            await response.aread()
            raise httpx.ReadTimeout("the answer was lost", request=response.request)

    http.event_hooks = {"request": [keep], "response": [lose]}

    def billing_systems(accounts: ConnectorAccountRepository) -> BillingSystemRecorder:
        box = SecretBox.from_settings(ExecutorSettings())
        return BillingSystemRecorder(stripe_api_base=stripe_api_base, http_client=http, box=box, accounts=accounts)

    running = in_memory_executor(billing_systems)
    try:
        async with TestRabbitBroker(running.service.broker) as broker:
            running.broker = broker
            await running.send("executor.connector-account-updated", billing_account)
            yield running
    finally:
        await http.aclose()
