"""The topology as a deploy step, and services whose broker users may not configure anything.

The permissions come from docs/security.md's table ("RabbitMQ"), so the document and what is proven here cannot
drift apart: every service gets a user of its own with exactly its row, DECLARE_TOPOLOGY=false, the deploy step,
the operator and a billing ingress theirs; the seed's recovery must still end in a verified webhook, a poison
message handed on by the ingress reach its dead-letter queue with the reason, and the operator replay it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recovery_cli.main import main as recovery
from recovery_cli.stack.vhosts import Permissions
from recovery_runtime.bus import REJECTION_HEADER
from recovery_runtime.service import Service
from recovery_runtime.settings import ServiceSettings
from recovery_runtime.topology import QUEUES, missing_topology, queues_of
from support.broker import broker_probe, eventually
from support.payments import stripe_account
from support.rabbitmq import VirtualHosts
from support.services import settings_for
from support.stack import Isolation, StackFactory, seed_scenario

SECURITY_DOC = Path(__file__).parents[3] / "docs" / "security.md"
# Stack components by the name their queues carry.
COMPONENTS = {
    "intake": "intake",
    "scheduler": "scheduler",
    "executor": "executor",
    "webhook-dispatcher": "dispatcher",
    "analytics": "analytics",
}
# The deploy step's user: the only one that may configure.
DEPLOY_STEP = "topology"
# Who else talks to the broker: the operator replaying dead letters, a billing ingress handing on billing.event.
OPERATOR, BILLING_INGRESS = "operator", "billing ingress"
USERS = (*COMPONENTS, DEPLOY_STEP, OPERATOR, BILLING_INGRESS)


def documented_permissions() -> dict[str, Permissions]:
    """docs/security.md's RabbitMQ table: user (the row's name before any parenthesis) -> (configure, write, read)."""
    rows = re.findall(r"^\| ([^|]+?) \| `([^`]*)` \| `([^`]*)` \| `([^`]*)` \|$", SECURITY_DOC.read_text(), re.M)
    table = {user.split(" (")[0]: (configure, write, read) for user, configure, write, read in rows}
    assert set(USERS) <= table.keys(), f"docs/security.md lists {sorted(table)}"
    return table


@pytest.fixture
def broker_users(virtual_hosts: VirtualHosts, isolation: Isolation) -> Iterator[dict[str, str]]:
    """A broker user of its own per service, one for the deploy step, the operator and the billing ingress, on the
    test's vhost, each with its documented permissions: name -> URL."""
    vhost = isolation.rabbitmq_url.rsplit("/", 1)[1]
    table = documented_permissions()
    made: dict[str, str] = {}
    try:
        for name in USERS:
            user = f"test-{name.replace(' ', '-')}-{secrets.token_hex(4)}"
            made[user] = virtual_hosts.add_user(vhost, user, secrets.token_hex(12), table[name])
        yield dict(zip(USERS, made.values(), strict=True))
    finally:
        for user in made:
            virtual_hosts.delete_user(user)


