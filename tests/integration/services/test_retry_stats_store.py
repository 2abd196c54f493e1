"""The retry statistics' store on the MongoDB-wire server: a count is held until the change that records its attempt
committed (a transaction or a one-document write), and what is held is written together in one command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from recovery_runtime.unit_of_work import Transaction
from recovery_scheduler.adapters.retry_stats import RETRY_STATS, MongoRetryStatsRepository
from recovery_scheduler.domain.retry_stats import RetryOutcome, StatsKey

KEY = StatsKey("merchant_stats", "insufficient_funds", "visa", "credit")
AT = datetime(2026, 1, 15, 12, 5, tzinfo=UTC)  # a Thursday, the 15th, hour 12


class Commands(monitoring.CommandListener):
    """The commands sent to the statistics' collection."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == RETRY_STATS:
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


Store = tuple[Any, MongoRetryStatsRepository, Commands]


@pytest.fixture
async def store(mongodb_url: str, mongodb_database: str) -> AsyncIterator[Store]:
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, event_listeners=[commands], tz_aware=True)
    try:
        yield client, MongoRetryStatsRepository(client[mongodb_database], flush_seconds=3600), commands
    finally:
        await client.close()


def outcome(payment_id: str, *, succeeded: bool) -> RetryOutcome:
    return RetryOutcome(KEY, payment_id, f"{payment_id}_att", AT, succeeded)


def committed(tx: Transaction) -> None:
    """What the unit of work does once a one-document write went through."""
    for callback in tx.on_commit:
        callback()


async def test_counts_after_one_document_writes_wait_for_the_commit_and_go_together_in_one_command(
    store: Store, mongodb_database: str
) -> None:
    client, stats, commands = store
    payments = ["12345_pay_a", "12345_pay_b", "12345_pay_a"]  # the same document twice
    written = []
    for payment_id in payments:
        tx = Transaction.one_document()
        await stats.record([outcome(payment_id, succeeded=True)], tx)
        written.append(tx)
    lost = Transaction.one_document()  # its write lost the compare-and-set: never committed
    await stats.record([outcome("12345_pay_c", succeeded=True)], lost)
    assert commands.names == []  # nothing on the handler's path

    for tx in written:
        committed(tx)
    assert commands.names == []
    await stats.flush()
    assert commands.names == ["update"]  # one command for every held count

    docs = await client[mongodb_database][RETRY_STATS].find({"merchant_id": KEY.merchant_id}).to_list(None)
    assert sum(d["counts"]["attempts"] for d in docs) == sum(d["counts"]["successes"] for d in docs) == 3
    assert sum(d["counts"]["hour_of_day"]["h12"]["attempts"] for d in docs) == 3
    assert {(d["decline_code"], d["card_network"], d["funding"]) for d in docs} == {
        ("insufficient_funds", "visa", "credit")
    }

    commands.names.clear()
    await stats.flush()  # nothing held: nothing sent, nothing counted twice
    assert commands.names == []
    [total] = await stats.of_merchant(KEY.merchant_id)
    assert (total.total.attempts, total.total.successes) == (3, 3)


async def test_a_count_made_in_a_transaction_waits_for_its_commit_and_a_read_includes_what_this_process_holds(
    store: Store,
) -> None:
    client, stats, commands = store
    async with client.start_session() as session:
        committed_tx, aborted_tx = Transaction(session), Transaction(session)
        async with await session.start_transaction():
            await stats.record([outcome("12345_pay_t", succeeded=False)], committed_tx)
        async with await session.start_transaction():
            await stats.record([outcome("12345_pay_x", succeeded=False)], aborted_tx)
            await session.abort_transaction()
    assert commands.names == []  # nothing in either transaction
    committed(committed_tx)  # the unit of work calls back only for the committed one
    held = Transaction.one_document()
    await stats.record([outcome("12345_pay_h", succeeded=True)], held)
    committed(held)

    [total] = await stats.of_merchant(KEY.merchant_id)  # flushes first
    assert (total.total.attempts, total.total.successes) == (2, 1)
    assert commands.names == ["update", "find"]


async def test_documents_of_the_earlier_sharded_layout_are_summed_in(store: Store, mongodb_database: str) -> None:
    client, stats, _ = store
    key_fields = {"merchant_id": KEY.merchant_id, "decline_code": KEY.decline_code}
    key_fields |= {"card_network": KEY.card_network, "funding": KEY.funding}
    old = {"_id": f"{KEY.merchant_id}/insufficient_funds/visa/credit/7", **key_fields, "counts": {"attempts": 4}}
    await client[mongodb_database][RETRY_STATS].insert_one(old)
    tx = Transaction.one_document()
    await stats.record([outcome("12345_pay_n", succeeded=True)], tx)
    committed(tx)

    [total] = await stats.of_merchant(KEY.merchant_id)
    assert (total.total.attempts, total.total.successes) == (5, 1)


async def test_the_planners_learned_hours_come_from_the_stored_counts_and_are_read_once_per_merchant_in_a_while(
    mongodb_url: str, mongodb_database: str
) -> None:
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, event_listeners=[commands], tz_aware=True)
    try:
        stats = MongoRetryStatsRepository(client[mongodb_database], flush_seconds=3600, learned_ttl_seconds=3600)
        tx = Transaction.one_document()
        # 240 attempts, ten an hour: two approved an hour, eight at 09:00 UTC.
        outcomes = [
            RetryOutcome(KEY, f"12345_pay_{hour}_{n}", "att", AT.replace(hour=hour), n < (8 if hour == 9 else 2))
            for hour in range(24)
            for n in range(10)
        ]
        await stats.record(outcomes[:-1], tx)
        committed(tx)
        assert (await stats.learned(KEY.merchant_id)).rates_for("insufficient_funds", "visa", "credit") is None

        # Cached: the 240th attempt is not seen until the entry expires (a fresh repository reads it).
        tx = Transaction.one_document()
        await stats.record(outcomes[-1:], tx)
        committed(tx)
        await stats.flush()
        commands.names.clear()
        assert (await stats.learned(KEY.merchant_id)).rates_for("insufficient_funds", "visa", "credit") is None
        assert commands.names == []

        fresh = MongoRetryStatsRepository(client[mongodb_database], flush_seconds=3600)
        rates = (await fresh.learned(KEY.merchant_id)).rates_for("insufficient_funds", "visa", "credit")
        assert commands.names == ["find"]
        assert rates is not None and rates.attempts == 240
        assert max(range(24), key=lambda hour: rates.rates[hour]) == 9
    finally:
        await client.close()
