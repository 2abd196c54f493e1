"""The fault suite's driver: push a batch of recoveries through the real stack, then check every invariant.

What is checked after each scenario (a violation is a line of text; the scenario passes with none):
- every recovery reached its end: `succeeded` (immediate, soft decline then success, connector timeout) or
  `failed` (hard decline);
- at most one charge per planned attempt (sandbox ledger entries per idempotency key) and exactly one
  successful charge per recovered payment (none for a hard decline);
- exactly one initial webhook event per (payment, event type) in `webhook_events`, of the expected type only,
  and the receiver got it with a 2xx answer (once the endpoint is back), always under that one event id;
- nothing unaccounted: every outbox is empty, every consumer queue is empty, the dead-letter queues hold only
  the injected poison messages; and, where no process was killed, the message balance from the services'
  /metrics (see `MessageBalance`).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
from pymongo import MongoClient

from recovery_cli.demo import MerchantSetup, ScenarioFailed
from recovery_cli.scenario import BILLING_CONNECTOR_ACCOUNT, seed_body
from recovery_cli.stack import Stack
from recovery_runtime.bus import REJECTION_HEADER
from recovery_runtime.topology import QUEUES
from support.stack import seed_scenario

# Scales kills, restarts and batch sizes: 1 in CI; the documented full run uses more (docs/guarantees.md).
ITERATIONS = max(1, int(os.environ.get("FAULTS_ITERATIONS", "1")))
TRACKER = "/v2/process-trackers/revenue-recovery-workflow"
# Business seconds; at TIME_SCALE 1000 each step is 60 ms of wall time.
SHORT_LADDER = [60, 60, 60, 60, 60, 60]
SERVICES = ("intake", "scheduler", "executor", "webhook-dispatcher")


class Kind:
    IMMEDIATE = "immediate_success"
    SOFT = "soft_decline_then_success"
    HARD = "hard_decline"
    TIMEOUT = "connector_timeout"


KINDS = (Kind.IMMEDIATE, Kind.SOFT, Kind.HARD, Kind.TIMEOUT)
EXPECTED = {
    Kind.IMMEDIATE: ("succeeded", "payment_succeeded"),
    Kind.SOFT: ("succeeded", "payment_succeeded"),
    Kind.TIMEOUT: ("succeeded", "payment_succeeded"),
    Kind.HARD: ("failed", "payment_failed"),
}


# Short waits so a crash is recovered from within the test's time; production keeps the defaults.
COMMON_ENV = {
    "OUTBOX_RELAY_AFTER_SECONDS": "2",
    "CONSUMER_WATCHDOG_SECONDS": "1",
    "PUBLISH_TIMEOUT_SECONDS": "5",
    "SHUTDOWN_GRACE_SECONDS": "5",
}
COMPONENT_ENV = {
    # The sandbox holds a timed-out charge's answer 2.5 s; the executor gives up after 1 s and PSYNCs.
    "executor": {"CONNECTOR_TIMEOUT_SECONDS": "1", "ABANDONED_ATTEMPT_SECONDS": "3"},
    "webhook-dispatcher": {
        # Business seconds (TIME_SCALE 1000): 1 min, 5 min, 15 min, then every 30 min for a day.
        "WEBHOOK_RETRY_SCHEDULE_SECONDS": ",".join(["60", "300", "900"] + ["1800"] * 48),
        "WEBHOOK_IN_PROCESS_ATTEMPTS": "1",
        "WEBHOOK_DELIVERY_LEASE_SECONDS": "5",
        "WEBHOOK_CONNECT_TIMEOUT_SECONDS": "2",
        "WEBHOOK_TOTAL_TIMEOUT_SECONDS": "3",
    },
}


@dataclass
class Recovery:
    kind: str
    customer: str
    payment_method: str
    payment_id: str = ""


@dataclass
class Figures:
    """What the suite did and found, printed at the end of the run."""

    scenarios: int = 0
    kills: int = 0
    graceful_stops: int = 0
    restarts: int = 0
    broker_restarts: int = 0
    database_restarts: int = 0
    duplicates_injected: int = 0
    poison_injected: int = 0
    recoveries_checked: int = 0
    messages_balanced: int = 0
    violations: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"scenarios run            {self.scenarios}",
            f"kill -9 of a service     {self.kills}",
            f"SIGTERM of a service     {self.graceful_stops}",
            f"restarts (any process)   {self.restarts}",
            f"  RabbitMQ stop/start    {self.broker_restarts}",
            f"  MongoDB stop/start     {self.database_restarts}",
            f"duplicates injected      {self.duplicates_injected}",
            f"poison messages injected {self.poison_injected}",
            f"recoveries checked       {self.recoveries_checked}",
            f"messages balanced        {self.messages_balanced}",
            f"violations found         {len(self.violations)}",
            *(f"  - {v}" for v in self.violations),
        ]


def retrying(call: Callable[[], Any], timeout: float = 90.0) -> Any:
    """An HTTP step while processes die and come back: connection errors and 5xx are retried until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (ScenarioFailed, httpx.HTTPError, AssertionError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


class FaultRun:
    """One scenario's batch of recoveries on `stack`, and the checks after it."""

    def __init__(self, stack: Stack, scenario: str, figures: Figures) -> None:
        self.stack = stack
        self.name = scenario
        self.figures = figures
        self.scenario = seed_scenario(stack)
        self.recoveries: list[Recovery] = []
        self.poison_ids: list[str] = []
        self.processes_killed = False
        self.setup: MerchantSetup | None = None

    # ---- driving -------------------------------------------------------------------------------------------

    def bootstrap(self) -> MerchantSetup:
        """The seed's merchant, with a billing account whose ladder is short (retries come fast)."""
        scenario = self.scenario
        setup = retrying(scenario.bootstrap)
        body = seed_body(BILLING_CONNECTOR_ACCOUNT, payment_mca=setup.payment_mca, profile_id=setup.profile_id)
        body["feature_metadata"]["revenue_recovery"]["retry_ladder_seconds"] = SHORT_LADDER
        body["feature_metadata"]["revenue_recovery"]["max_retry_count"] = 9
        body["connector_label"] = "billing_faults"
        created = retrying(
            lambda: scenario._call(
                "POST",
                f"{scenario.endpoints.intake_url}/v2/connector-accounts",
                json_body=body,
                headers=setup.headers(),
            )
        )
        self.setup = MerchantSetup(**{**setup.__dict__, "billing_mca": created["id"]})
        return self.setup

    def push_batch(self, per_kind: int) -> list[Recovery]:
        """`per_kind` recoveries of each kind, each with its own customer, card and invoice."""
        assert self.setup is not None
        kinds = [kind for kind in KINDS for _ in range(per_kind)]
        random.shuffle(kinds)
        for kind in kinds:
            card = "pm_card_chargeDeclinedLostCard" if kind == Kind.HARD else "pm_card_visa"
            customer, pm = retrying(lambda card=card: self.scenario.customer_with_card(card))
            if kind == Kind.SOFT:
                self._fault(payment_method=pm, mode="decline", decline_code="insufficient_funds", times=1)
            elif kind == Kind.TIMEOUT:
                self._fault(payment_method=pm, mode="timeout_after_charge", seconds=2.5, times=1)
            recovery = Recovery(kind, customer, pm)
            reference = f"inv_{uuid.uuid4().hex[:12]}"
            # The same invoice again after a lost answer is the same payment: intake de-duplicates it.
            answer = retrying(
                lambda reference=reference, customer=customer, pm=pm: self.scenario.request_recovery(
                    self.setup, customer, pm, merchant_reference_id=reference
                )
            )
            recovery.payment_id = str(answer["id"])
            self.recoveries.append(recovery)
        return self.recoveries

    def _fault(self, **fields: Any) -> None:
        retrying(lambda: httpx.post(f"{self.stack.stripe_url}/_sandbox/faults", json=fields).raise_for_status())

    def inject_poison(self) -> None:
        """One message no consumer can apply, straight into every consumer queue."""
        ids = [f"poison-{self.name}-{queue}" for queue in QUEUES]

        async def publish() -> None:
            connection = await aio_pika.connect(self.stack.rabbitmq_url)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                for queue, message_id in zip(QUEUES, ids, strict=True):
                    message = aio_pika.Message(
                        b'{"poison": true, "why": "not an envelope"}',
                        message_id=message_id,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type="application/json",
                    )
                    await channel.default_exchange.publish(message, routing_key=queue)

        asyncio.run(publish())
        self.poison_ids = ids
        self.figures.poison_injected += len(ids)

    # ---- waiting -------------------------------------------------------------------------------------------

    def status_of(self, recovery: Recovery) -> str | None:
        assert self.setup is not None
        try:
            answer = self.scenario.http.get(
                f"{self.stack.intake_url}{TRACKER}/{recovery.payment_id}", headers=self.setup.headers()
            )
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        return str(answer.json().get("recovery_status"))

    def wait_until_settled(self, timeout: float) -> None:
        """Until every recovery is terminal, every expected webhook was received, and the system is idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = [r for r in self.recoveries if self.status_of(r) not in ("succeeded", "failed")]
            if not pending and not self._undelivered() and self._idle():
                return
            time.sleep(1.0)
        # Not an exception: the checks that follow say precisely what did not happen.

    def _undelivered(self) -> list[tuple[str, str]]:
        delivered = {(w.object_id, w.event_type) for w in self._received_ok()}
        wanted = [(r.payment_id, EXPECTED[r.kind][1]) for r in self.recoveries]
        return [pair for pair in wanted if pair not in delivered]

    def _received_ok(self) -> list[Any]:
        try:
            received = self.scenario.received()
        except ScenarioFailed:
            return []
        return [w for w in received if 200 <= int(self._response_status(w)) < 300]

    def _response_status(self, webhook: Any) -> int:
        return int(self._records_by_sequence().get(webhook.sequence, {}).get("status", 0))

    def _records_by_sequence(self) -> dict[int, dict[str, Any]]:
        records = httpx.get(f"{self.stack.receiver_url}/received").json()
        return {int(r.get("sequence", 0)): r.get("response") or {} for r in records}

    def _idle(self) -> bool:
        return not self.outbox_leftovers() and not any(self.queue_depths().values())

    # ---- looking -------------------------------------------------------------------------------------------

    def database(self) -> Any:
        client: MongoClient[dict[str, Any]] = MongoClient(self.stack.mongodb_url, serverSelectionTimeoutMS=5000)
        return client, client[self.stack.config.mongodb_database]

    def outbox_leftovers(self) -> dict[str, int]:
        try:
            client, db = self.database()
            with client:
                # Outbox collections, and messages embedded in state documents (`UnitOfWork.write`): field
                # `outbox` of any collection. Both must be empty once everything is published.
                leftovers = {}
                for name in db.list_collection_names():
                    if name.startswith("outbox_"):
                        count = db[name].count_documents({})
                    else:
                        count = db[name].count_documents({"outbox.0": {"$exists": True}})
                    if count:
                        leftovers[name if name.startswith("outbox_") else f"{name}.outbox"] = count
                return leftovers
        except Exception as error:
            return {"(database unreachable)": 1, str(error)[:80]: 1}

    def queue_depths(self, dead_letter: bool = False) -> dict[str, int]:
        names = [q.dead_letter_queue if dead_letter else q.name for q in QUEUES.values()]

        async def depths() -> dict[str, int]:
            connection = await aio_pika.connect(self.stack.rabbitmq_url)
            async with connection:
                channel = await connection.channel()
                found = {}
                for name in names:
                    declared = await channel.declare_queue(name, passive=True)
                    found[name] = int(declared.declaration_result.message_count or 0)
                return found

        try:
            return asyncio.run(depths())
        except Exception:
            return {"(broker unreachable)": 1}

    def dead_letters(self) -> dict[str, list[tuple[str | None, str]]]:
        """Every DLQ's messages as (message id, reason), read without removing them."""

        async def read() -> dict[str, list[tuple[str | None, str]]]:
            connection = await aio_pika.connect(self.stack.rabbitmq_url)
            async with connection:
                channel = await connection.channel()
                found: dict[str, list[tuple[str | None, str]]] = {}
                for queue in QUEUES.values():
                    dlq = await channel.declare_queue(queue.dead_letter_queue, passive=True)
                    letters = []
                    while (message := await dlq.get(no_ack=False, fail=False)) is not None:
                        headers = message.headers or {}
                        reason = headers.get(REJECTION_HEADER) or str(headers.get("x-death", "no reason"))
                        letters.append((message.message_id, str(reason)))
                    found[queue.name] = letters
                await channel.close()  # hands every message back to its queue
                return found

        return asyncio.run(read())

    def metrics(self) -> dict[str, float]:
        """The services' counters summed over every running instance: {"name{labels}": value}."""
        totals: dict[str, float] = defaultdict(float)
        for service in SERVICES:
            for name in self.stack.instances(service):
                text = httpx.get(f"{self.stack.url(name)}/metrics", timeout=10).text
                for line in text.splitlines():
                    if line.startswith("recovery_messages_") and not line.startswith("#"):
                        key, _, value = line.rpartition(" ")
                        totals[key] += float(value)
        return dict(totals)

    # ---- checking ------------------------------------------------------------------------------------------

    def check(self, balance: bool) -> list[str]:
        violations: list[str] = []
        violations += self._check_outcomes()
        violations += self._check_charges()
        violations += self._check_webhooks()
        violations += self._check_accounting(balance)
        self.figures.recoveries_checked += len(self.recoveries)
        self.figures.scenarios += 1
        self.figures.violations += [f"[{self.name}] {v}" for v in violations]
        return violations

    def _check_outcomes(self) -> list[str]:
        found = []
        for r in self.recoveries:
            status = self.status_of(r)
            if status != EXPECTED[r.kind][0]:
                found.append(f"{r.payment_id} ({r.kind}) ended {status!r}, expected {EXPECTED[r.kind][0]!r}")
        return found

    def _check_charges(self) -> list[str]:
        ledger = httpx.get(f"{self.stack.stripe_url}/_sandbox/ledger").json()
        found = []
        per_key = Counter(entry.get("idempotency_key") for entry in ledger)
        for key, count in per_key.items():
            if key is None:
                found.append(f"{count} charge(s) without an idempotency key")
            elif count > 1:
                found.append(f"{count} charges for one planned attempt ({key})")
        for r in self.recoveries:
            mine = [e for e in ledger if (e.get("metadata") or {}).get("payment_id") == r.payment_id]
            succeeded = [e for e in mine if e["status"] == "succeeded"]
            wanted = 0 if r.kind == Kind.HARD else 1
            if len(succeeded) != wanted:
                found.append(f"{r.payment_id} ({r.kind}): {len(succeeded)} successful charge(s), expected {wanted}")
        return found

    def _check_webhooks(self) -> list[str]:
        found = []
        client, db = self.database()
        with client:
            initial = list(db["webhook_events"].find({"delivery_attempt": "initial_attempt"}))
        per_payment: dict[str, Counter[str]] = defaultdict(Counter)
        event_ids: dict[tuple[str, str], str] = {}
        for event in initial:
            per_payment[str(event.get("payment_id"))][str(event.get("event_type"))] += 1
            event_ids[(str(event.get("payment_id")), str(event.get("event_type")))] = str(event.get("event_id"))
        received = self.scenario.received()
        statuses = self._records_by_sequence()
        for r in self.recoveries:
            expected_type = EXPECTED[r.kind][1]
            counts = per_payment.get(r.payment_id, Counter())
            if dict(counts) != {expected_type: 1}:
                found.append(
                    f"{r.payment_id} ({r.kind}): initial webhook events {dict(counts)}, expected one {expected_type}"
                )
            mine = [w for w in received if w.object_id == r.payment_id]
            ok = [w for w in mine if 200 <= int(statuses.get(w.sequence, {}).get("status", 0)) < 300]
            if not any(w.event_type == expected_type for w in ok):
                found.append(f"{r.payment_id} ({r.kind}): {expected_type} never delivered with a 2xx")
            ids = {str((w.body or {}).get("event_id")) for w in mine}
            if len(ids) > 1:
                found.append(f"{r.payment_id}: the merchant got {len(ids)} different events: {sorted(ids)}")
            wanted_id = event_ids.get((r.payment_id, expected_type))
            if ids and wanted_id not in ids:
                found.append(f"{r.payment_id}: delivered event id {ids} is not the stored initial event {wanted_id}")
        return found

    def _check_accounting(self, balance: bool) -> list[str]:
        found = []
        if leftovers := self.outbox_leftovers():
            found.append(f"outbox records never published: {leftovers}")
        if busy := {q: n for q, n in self.queue_depths().items() if n}:
            found.append(f"consumer queues not drained: {busy}")
        letters = self.dead_letters()
        for queue, held in letters.items():
            ids = {message_id for message_id, _ in held}
            poison = f"poison-{self.name}-{queue}"
            if ids - {poison}:
                found.append(f"{queue}.dlq holds messages other than the injected poison: {held}")
            if poison in {p for p in self.poison_ids} and poison not in ids:
                found.append(f"{queue}.dlq lost the injected poison message")
            if any(not reason.startswith("invalid message") for message_id, reason in held if message_id == poison):
                found.append(f"{queue}.dlq: poison dead-lettered without the validation reason: {held}")
        if balance:
            tally = MessageBalance.of(self.metrics(), self.queue_depths(), letters, len(self.poison_ids))
            found += tally.problems()
            self.figures.messages_balanced += int(tally.routed)
        return found


@dataclass
class MessageBalance:
    """published = consumed + dead-lettered, counted per queue copy.

    - routed: every confirmed publish (`recovery_messages_published_total{message_type}`, both copies when
      duplicating) times the number of consumer queues bound to that type, plus the poison messages the test
      put straight into queues;
    - settled: deliveries that ended (`recovery_messages_consumed_total` with result applied, duplicate or
      rejected; `failed` is not an end: the message goes back to its queue), plus what RabbitMQ dead-lettered
      itself (messages in a DLQ that no service put there: DLQ depth minus
      `recovery_messages_dead_lettered_total`), plus what still waits in a queue (zero once idle).
    Exact while every process keeps its counters (no kill -9). A publish whose confirm was lost in a broker
    restart is republished by the outbox relay and counted once while delivered twice: that surplus must show
    up as duplicates, so the check is `routed <= settled <= routed + duplicates`.
    """

    routed: float
    settled: float
    duplicates: float

    @classmethod
    def of(
        cls,
        metrics: dict[str, float],
        depths: dict[str, int],
        letters: dict[str, list[tuple[str | None, str]]],
        injected: int,
    ) -> MessageBalance:
        fanout = Counter(q.message_type.value for q in QUEUES.values())
        routed = float(injected)
        settled = float(sum(depths.values()))
        duplicates = 0.0
        dead_lettered_by_services = 0.0
        for key, value in metrics.items():
            labels = dict(re.findall(r'(\w+)="([^"]*)"', key))
            if key.startswith("recovery_messages_published_total"):
                routed += value * fanout.get(labels.get("message_type", ""), 0)
            elif key.startswith("recovery_messages_consumed_total") and labels.get("result") in (
                "applied",
                "duplicate",
                "rejected",
            ):
                settled += value
                if labels["result"] == "duplicate":
                    duplicates += value
            elif key.startswith("recovery_messages_dead_lettered_total"):
                dead_lettered_by_services += value
        settled += sum(len(held) for held in letters.values()) - dead_lettered_by_services
        return cls(routed, settled, duplicates)

    def problems(self) -> list[str]:
        if self.routed <= self.settled <= self.routed + self.duplicates:
            return []
        return [
            f"message balance: {self.routed:.0f} copies routed, {self.settled:.0f} settled "
            f"(consumed + dead-lettered + queued), {self.duplicates:.0f} duplicates"
        ]


class Chaos:
    """A background thread that does `action` every `every` seconds, `times` times, then stops."""

    def __init__(self, action: Callable[[int], None], times: int, every: float) -> None:
        self.errors: list[BaseException] = []
        self._action = action
        self._times = times
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for round_number in range(self._times):
            time.sleep(self._every * random.uniform(0.5, 1.5))
            try:
                self._action(round_number)
            except BaseException as error:
                self.errors.append(error)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=600)


def all_instances(stack: Stack, services: Iterable[str] = SERVICES) -> list[str]:
    return [name for service in services for name in stack.instances(service)]