def command(capsys: pytest.CaptureFixture[str], name: str, url: str, *extra: str) -> tuple[int, str]:
    """`recovery NAME --rabbitmq-url URL ...`: its exit code and what it said."""
    code = recovery([name, "--rabbitmq-url", url, *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def declare(url: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    return command(capsys, "topology", url, *extra)


def test_every_service_runs_with_its_documented_permissions_after_the_deploy_step(
    start_stack: StackFactory,
    isolation: Isolation,
    broker_users: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployer = broker_users[DEPLOY_STEP]
    code, said = declare(deployer, capsys, "check")
    assert code == 1 and "missing: exchange recovery.events" in said
    code, said = declare(deployer, capsys, "declare")
    assert code == 0, said
    # A second run changes nothing and succeeds: the Job runs on every release.
    code, said = declare(deployer, capsys, "declare")
    assert code == 0 and f"{len(QUEUES)} queues" in said
    assert declare(deployer, capsys, "check") == (0, said.replace("declared", "complete"))

    stack = start_stack(
        component_env={
            component: {"RABBITMQ_URL": broker_users[component], "DECLARE_TOPOLOGY": "false"}
            for component in COMPONENTS
        }
    )
    scenario = seed_scenario(stack)
    setup = scenario.bootstrap()
    customer, payment_method = scenario.customer_with_card("pm_card_visa")
    accepted = scenario.request_recovery(setup, customer, payment_method)
    received = scenario.wait_for_webhook(accepted["id"], timeout=60)
    assert received.signature_verified
    assert scenario.wait_for_payment_status(setup, accepted["id"], "succeeded")["status"] == "succeeded"

    # A billing ingress hands on a billing.event (here a broken one) with its own user; intake dead-letters it with
    # the reason (a publish to recovery.dead-letter by intake's user); the operator's user lists and replays it.
    queue = QUEUES["intake.billing-event"]
    asyncio.run(publish_poison(broker_users[BILLING_INGRESS], queue.exchange.name, queue.routing_key))
    asyncio.run(dead_lettered_with_reason(isolation.rabbitmq_url, queue.dead_letter_queue, keep=True))
    operator = broker_users[OPERATOR]
    code, said = command(capsys, "dead-letters", operator, "list", "--queue", queue.name)
    assert code == 0 and "poison-1" in said, said
    code, said = command(capsys, "dead-letters", operator, "replay", "--all", "--queue", queue.name)
    assert code == 0, said
    # Replayed to recovery.commands, consumed by intake again, dead-lettered again: the one copy is back.
    asyncio.run(dead_lettered_with_reason(isolation.rabbitmq_url, queue.dead_letter_queue, keep=False))


async def publish_poison(url: str, exchange: str, routing_key: str) -> None:
    async with broker_probe(url) as broker:
        await broker.publish_raw(b"{not json", exchange, routing_key, message_id="poison-1")


async def dead_lettered_with_reason(url: str, dead_letter_queue: str, *, keep: bool) -> None:
    async with broker_probe(url) as broker:
        await eventually(lambda: broker.depth(dead_letter_queue), timeout=30)
        if keep:
            return
        letter = await broker.take(dead_letter_queue)
        assert await broker.depth(dead_letter_queue) == 0
    assert letter.message_id == "poison-1"
    assert "invalid" in str(letter.headers[REJECTION_HEADER]).lower()


def without_configure(url: str, isolation: Isolation, **overrides: Any) -> ServiceSettings:
    settings: ServiceSettings = settings_for(ServiceSettings, isolation, **overrides)
    return settings.model_copy(update={"rabbitmq_url": url})


async def nothing(*_: Any) -> None:
    return None


async def test_a_service_that_may_not_configure_refuses_to_start_and_says_what_to_do(
    isolation: Isolation, broker_users: dict[str, str]
) -> None:
    service = Service("scheduler", without_configure(broker_users["scheduler"], isolation))
    service.consume("scheduler.timer-schedule", nothing)
    with pytest.raises(RuntimeError) as refused:
        await service.start()
    await service.stop()
    message = str(refused.value)
    assert "ACCESS_REFUSED" in message and "DECLARE_TOPOLOGY=false" in message
    assert "recovery topology declare" in message
    # Nothing was declared by the refused start.
    assert len(await missing_topology(isolation.rabbitmq_url, queues_of("scheduler"))) == 3 + 2 * len(
        queues_of("scheduler")
    )


async def test_a_service_waits_for_the_deploy_step_then_consumes_without_configure_rights(
    isolation: Isolation, broker_users: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("UNDEPLOYED_SERVICES", "analytics")
    handled: list[str] = []

    async def record(envelope: Any, _queue: Any) -> None:
        handled.append(envelope.message_id)

    settings = without_configure(broker_users["executor"], isolation, declare_topology=False)
    service = Service("executor", settings)
    service.consume("executor.connector-account-updated", record)
    starting = asyncio.create_task(service.start())
    try:
        await asyncio.sleep(2.0)
        assert not starting.done() and not service.started
        code, said = await asyncio.to_thread(declare, broker_users[DEPLOY_STEP], capsys, "declare")
        assert code == 0 and "left out: analytics" in said, said
        await asyncio.wait_for(starting, 30)
        assert service.started and service.missing_consumers() == []
        account = stripe_account()
        async with broker_probe(isolation.rabbitmq_url) as broker:
            await broker.publish(account)
        await eventually(lambda: handled == [account.message_id])
        # The deploy step honoured UNDEPLOYED_SERVICES: analytics' queues are not there, the pipeline's are.
        assert len(await missing_topology(isolation.rabbitmq_url, queues_of("analytics"))) == 2 * len(
            queues_of("analytics")
        )
        assert await missing_topology(isolation.rabbitmq_url, queues_of("executor")) == []
    finally:
        if not starting.done():
            starting.cancel()
        await service.stop()
