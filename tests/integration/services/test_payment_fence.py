"""The payment fence across intake and the executor, on real RabbitMQ, the MongoDB-wire server and the Stripe
sandbox: a cancel that arrives while the charge is in flight is refused until the attempt settled, and no charge
lands after a cancel intake accepted; and the fence's compare-and-set under concurrent writers."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo import AsyncMongoClient, monitoring

from recovery_cli.scenario import RECOVERY_REQUEST, seed_body
from recovery_cli.seed_scenario import Endpoints, SeedScenario
from recovery_executor.app import build_service as build_executor
from recovery_executor.settings import ExecutorSettings
from recovery_intake.app import build_service as build_intake
from recovery_intake.settings import IntakeSettings
from recovery_runtime.adapters.payment_fences import MongoPaymentFences
from recovery_runtime.mongo import connect
from recovery_runtime.payment_fence import FenceVerdict
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_sandbox.stripe import create_app as stripe_app
from recovery_scheduler.app import build_service as build_scheduler
from recovery_scheduler.settings import SchedulerSettings
from support.broker import eventually
from support.services import settings_for
from support.stack import Isolation

ADMIN = "test_admin_key"
HOLD_SECONDS = 3.0  # the sandbox holds the charge this long before making it: the cancel arrives meanwhile


async def test_a_cancel_racing_a_charge_in_flight_waits_for_it_and_never_precedes_a_charge(
    serve: Any, isolation: Isolation, db: Any
) -> None:
    stripe, receiver = serve(stripe_app()), serve(receiver_app())
    intake = serve(build_intake(settings_for(IntakeSettings, isolation, admin_api_key=ADMIN)))
    serve(build_scheduler(settings_for(SchedulerSettings, isolation, timer_poll_seconds=0.05)))
    serve(build_executor(settings_for(ExecutorSettings, isolation, stripe_api_base=stripe.url)))
    scenario = SeedScenario(Endpoints(intake.url, stripe.url, receiver.url, ADMIN), say=lambda _: None)
    setup = scenario.bootstrap()
    customer, pm = scenario.customer_with_card("pm_card_visa")
    hold = {"payment_method": pm, "mode": "delay", "seconds": HOLD_SECONDS, "times": 1}
    assert httpx.post(f"{stripe.url}/_sandbox/faults", json=hold).status_code < 300
    payment_id = scenario.request_recovery(setup, customer, pm)["id"]
    cancel = seed_body(
        RECOVERY_REQUEST,
        customer_id_from_stripe=customer,
        payment_method_id_from_stripe=pm,
        billing_mca=setup.billing_mca,
        payment_mca=setup.payment_mca,
    )
    cancel["action"] = "cancel_invoice"

    def send_cancel() -> httpx.Response:
        return httpx.post(f"{intake.url}/v2/payments/recovery", json=cancel, headers=setup.headers(), timeout=15)

    # The executor has called the sandbox, which holds the charge: intake must not accept the cancel now.
    await eventually(lambda: db.attempts.find_one({"payment_id": payment_id, "status": "charging"}), timeout=30)
    refused = send_cancel()
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "IR_14" and "being charged" in error["reason"], error
    assert db.payment_intents.find_one({"_id": payment_id})["status"] == "failed"  # nothing stored

    # The billing system sends the cancel again until it is answered: the charge went through meanwhile.
    deferred = 1
    while (answer := send_cancel()).status_code == 409:
        deferred += 1
        assert deferred < 200, answer.text
        await asyncio.sleep(0.1)
    answered_at = time.time()
    assert answer.status_code == 200 and answer.json()["intent_status"] == "succeeded", answer.text

    charges = [c for c in httpx.get(f"{stripe.url}/_sandbox/ledger").json() if c.get("customer") == customer]
    assert [c["status"] for c in charges] == ["succeeded"]
    assert float(charges[0]["created_at"]) < answered_at
    fence = db.payment_fences.find_one({"_id": payment_id})
    assert fence["paid"] is True and fence["cancelled_at"] is None and fence["holder"] is None


async def test_racing_cancels_and_charge_leases_on_the_real_database_never_both_win(
    mongodb_url: str, mongodb_database: str
) -> None:
    """The repository's compare-and-set on the MongoDB wire: for each payment, a cancel and two executors'
    leases (two attempts) sent at once; per payment, a granted cancel and a granted lease never coexist."""
    client = connect(mongodb_url, app_name="fence-race")
    fences = MongoPaymentFences(client[mongodb_database])
    now = datetime.now(UTC)
    until = now + timedelta(seconds=60)
    payments = [f"12345_pay_race{n}" for n in range(20)]
    try:
        answers = await asyncio.gather(
            *(
                asyncio.gather(
                    fences.cancel(payment, now),
                    fences.hold_for_charge(payment, f"{payment}:1", now, until),
                    fences.hold_for_charge(payment, f"{payment}:2", now, until),
                )
                for payment in payments
            )
        )
    finally:
        await client.close()
    for payment, (cancel, *leases) in zip(payments, answers, strict=True):
        granted = [lease for lease in leases if lease is FenceVerdict.GRANTED]
        assert len(granted) <= 1, (payment, leases)  # one attempt at a time
        assert (cancel.verdict is FenceVerdict.GRANTED) != bool(granted), (payment, cancel, leases)
        # A cancel refused by a lease names the lease it met (as BSON keeps it: to the millisecond).
        if cancel.verdict is FenceVerdict.CHARGING:
            assert timedelta(0) <= until - cancel.lease_until < timedelta(milliseconds=1), cancel
        else:
            assert cancel.lease_until is None, cancel


class Commands(monitoring.CommandListener):
    """The commands a client sends to the fence collection (a PyMongo command listener)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == "payment_fences":
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_charge_holds_and_releases_its_fence_with_one_write_each_and_a_wrong_guess_only_costs_a_read(
    mongodb_url: str, mongodb_database: str
) -> None:
    """The executor's hold and release: one write each (no read first); a fence another process wrote (intake's
    tombstone) is found by the compare-and-set that fails on it, read, and decided on what it holds."""
    commands = Commands()
    client = AsyncMongoClient(mongodb_url, event_listeners=[commands], tz_aware=True)
    executor, intake = MongoPaymentFences(client[mongodb_database]), MongoPaymentFences(client[mongodb_database])
    now = datetime.now(UTC)
    until = now + timedelta(seconds=60)
    try:
        assert await executor.hold_for_charge("12345_pay_f1", "12345_pay_f1:1", now, until) is FenceVerdict.GRANTED
        await executor.release("12345_pay_f1", "12345_pay_f1:1", paid=False)
        assert commands.names == ["insert", "update"]

        commands.names.clear()
        assert (await intake.cancel("12345_pay_f1", now)).verdict is FenceVerdict.GRANTED  # a fence never written here
        assert commands.names == ["insert", "find", "update"]

        commands.names.clear()
        # The executor's guess (released, by itself) is stale: the tombstone is found and refuses the charge.
        assert await executor.hold_for_charge("12345_pay_f1", "12345_pay_f1:2", now, until) is FenceVerdict.CANCELLED
        assert commands.names == ["update", "find"]
    finally:
        await client.close()
