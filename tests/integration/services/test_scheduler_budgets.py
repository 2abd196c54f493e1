"""Card-network budgets as reservations, against real RabbitMQ and the MongoDB-wire server: one budget per
merchant and card (`card_budgets`), a planned attempt reserves its slot by compare-and-set in the plan's
transaction, concurrent plans (in one scheduler or two) never take more slots than the network allows, and a
stopped recovery gives its slot back.

The payments' billing-system failure lies 40 days back (`transaction_created_at`), outside every window, so that
only this system's attempts fill the budgets: exactly the limit's number is planned.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from recovery_contracts.envelope import Envelope, MessageType, envelope_for
from recovery_contracts.messages import AttemptOutcome, PaymentAttemptFailed, RecoveryUpdated
from recovery_contracts.payments import IntentStatus
from recovery_contracts.recovery import PaymentToken, RecoveryPayment
from recovery_runtime.unit_of_work import Transaction
from recovery_scheduler.adapters.card_budgets import CARD_BUDGETS, MongoCardBudgetRepository, card_budget_id
from recovery_scheduler.app import build_service
from recovery_scheduler.dependencies import CardBudgetChanged
from recovery_scheduler.domain.card_budgets import Reservation
from recovery_scheduler.settings import SchedulerSettings
from support.broker import broker_probe, eventually
from support.payments import recovery_payment, scheduled
from support.services import settings_for
from support.stack import Isolation

VISA = "pm_card_visa"
MASTERCARD = "pm_card_mastercard"
EXECUTE = "executor.execute-retry"
VISA_30_DAYS = "20 attempts per rolling 30 days on the card, same amount and currency (Visa Core Rules, 18 Apr 2026)"


@pytest.fixture
def scheduler(serve: Any, isolation: Isolation) -> Any:
    return serve(build_service(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))


def payment(merchant_id: str = "merchant_a", network: str = "Visa", token: str = VISA) -> RecoveryPayment:
    base = recovery_payment(merchant_id=merchant_id, transaction_created_at=datetime.now(UTC) - timedelta(days=40))
    card = PaymentToken(token=token, card_network=network, card_issuer="Wells Fargo NA")
    return base.model_copy(update={"tokens": (card,)})


def declined(command: dict[str, Any], decline_code: str = "insufficient_funds") -> Envelope[PaymentAttemptFailed]:
    """The executor's answer to an ExecuteRetry command: declined (insufficient funds, unless told)."""
    body = command["payload"]
    payment_id = body["payment"]["payment_id"]
    return envelope_for(
        MessageType.PAYMENT_ATTEMPT_FAILED,
        PaymentAttemptFailed(
            payment_id=payment_id,
            attempt_id=body["attempt_id"],
            attempt_number=body["attempt_number"],
            token=body["token"]["token"],
            outcome=AttemptOutcome.DECLINED,
            decline_code=decline_code,
            error_code="card_declined",
            message="declined",
            attempted_at=datetime.now(UTC),
        ),
        correlation_id=payment_id,
        merchant_id=command["merchant_id"],
        profile_id=command["profile_id"],
    )


async def settled(db: Any, payments: list[RecoveryPayment]) -> dict[str, dict[str, Any]]:
    """The recoveries once each is stored with its first plan (or its end)."""
    ids = [p.payment_id for p in payments]

    def stored() -> dict[str, dict[str, Any]] | None:
        found = {r["_id"]: r for r in db.recoveries.find({"_id": {"$in": ids}})}
        return found if len(found) == len(ids) else None

    found: dict[str, dict[str, Any]] = await eventually(stored, timeout=60)
    return found


def planned(recoveries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recoveries.values() if (r.get("plan") or {}).get("kind") == "attempt"]


def budget(db: Any, merchant_id: str, token: str) -> dict[str, Any]:
    doc: dict[str, Any] = db[CARD_BUDGETS].find_one({"_id": card_budget_id(merchant_id, token)}) or {}
    return doc


