"""Strikes aimed at one exact moment (rather than at random): a kill between the connector's answer and the
settle, a kill of the webhook dispatcher in the middle of a webhook retry, a cancel racing the execute, a scheduler
paused while it holds a timer claim; and the proxies that slow down or cut off a service's database and broker
connections."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fault_harness import SERVICES, FaultRun, Recovery, epoch, record_payment
from tcp_proxy import TcpProxy

from recovery_cli.seed_scenario import ScenarioFailed
from recovery_cli.stack import free_port, secantus_url

ATTEMPTS = "attempts"
TIMER_CLAIMS = "timer_claims"
TIMERS = "timers"
WEBHOOK_EVENTS = "webhook_events"
# A scheduler pause waits this long for a claim before it makes timers fall due itself.
NUDGE_AFTER_SECONDS = 3.0
# How long the billing system keeps sending a cancel intake answers 409 (an attempt being charged settles in
# seconds; a lease left by a killed executor ends within CHARGE_LEASE_SECONDS, 60 by default).
CANCEL_RETRY_SECONDS = 120.0


class StrikeMissed(AssertionError):
    """The harness could not catch the moment it aims at: a setup failure, not a violation."""


def kill_between_answer_and_settle(run: FaultRun, recovery: Recovery, timeout: float = 30.0) -> dict[str, Any]:
    """Once the sandbox recorded the recovery's charge (its answer held back by `timeout_after_charge`), SIGKILL
    the executor holding the attempt as `charging`, then start it again. Returns what was struck (`victim`: the
    instance name)."""
    deadline = time.monotonic() + timeout
    client, db = run.database()
    with client:
        while time.monotonic() < deadline:
            charged = run.charges_of(recovery, run.ledger())
            attempt = db[ATTEMPTS].find_one({"payment_id": recovery.payment_id, "status": "charging"})
            if charged and attempt is not None:
                victim = str(attempt["owner"])
                killed_at = run.kill(victim)
                # Proof of the moment: charged at the connector, still `charging` in the executor's record.
                after = db[ATTEMPTS].find_one({"_id": attempt["_id"]}) or {}
                if after.get("status") != "charging":
                    raise StrikeMissed(f"{recovery.payment_id}: the attempt settled before the kill: {after}")
                # Started again without waiting until it is ready (the other executor takes the attempt over
                # meanwhile); the scenario checks it became ready before its checks (`ManagedProcess.wait_ready`).
                run.stack.process(victim).start()
                run.figures.restarts += 1
                return {
                    "payment_id": recovery.payment_id,
                    "victim": victim,
                    "ms_after_charge": round((killed_at - float(charged[0]["created_at"])) * 1000),
                }
            time.sleep(0.02)
    raise StrikeMissed(f"{recovery.payment_id}: no charge with a `charging` attempt within {timeout:.0f} s")


def kill_dispatcher_mid_retry(run: FaultRun, recovery: Recovery, timeout: float = 30.0) -> dict[str, Any]:
    """Once a durable retry of the recovery's webhook is at its merchant's endpoint, the answer held back (the
    receiver's `sleep_seconds`), SIGKILL the dispatcher holding the event `delivering` for it, then start it again
    and wait until it is ready (so that the other dispatcher, which gets the retry's message back at once, is never
    the only one left for long). Returns what was struck: `victim`, the event's `lease_until` (epoch seconds) and
    the receiver's `sequence` of the request cut off."""
    path = run.merchants[recovery.merchant].webhook_path
    deadline = time.monotonic() + timeout
    client, db = run.database()
    with client:
        while time.monotonic() < deadline:
            held = [
                d
                for d in run.deliveries(path)
                if record_payment(d) == recovery.payment_id
                and d["response"]["sleep_seconds"]
                and "answered_at" not in d
            ]
            event = db[WEBHOOK_EVENTS].find_one(
                {"payment_id": recovery.payment_id, "delivery_attempt": "initial_attempt", "status": "delivering"}
            )
            if not held or event is None or not event.get("retry_index"):
                time.sleep(0.02)
                continue
            owner = str(event["lease_owner"])
            victim = owner.rpartition("/")[0]  # the lease owner is `<instance>/<pid>-<token>`
            killed_at = run.kill(victim)
            # Proof of the moment: still `delivering` under the victim's lease, the request not answered before.
            after = db[WEBHOOK_EVENTS].find_one({"_id": event["_id"]}) or {}
            if after.get("status") != "delivering" or after.get("lease_owner") != owner:
                raise StrikeMissed(f"{recovery.payment_id}: the retry settled before the kill: {after}")
            cut = next(d for d in run.deliveries(path) if d["sequence"] == held[0]["sequence"])
            if "answered_at" in cut and epoch(cut["answered_at"]) < killed_at:
                raise StrikeMissed(f"{recovery.payment_id}: the retry was answered before the kill: {cut}")
            run.stack.start_process(victim)
            run.figures.restarts += 1
            return {
                "payment_id": recovery.payment_id,
                "victim": victim,
                "lease_until": after["lease_until"].replace(tzinfo=UTC).timestamp(),
                "sequence": cut["sequence"],
            }
    raise StrikeMissed(f"{recovery.payment_id}: no webhook retry held at the endpoint within {timeout:.0f} s")


def cancel(run: FaultRun, recovery: Recovery) -> None:
    """The billing system cancels the invoice: records intake's answer and when it came (the moment the cancel was
    accepted, if the answer says `cancelled`). A 409 (an attempt is being charged: docs/contracts.md) is what a
    billing system sends the cancel again for, a moment later."""
    deadline = time.monotonic() + CANCEL_RETRY_SECONDS
    while True:
        try:
            answer = run.send_again(recovery, recovery.payment_method, "cancel_invoice")
            break
        except ScenarioFailed as failed:
            if " answered 409" not in str(failed) or time.monotonic() > deadline:
                raise
            recovery.cancel_deferrals += 1
            time.sleep(0.2)
    recovery.cancel_answered_at = time.time()
    recovery.cancel_answer = str(answer.get("intent_status"))


def cancel_later(run: FaultRun, recovery: Recovery, delay: float) -> threading.Thread:
    """`cancel` `delay` seconds from now, in a thread."""

    def later() -> None:
        time.sleep(delay)
        cancel(run, recovery)

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    return thread


def cancel_while_charging(run: FaultRun, recovery: Recovery, timeout: float = 30.0) -> None:
    """`cancel` the moment the executor holds the recovery's attempt as `charging` (its connector call made: the
    sandbox holds it before charging, `Kind.CANCEL_IN_FLIGHT`)."""
    deadline = time.monotonic() + timeout
    client, db = run.database()
    with client:
        while db[ATTEMPTS].find_one({"payment_id": recovery.payment_id, "status": "charging"}) is None:
            if time.monotonic() > deadline:
                raise StrikeMissed(f"{recovery.payment_id}: no attempt was charging within {timeout:.0f} s")
            time.sleep(0.01)
    cancel(run, recovery)


def cancel_once_succeeded(run: FaultRun, recovery: Recovery, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while run.status_of(recovery) != "succeeded":
        if time.monotonic() > deadline:
            raise StrikeMissed(f"{recovery.payment_id} did not succeed within {timeout:.0f} s")
        time.sleep(0.1)
    cancel(run, recovery)


# Longer than any delay a slowed proxy adds to a write (`ProxiedDependencies.slow`).
IN_FLIGHT_WRITES_SECONDS = 0.3


def pause_while_holding_a_claim(
    run: FaultRun, scheduler: str, seconds: float, nudge: Callable[[], object], timeout: float = 60.0
) -> dict[str, Any]:
    """SIGSTOP `scheduler` the moment it holds a timer claim (a record in `timer_claims` it owns, its timers marked
    fired under it, the record still there once the process is stopped: published or not, not completed), keep it
    stopped `seconds` (longer than its lease: another instance takes the claim over and fires its timers again),
    then SIGCONT. `nudge()` makes timers fall due (a new recovery) when none was caught for a few seconds."""
    process = run.stack.process(scheduler)
    assert process.pid is not None
    deadline = time.monotonic() + timeout
    nudged = time.monotonic()
    client, db = run.database()
    with client:
        while time.monotonic() < deadline:
            held = db[TIMER_CLAIMS].find_one({"owner": scheduler})
            # A claim whose timers are already marked fired under it: the ones another instance must fire again.
            if held is None or db[TIMERS].find_one({"claim_id": held["_id"]}) is None:
                if time.monotonic() - nudged > NUDGE_AFTER_SECONDS:
                    threading.Thread(target=nudge, daemon=True).start()
                    nudged = time.monotonic()
                time.sleep(0.005)
                continue
            os.killpg(process.pid, signal.SIGSTOP)
            # A write the process sent before it stopped may still be on its way (a slowed proxy holds it for
            # tens of milliseconds): look only once it has landed.
            time.sleep(IN_FLIGHT_WRITES_SECONDS)
            if db[TIMER_CLAIMS].find_one({"_id": held["_id"], "owner": scheduler}) is None:
                os.killpg(process.pid, signal.SIGCONT)  # completed in between: catch the next one
                continue
            run.figures.pauses += 1
            try:
                time.sleep(seconds)
            finally:
                os.killpg(process.pid, signal.SIGCONT)
            return {"scheduler": scheduler, "claim": str(held["_id"]), "paused_seconds": seconds}
    raise StrikeMissed(f"{scheduler} held no timer claim within {timeout:.0f} s")


@dataclass
class ProxiedDependencies:
    """A proxy in front of the database and one in front of the broker for each service: every connection a
    service makes to either goes through its own proxy, so one service can be cut off alone."""

    database_port: int
    broker_url: str
    database: dict[str, TcpProxy] = field(default_factory=dict)
    broker: dict[str, TcpProxy] = field(default_factory=dict)

    @classmethod
    def start(cls, broker_url: str, proxies: list[TcpProxy]) -> ProxiedDependencies:
        deps = cls(database_port=free_port(), broker_url=broker_url)
        broker_port = urlsplit(broker_url).port
        assert broker_port is not None
        for service in SERVICES:
            deps.database[service] = TcpProxy(deps.database_port, name=f"{service}-to-database").start()
            deps.broker[service] = TcpProxy(broker_port, name=f"{service}-to-broker").start()
            proxies += [deps.database[service], deps.broker[service]]
        return deps

    def all(self) -> list[TcpProxy]:
        return [*self.database.values(), *self.broker.values()]

    def component_env(self) -> dict[str, dict[str, str]]:
        env = {}
        for service in SERVICES:
            parts = urlsplit(self.broker_url)
            credentials = parts.netloc.rpartition("@")[0]
            netloc = f"{credentials}@127.0.0.1:{self.broker[service].port}"
            env[service] = {
                "MONGODB_URL": secantus_url(self.database[service].port),
                "RABBITMQ_URL": urlunsplit(parts._replace(netloc=netloc)),
            }
        return env

    def slow(self, latency: float, jitter: float) -> None:
        for proxy in self.all():
            proxy.slow(latency, jitter)

    def cut_off(self, service: str, seconds: float) -> None:
        """`service` loses its database and broker connections and cannot open new ones for `seconds`."""
        cut = (self.database[service], self.broker[service])
        for proxy in cut:
            proxy.cut()
        try:
            time.sleep(seconds)
        finally:
            for proxy in cut:
                proxy.restore()
