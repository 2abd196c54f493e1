"""The executor recording at a billing system's API in tests, over real HTTP on loopback: its client goes through the
egress policy (loopback allowed), keeps every request it sends, and loses the next answer to a path on demand (the
billing system acted, the executor timed out); and the steps of a refund record the billing systems' tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from faststream.rabbit import TestRabbitBroker

from recovery_contracts.envelope import Envelope, MessageType
from recovery_contracts.messages import RecordBack
from recovery_executor.adapters.billing_systems import BillingSystemRecorder
from recovery_executor.dependencies import ConnectorAccountRepository
from recovery_executor.domain.record_back import RecordBackStatus
from recovery_executor.settings import ExecutorSettings
from recovery_runtime.egress import EgressGuard, EgressPolicy, guarded_http_client
from recovery_runtime.secrets import SecretBox

from .builders import dispute_lost
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


async def record_back_accepted(executor: Executor, request: Envelope[RecordBack]) -> None:
    """The payment's record back `request` tried, and accepted by the billing system."""
    await executor.send("executor.record-back", request)
    assert executor.record_backs.progress[request.payload.payment_id].status is RecordBackStatus.ACCEPTED


async def refund_first_try(
    executor: Executor, payment_id: str, amount: int = 2250, reason: str | None = "fraudulent"
) -> Envelope[RecordBack]:
    """A dispute lost on the payment: the first try of its refund record, as the executor emitted it."""
    executor.publisher.published.clear()
    await executor.send("executor.dispute-lost", dispute_lost(payment_id, amount=amount, reason=reason))
    [command] = executor.published(MessageType.RECORD_BACK)
    executor.publisher.published.clear()
    return Envelope[RecordBack].model_validate(command.model_dump())


def next_try(executor: Executor) -> Envelope[RecordBack]:
    """The refund record's next try, as the timer the last one scheduled carries it."""
    [timer] = executor.published(MessageType.SCHEDULE_TIMER)
    executor.publisher.published.clear()
    return Envelope[RecordBack].model_validate(timer.payload.message)