async def test_21_concurrent_recoveries_on_one_visa_card_plan_exactly_the_budgets_20(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    payments = [payment() for _ in range(21)]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await asyncio.gather(*(broker.publish(scheduled(p)) for p in payments))
        recoveries = await settled(db, payments)
        commands = [await broker.take_json(EXECUTE) for _ in range(20)]
        await asyncio.sleep(1.0)  # every first attempt is due within 0.4 s: nothing more comes
        assert await broker.depth(EXECUTE) == 0

    assert len(planned(recoveries)) == 20
    assert {c["payload"]["payment"]["payment_id"] for c in commands} == {r["_id"] for r in planned(recoveries)}
    [refused] = [r for r in recoveries.values() if r not in planned(recoveries)]
    # Visa's 30 days free a slot only after this recovery's retry window: it ends, uncharged, and says why.
    assert (refused["status"], refused["business_status"]) == ("failed", "FAILED_DUE_TO_RETRIES_EXHAUSTED")
    assert VISA_30_DAYS in refused["history"][-1]["reason"]
    stored = budget(db, "merchant_a", VISA)
    assert sorted(r["payment_id"] for r in stored["reservations"]) == sorted(r["_id"] for r in planned(recoveries))
    assert {r["outcome"] for r in stored["reservations"]} == {"planned"}


async def test_11_concurrent_recoveries_on_one_mastercard_plan_10_and_the_11th_waits_for_a_slot(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    payments = [payment(network="Mastercard", token=MASTERCARD) for _ in range(11)]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await asyncio.gather(*(broker.publish(scheduled(p)) for p in payments))
        recoveries = await settled(db, payments)

    assert len(planned(recoveries)) == 10
    [waiting] = [r for r in recoveries.values() if r not in planned(recoveries)]
    # The day's 10 free a slot within the retry window: a re-plan then, with the limits that hold it back.
    assert waiting["status"] == "scheduled" and waiting["plan"]["kind"] == "replan"
    assert waiting["plan"]["reason"].startswith("network budget used up (10 attempts per UTC day on the card")
    assert "10 declines per rolling 24 h on the card" in waiting["plan"]["reason"]
    assert datetime.now(UTC) < waiting["plan"]["at"] <= datetime.now(UTC) + timedelta(days=1, minutes=10)
    assert len(budget(db, "merchant_a", MASTERCARD)["reservations"]) == 10


async def test_another_merchants_charges_on_the_card_do_not_spend_this_merchants_budget(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    """Merchant A charged the card 20 times (each declined): A's budget is full, B's is untouched."""
    charged = [payment("merchant_a") for _ in range(20)]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await asyncio.gather(*(broker.publish(scheduled(p)) for p in charged))
        commands = [await broker.take_json(EXECUTE) for _ in range(20)]
        await asyncio.gather(*(broker.publish(declined(c)) for c in commands))
        await eventually(
            lambda: db.recoveries.count_documents({"merchant_id": "merchant_a", "attempts.0": {"$exists": True}}) == 20,
            timeout=60,
        )
        other_merchant, same_merchant = payment("merchant_b"), payment("merchant_a")
        await broker.publish(scheduled(other_merchant))
        await broker.publish(scheduled(same_merchant))
        recoveries = await settled(db, [other_merchant, same_merchant])
        command = await broker.take_json(EXECUTE)

    assert recoveries[other_merchant.payment_id]["plan"]["kind"] == "attempt"
    assert command["payload"]["payment"]["payment_id"] == other_merchant.payment_id
    # A's budget is full: nothing planned now, only a re-plan when the window frees a slot (or the end, when that
    # falls past the recovery's retry window).
    held = recoveries[same_merchant.payment_id]
    assert held["plan"] is None or held["plan"]["kind"] == "replan", held["plan"]
    assert VISA_30_DAYS in held["history"][-1]["reason"]
    mine = budget(db, "merchant_a", VISA)["reservations"]
    # Each slot rewritten with its attempt's outcome when it was reported (the next plan found no room on the card).
    assert len(mine) == 20 and {r["outcome"] for r in mine} == {"declined"}
    assert [r["payment_id"] for r in budget(db, "merchant_b", VISA)["reservations"]] == [other_merchant.payment_id]


async def test_two_scheduler_instances_racing_for_the_last_slot_take_it_once(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    now = datetime.now(UTC)
    db[CARD_BUDGETS].insert_one(
        {
            "_id": card_budget_id("merchant_a", VISA),
            "merchant_id": "merchant_a",
            "token": VISA,
            "version": 19,
            "reservations": [
                {
                    "payment_id": f"12345_pay_earlier_{i}",
                    "attempt_number": 1,
                    "at": now - timedelta(hours=i),
                    "amount": 2250,
                    "currency": "USD",
                    "outcome": "declined",
                }
                for i in range(19)
            ],
            "expires_at": now + timedelta(days=31),
        }
    )
    for instance in ("scheduler-a", "scheduler-b"):
        settings = settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05, service_instance_id=instance)
        serve(build_service(settings))
    payments = [payment() for _ in range(6)]
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await asyncio.gather(*(broker.publish(scheduled(p)) for p in payments))
        recoveries = await settled(db, payments)

    [winner] = planned(recoveries)
    stored = budget(db, "merchant_a", VISA)
    assert len(stored["reservations"]) == 20 and stored["version"] == 20
    assert [r["payment_id"] for r in stored["reservations"] if r["outcome"] == "planned"] == [winner["_id"]]


def cancelled(payment: RecoveryPayment) -> Envelope[RecoveryUpdated]:
    return envelope_for(
        MessageType.RECOVERY_UPDATED,
        RecoveryUpdated(payment=payment, action="cancel_invoice", intent_status=IntentStatus.CANCELLED, version=2),
        correlation_id=payment.payment_id,
        merchant_id=payment.merchant_id,
        profile_id=payment.profile_id,
    )


async def test_a_cancelled_recovery_gives_its_slot_back(scheduler: Any, isolation: Isolation, db: Any) -> None:
    base = payment()
    # A first step a business day away (86 s here): the attempt is still planned when the cancel comes.
    day_away = base.model_copy(update={"retry": base.retry.model_copy(update={"ladder_seconds": (86_400,)})})
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(scheduled(day_away))
        await eventually(lambda: len(budget(db, "merchant_a", VISA).get("reservations", [])) == 1)
        await broker.publish(cancelled(day_away))
        await eventually(lambda: budget(db, "merchant_a", VISA)["reservations"] == [])
    assert db.recoveries.find_one({"_id": day_away.payment_id})["status"] == "cancelled"


@pytest.fixture
async def mongo(isolation: Isolation) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(isolation.mongodb_url, tz_aware=True)
    yield client
    await client.close()


async def test_a_reservation_on_a_budget_read_before_another_was_stored_loses(isolation: Isolation, mongo: Any) -> None:
    budgets = MongoCardBudgetRepository(mongo[isolation.mongodb_database])
    at = datetime.now(UTC)

    async def reserve(read: Any, payment_id: str) -> None:
        reservation = Reservation(payment_id, 1, at, 2250, "USD")
        async with mongo.start_session() as session, await session.start_transaction():
            await budgets.reserve(replace(read, reservations=(*read.reservations, reservation)), Transaction(session))

    # Both read the card before either wrote (no budget stored yet: version 0), then both write.
    first, second = (await budgets.read("merchant_a", [VISA]))[VISA], (await budgets.read("merchant_a", [VISA]))[VISA]
    await reserve(first, "12345_pay_first")
    with pytest.raises(CardBudgetChanged):
        await reserve(second, "12345_pay_second")
    # The same on a stored budget: the compare-and-set is on its version.
    stored = (await budgets.read("merchant_a", [VISA]))[VISA]
    await reserve(stored, "12345_pay_third")
    with pytest.raises(CardBudgetChanged):
        await reserve(stored, "12345_pay_fourth")
    final = (await budgets.read("merchant_a", [VISA]))[VISA]
    assert final.version == 2
    assert [r.payment_id for r in final.reservations] == ["12345_pay_first", "12345_pay_third"]


async def test_a_budget_with_no_reservation_left_is_removed_rather_than_kept_forever(
    isolation: Isolation, mongo: Any
) -> None:
    """A document without reservations would have no `expires_at`, which the TTL index never removes."""
    database = mongo[isolation.mongodb_database]
    budgets = MongoCardBudgetRepository(database)

    async def write(budget: Any) -> None:
        async with mongo.start_session() as session, await session.start_transaction():
            await budgets.reserve(budget, Transaction(session))

    empty = (await budgets.read("merchant_a", [VISA]))[VISA]
    await write(replace(empty, reservations=(Reservation("12345_pay_old", 1, datetime.now(UTC), 2250, "USD"),)))
    stored = (await budgets.read("merchant_a", [VISA]))[VISA]
    # A plan that drops the card's last reservation (its attempt moved to another card, or it aged out).
    await write(replace(stored, reservations=()))
    assert await database[CARD_BUDGETS].find_one({"_id": card_budget_id("merchant_a", VISA)}) is None
    # A writer that read the removed version loses, as on a stored budget.
    with pytest.raises(CardBudgetChanged):
        await write(replace(stored, reservations=()))
    # The card's next reservation starts the document afresh.
    fresh = (await budgets.read("merchant_a", [VISA]))[VISA]
    assert fresh.version == 0
    await write(replace(fresh, reservations=(Reservation("12345_pay_new", 1, datetime.now(UTC), 2250, "USD"),)))
    final = (await budgets.read("merchant_a", [VISA]))[VISA]
    assert (final.version, [r.payment_id for r in final.reservations]) == (1, ["12345_pay_new"])


async def test_the_merchants_word_on_the_cards_next_try_is_kept_alone_and_expires_with_it(
    isolation: Isolation, mongo: Any
) -> None:
    """A budget holding only the merchant's `not_before` (no reservation, no hard decline) is stored, read back as
    it was, and expires then (`expires_at`, the TTL index's field)."""
    database = mongo[isolation.mongodb_database]
    budgets = MongoCardBudgetRepository(database)
    hold = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
    empty = (await budgets.read("merchant_a", [VISA]))[VISA]

    async with mongo.start_session() as session, await session.start_transaction():
        await budgets.reserve(replace(empty, not_before=hold), Transaction(session))

    stored = (await budgets.read("merchant_a", [VISA]))[VISA]
    assert (stored.version, stored.reservations, stored.not_before) == (1, (), hold)
    document = await database[CARD_BUDGETS].find_one({"_id": card_budget_id("merchant_a", VISA)})
    assert document is not None and document["expires_at"] == hold


async def test_a_reservation_the_merchants_word_held_back_keeps_it_and_others_are_stored_as_before(
    isolation: Isolation, mongo: Any
) -> None:
    """`held_until` is stored only on a reservation the word held back (a scheduler of the release before it reads
    every other as it did), read back as it was, and a field this release does not know is ignored; the recoveries
    that ran out of retries under the word (`held_off`) are kept beside."""
    database = mongo[isolation.mongodb_database]
    budgets = MongoCardBudgetRepository(database)
    at = datetime.now(UTC).replace(microsecond=0)
    hold = at + timedelta(days=5)
    held = Reservation("12345_pay_held", 1, hold, 2250, "USD", held_until=hold)
    free = Reservation("12345_pay_free", 1, at, 2250, "USD")
    empty = (await budgets.read("merchant_a", [VISA]))[VISA]

    async with mongo.start_session() as session, await session.start_transaction():
        await budgets.reserve(
            replace(empty, reservations=(held, free), not_before=hold, held_off=("12345_pay_ran_out",)),
            Transaction(session),
        )

    document = await database[CARD_BUDGETS].find_one({"_id": card_budget_id("merchant_a", VISA)})
    assert document is not None
    assert [sorted(r) for r in document["reservations"]] == [
        ["amount", "at", "attempt_number", "currency", "held_until", "outcome", "payment_id"],
        ["amount", "at", "attempt_number", "currency", "outcome", "payment_id"],
    ]
    stored = (await budgets.read("merchant_a", [VISA]))[VISA]
    assert (stored.reservations, stored.held_off) == ((held, free), ("12345_pay_ran_out",))
    await database[CARD_BUDGETS].update_one(
        {"_id": card_budget_id("merchant_a", VISA)}, {"$set": {"reservations.1.later_field": "a later release's"}}
    )
    assert (await budgets.read("merchant_a", [VISA]))[VISA].reservations == (held, free)


async def test_a_stolen_card_met_by_one_recovery_stops_the_merchants_other_planned_on_it(
    scheduler: Any, isolation: Isolation, db: Any
) -> None:
    """The `never` decline is stored on the card's budget (`hard_declines`) in the finder's transaction with a
    re-plan timer for the other recovery planned on the card; the timer loop fires it, and that recovery, whose
    attempt was a business day away, ends without charging the card."""
    finder, base = payment(), payment()
    waiting = base.model_copy(update={"retry": base.retry.model_copy(update={"ladder_seconds": (86_400,)})})
    async with broker_probe(isolation.rabbitmq_url) as broker:
        await broker.publish(scheduled(waiting))
        await eventually(lambda: len(budget(db, "merchant_a", VISA).get("reservations", [])) == 1)
        await broker.publish(scheduled(finder))
        command = await broker.take_json(EXECUTE)
        assert command["payload"]["payment"]["payment_id"] == finder.payment_id
        await broker.publish(declined(command, "stolen_card"))
        await eventually(lambda: db.recoveries.find_one({"_id": waiting.payment_id})["status"] == "failed", timeout=30)
        await asyncio.sleep(0.5)
        assert await broker.depth(EXECUTE) == 0  # the waiting one's attempt was never sent

    stored = budget(db, "merchant_a", VISA)
    [decline] = stored["hard_declines"]
    assert (decline["payment_id"], decline["attempt_number"]) == (finder.payment_id, 1)
    assert "stolen_card" in decline["source"]
    stopped = db.recoveries.find_one({"_id": waiting.payment_id})
    assert stopped["business_status"] == "FAILED_DUE_TO_HARD_DECLINE_ERROR"
    assert f"hard-declined in payment {finder.payment_id}" in " ".join(n["reason"] for n in stopped["history"])
    timers = {t["_id"]: t["status"] for t in db.timers.find({"payment_id": waiting.payment_id})}
    assert timers[f"replan:{waiting.payment_id}:card:{finder.payment_id}:{VISA}"] == "fired"
    assert [status for timer_id, status in timers.items() if timer_id.startswith("execute:")] == ["cancelled"]
