"""Dead letters in a deployment without the read side (UNDEPLOYED_SERVICES=analytics): analytics' queues are not
declared, so the console's Dead letters page and `recovery dead-letters` read the pipeline's dead-letter queues only
(a passive declare of a missing queue would close the channel, 404, and fail the whole reading)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from faststream.rabbit import RabbitBroker

from recovery_cli.main import main
from recovery_intake.console.adapters import http_adapters
from recovery_intake.settings import IntakeSettings
from recovery_runtime.dead_letters import DeadLetters, Selection, dead_letter_queues
from recovery_runtime.topology import DEAD_LETTER, QUEUES, declare_topology
from support.services import settings_for
from support.stack import Isolation

QUEUE = QUEUES["executor.execute-retry"]
PIPELINE_DLQS = {q.dead_letter_queue for q in QUEUES.values() if q.service != "analytics"}


@pytest.fixture
async def without_read_side(isolation: Isolation, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RabbitBroker]:
    """The topology as services with UNDEPLOYED_SERVICES=analytics declare it (that setting in this process's
    environment too, as in the deployment's), and one dead letter in the executor's execute-retry DLQ."""
    monkeypatch.setenv("UNDEPLOYED_SERVICES", "analytics")
    monkeypatch.setenv("RABBITMQ_URL", isolation.rabbitmq_url)
    broker = RabbitBroker(isolation.rabbitmq_url)
    await broker.connect()
    try:
        await declare_topology(broker, frozenset({"analytics"}))
        await broker.publish(b"{}", exchange=DEAD_LETTER, routing_key=QUEUE.name, persist=True, message_id="m-1")
        yield broker
    finally:
        await broker.stop()


async def test_counts_and_listing_skip_the_queues_of_an_undeployed_service(
    without_read_side: RabbitBroker, isolation: Isolation
) -> None:
    dead_letters = DeadLetters(isolation.rabbitmq_url)
    counts = await dead_letters.counts()
    assert set(counts) == PIPELINE_DLQS
    assert counts[QUEUE.dead_letter_queue] == 1
    assert [letter.message_id for letter in await dead_letters.list()] == ["m-1"]
    # Named explicitly, an undeployed service's queue is refused with the reason, not read.
    with pytest.raises(ValueError, match="UNDEPLOYED_SERVICES"):
        await dead_letters.counts(["analytics.payment-succeeded"])
    with pytest.raises(ValueError, match="UNDEPLOYED_SERVICES"):
        await dead_letters.list(Selection(queues=("analytics.payment-succeeded.dlq",)))


async def test_the_consoles_dead_letters_page_reads_the_pipelines_queues(
    without_read_side: RabbitBroker, isolation: Isolation
) -> None:
    async def ready() -> dict[str, bool]:
        return {"database": True}

    settings = settings_for(IntakeSettings, isolation)
    assert settings.absent_services == frozenset({"analytics"})
    async with httpx.AsyncClient() as client:
        operations = http_adapters(settings, ready, client).operations
        counts = await operations.dead_letter_counts()  # OwnerUnavailable("RabbitMQ") when a declare fails
    assert set(counts) == PIPELINE_DLQS
    assert counts[QUEUE.dead_letter_queue] == 1


async def test_the_cli_lists_the_pipelines_dead_letters(
    without_read_side: RabbitBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI runs its own event loop: keep it off this test's loop.
    assert await asyncio.to_thread(main, ["dead-letters", "list"]) == 0
    listed = capsys.readouterr().out
    assert "m-1" in listed and "1 dead letter(s)" in listed


def test_the_setting_is_read_as_services_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNDEPLOYED_SERVICES", " analytics ")
    assert "analytics.payment-succeeded.dlq" not in dead_letter_queues(absent=frozenset({"analytics"}))
    assert DeadLetters("amqp://unused").absent == frozenset({"analytics"})
    assert DeadLetters("amqp://unused", absent=frozenset()).absent == frozenset()
    monkeypatch.setenv("UNDEPLOYED_SERVICES", "analytics,executor")
    with pytest.raises(ValueError, match="only analytics may be left out"):
        _ = DeadLetters("amqp://unused").absent
    monkeypatch.delenv("UNDEPLOYED_SERVICES")
    assert DeadLetters("amqp://unused").absent == frozenset()
