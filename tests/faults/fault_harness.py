"""The fault suite's driver: push a batch of recoveries through the real stack, then check every invariant
(`invariants.py` says what is checked).

A batch mixes kinds of recovery (`Kind`): each kind is a card, the sandbox fault armed on it before the request,
the end the recovery must reach and the webhook events its merchant must get, in order. A run may have several
merchants, each with its own webhook path on the receiver (so the receiver can answer each differently); a
merchant's billing account records successful retries back to the receiver's `/record-back` (`custombilling`), or
to the Chargebee sandbox (a merchant disputes.py adds).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
import httpx
from figures import Figures
from pymongo import MongoClient

from recovery_cli.scenario import BILLING_CONNECTOR_ACCOUNT, seed_body
from recovery_cli.seed_scenario import MerchantSetup, ScenarioFailed
from recovery_cli.stack import Stack
from recovery_runtime.bus import REJECTION_HEADER
from recovery_runtime.topology import QUEUES
from support.stack import seed_scenario

# Scales kills, restarts and batch sizes: 1 in CI; the documented full run uses more (docs/guarantees.md).
ITERATIONS = max(1, int(os.environ.get("FAULTS_ITERATIONS", "1")))
TRACKER = "/v2/process-trackers/revenue-recovery-workflow"
# Business seconds; at TIME_SCALE 1000 each step is 60 ms of wall time.
SHORT_LADDER = [60, 60, 60, 60, 60, 60]
SERVICES = ("intake", "scheduler", "executor", "webhook-dispatcher", "analytics")
RECORD_BACK_PATH = "/record-back"
ENDED = ("succeeded", "failed", "cancelled")
VISA, LOST_CARD = "pm_card_visa", "pm_card_chargeDeclinedLostCard"
SUCCEEDED, FAILED, CANCELLED = "payment_succeeded", "payment_failed", "payment_cancelled"
DISPUTE_OPENED, DISPUTE_LOST = "dispute_opened", "dispute_lost"
CUSTOMBILLING = "custombilling"


class Kind:
    IMMEDIATE = "immediate_success"
    SOFT = "soft_decline_then_success"
    HARD = "hard_decline"
    TIMEOUT = "connector_timeout"
    # The connector misbehaving (sandbox fault modes): each ends in one charge through PSYNC.
    STRIPE_500 = "stripe_500"
    STRIPE_409 = "stripe_409_key_in_flight"
    STRIPE_429 = "stripe_429"
    STRIPE_IDEMPOTENCY = "stripe_idempotency_error"
    # The sandbox charges and holds its answer while the harness kills the executor waiting for it.
    KILLED_BEFORE_SETTLE = "killed_between_answer_and_settle"
    # Cancelled by the billing system around its first attempt: ends charged (before the cancel) or cancelled.
    CANCEL_RACE = "cancel_racing_execute"  # the cancel sent at a random moment around the attempt's due time
    CANCEL_IN_FLIGHT = "cancel_while_charge_in_flight"  # sent once the executor called the connector (held 1.5 s)
    CANCEL_AFTER_SUCCESS = "cancel_after_success"  # sent once the payment succeeded: not accepted
    # Hard decline (payment_failed), then the billing system sends a new card: payment_succeeded, second.
    REOPENED = "failed_then_new_card"


# The end of a recovery its billing system cancels: `succeeded` if it was charged (before the cancel), else
# `cancelled`.
CHARGED_OR_CANCELLED = "succeeded if charged, else cancelled"


@dataclass(frozen=True)
class KindSpec:
    card: str
    # Armed at the sandbox on the customer's payment method before the request (`/_sandbox/faults`).
    fault: dict[str, Any] | None
    status: str
    # Webhook events in order (for CHARGED_OR_CANCELLED: if charged; `payment_cancelled` alone if cancelled).
    events: tuple[str, ...]


KIND_SPECS = {
    Kind.IMMEDIATE: KindSpec(VISA, None, "succeeded", (SUCCEEDED,)),
    Kind.SOFT: KindSpec(VISA, {"mode": "decline", "decline_code": "insufficient_funds"}, "succeeded", (SUCCEEDED,)),
    Kind.HARD: KindSpec(LOST_CARD, None, "failed", (FAILED,)),
    # The sandbox holds a timed-out charge's answer 2.5 s; the executor gives up after 1 s and PSYNCs.
    Kind.TIMEOUT: KindSpec(VISA, {"mode": "timeout_after_charge", "seconds": 2.5}, "succeeded", (SUCCEEDED,)),
    Kind.STRIPE_500: KindSpec(VISA, {"mode": "error_500_before_charge"}, "succeeded", (SUCCEEDED,)),
    # The first call waits 10 s at the sandbox before it charges (its key in flight); the executor gives up after
    # 3 s (CONNECTOR_TIMEOUT_SECONDS of the connector scenario), PSYNC finds nothing and sends the same call
    # again: 409 idempotency_key_in_use, until the first call charges and a PSYNC finds it.
    Kind.STRIPE_409: KindSpec(VISA, {"mode": "delay", "seconds": 10.0}, "succeeded", (SUCCEEDED,)),
    Kind.STRIPE_429: KindSpec(VISA, {"mode": "rate_limited"}, "succeeded", (SUCCEEDED,)),
    Kind.STRIPE_IDEMPOTENCY: KindSpec(VISA, {"mode": "idempotency_error"}, "succeeded", (SUCCEEDED,)),
    # Held longer than the executor waits (3 s in the connector scenario), so it is still waiting when killed.
    Kind.KILLED_BEFORE_SETTLE: KindSpec(
        VISA, {"mode": "timeout_after_charge", "seconds": 8}, "succeeded", (SUCCEEDED,)
    ),
    Kind.CANCEL_RACE: KindSpec(VISA, None, CHARGED_OR_CANCELLED, (SUCCEEDED,)),
    Kind.CANCEL_IN_FLIGHT: KindSpec(VISA, {"mode": "delay", "seconds": 1.5}, CHARGED_OR_CANCELLED, (SUCCEEDED,)),
    Kind.CANCEL_AFTER_SUCCESS: KindSpec(VISA, None, CHARGED_OR_CANCELLED, (SUCCEEDED,)),
    Kind.REOPENED: KindSpec(LOST_CARD, None, "succeeded", (FAILED, SUCCEEDED)),
}
KINDS = (Kind.IMMEDIATE, Kind.SOFT, Kind.HARD, Kind.TIMEOUT)
STRIPE_FAULT_KINDS = (Kind.STRIPE_500, Kind.STRIPE_409, Kind.STRIPE_429, Kind.STRIPE_IDEMPOTENCY)


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
class Merchant:
    """One merchant of the run: its setup and the receiver path its webhooks go to. `answers`: whether its endpoint
    ever answers 2xx in time (a merchant whose endpoint always times out does not)."""

    name: str
    setup: MerchantSetup
    webhook_path: str
    answers: bool = True
    billing: str = CUSTOMBILLING


@dataclass
class Recovery:
    kind: str
    customer: str
    payment_method: str
    payment_id: str = ""
    merchant: str = "main"
    reference: str = ""
    # A cancel sent for the invoice (the CANCEL_ kinds): when it was answered (time.time()) and what intake said.
    cancel_answered_at: float | None = None
    cancel_answer: str | None = None
    # How many times intake answered the cancel 409 first (an attempt was being charged or had just succeeded).
    cancel_deferrals: int = 0
    # A second card sent for the invoice (Kind.REOPENED), once the first one failed for good.
    second_payment_method: str | None = None
    # Stripe's ids of the disputes lost on the recovered payment (disputes.py): a `dispute_lost` webhook each.
    disputes: list[str] = field(default_factory=list)
    # How many of them the dispatcher raised a `dispute_opened` for (disputes.py reads its claims): one webhook each,
    # before the loss's (an opening overtaken by the loss is not raised).
    disputes_opened: int = 0

    @property
    def spec(self) -> KindSpec:
        return KIND_SPECS[self.kind]

    @property
    def cancel_accepted(self) -> bool:
        return self.cancel_answer == "cancelled"


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


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def header(record: dict[str, Any], name: str) -> str | None:
    return next((value for key, value in record.get("headers", []) if key.lower() == name), None)


class FaultRun:
    """One scenario's batch of recoveries on `stack`, and the checks after it."""

    def __init__(self, stack: Stack, scenario: str, figures: Figures, started: float | None = None) -> None:
        self.stack = stack
        self.name = scenario
        self.figures = figures
        self.started = started if started is not None else time.monotonic()
        self.scenario = seed_scenario(stack)
        self.recoveries: list[Recovery] = []
        self.merchants: dict[str, Merchant] = {}
        self.poison_ids: list[str] = []
        self.processes_killed = False
        # Every SIGKILL the harness sent: (instance, time.time()), so a request cut off by one can be told apart.
        self.kills: list[tuple[str, float]] = []
        # False where a strike may make the executor repeat a record back (a kill, a cut, a restart, duplicates):
        # each repeat carries the payment's one idempotency key; elsewhere exactly one request is expected.
        self.one_record_back_request = True
        # Strike-specific figures a scenario adds (shown in its row of the figures).
        self.tally: dict[str, Any] = {}
        # A scenario's own invariants, checked with the others: (run, sandbox ledger) -> violations.
        self.extra_invariants: list[Callable[[FaultRun, list[dict[str, Any]]], list[str]]] = []
        # What else must have happened before the run is settled (say, a refund recorded): () -> whether it did.
        self.extra_settled: list[Callable[[], bool]] = []
        self._lock = threading.Lock()

    @property
    def setup(self) -> MerchantSetup | None:
        merchant = self.merchants.get("main")
        return merchant.setup if merchant is not None else None

    # ---- driving -------------------------------------------------------------------------------------------

    def bootstrap(self) -> MerchantSetup:
        """The seed's merchant (webhooks to the receiver's /webhooks), with a short-ladder billing account."""
        setup = retrying(self.scenario.bootstrap)
        return self._with_billing_account("main", setup, "/webhooks")

    def add_merchant(self, name: str, webhook_path: str, *, answers: bool = True) -> MerchantSetup:
        """Another merchant whose webhooks go to `webhook_path` on the receiver."""
        scenario = self.scenario

        def create() -> MerchantSetup:
            merchant_id = scenario.create_merchant(f"faults_{name}_{uuid.uuid4().hex[:6]}")
            profile = scenario.create_profile(merchant_id, f"{self.stack.receiver_url}{webhook_path}")
            api_key = scenario.create_api_key(merchant_id)
            payment_mca, billing_mca = scenario.create_connector_accounts(merchant_id, profile["id"], api_key)
            scenario.switch_to_cascading(merchant_id, profile["id"])
            return MerchantSetup(
                merchant_id=merchant_id,
                profile_id=str(profile["id"]),
                api_key=api_key,
                payment_response_hash_key=str(profile.get("payment_response_hash_key")),
                standard_webhooks_secret=profile.get("standard_webhooks_secret"),
                payment_mca=payment_mca,
                billing_mca=billing_mca,
            )

        return self._with_billing_account(name, retrying(create), webhook_path, answers=answers)

    def _with_billing_account(
        self, name: str, setup: MerchantSetup, webhook_path: str, *, answers: bool = True
    ) -> MerchantSetup:
        """A billing account with the short ladder and a record back to the receiver, used for the batch."""
        scenario = self.scenario
        body = seed_body(BILLING_CONNECTOR_ACCOUNT, payment_mca=setup.payment_mca, profile_id=setup.profile_id)
        recovery = body["feature_metadata"]["revenue_recovery"]
        recovery["retry_ladder_seconds"] = SHORT_LADDER
        recovery["max_retry_count"] = 9
        recovery["record_back_url"] = f"{self.stack.receiver_url}{RECORD_BACK_PATH}"
        body["connector_label"] = "billing_faults"
        created = retrying(
            lambda: scenario._call(
                "POST",
                f"{scenario.endpoints.intake_url}/v2/connector-accounts",
                json_body=body,
                headers=setup.headers(),
            )
        )
        setup = MerchantSetup(**{**setup.__dict__, "billing_mca": created["id"]})
        self.merchants[name] = Merchant(name, setup, webhook_path, answers)
        return setup

    def push_batch(self, per_kind: int, kinds: Iterable[str] = KINDS, merchant: str = "main") -> list[Recovery]:
        """`per_kind` recoveries of each kind, shuffled, each with its own customer, card and invoice."""
        batch = [kind for kind in kinds for _ in range(per_kind)]
        random.shuffle(batch)
        return [self.push(kind, merchant) for kind in batch]

    def push(self, kind: str, merchant: str = "main") -> Recovery:
        """One recovery of `kind` for `merchant`: a customer with the kind's card, its fault armed, the request."""
        spec, setup = KIND_SPECS[kind], self.merchants[merchant].setup
        customer, pm = retrying(lambda: self.scenario.customer_with_card(spec.card))
        if spec.fault is not None:
            self.arm_fault(payment_method=pm, times=1, **spec.fault)
        recovery = Recovery(kind, customer, pm, merchant=merchant, reference=f"inv_{uuid.uuid4().hex[:12]}")
        # The same invoice again after a lost answer is the same payment: intake de-duplicates it.
        answer = retrying(
            lambda: self.scenario.request_recovery(setup, customer, pm, merchant_reference_id=recovery.reference)
        )
        recovery.payment_id = str(answer["id"])
        with self._lock:
            self.recoveries.append(recovery)
        return recovery

    def send_again(self, recovery: Recovery, payment_method: str, action: str, **overrides: Any) -> dict[str, Any]:
        """Another request for the recovery's invoice (a new card, a cancel): intake folds it into the intent."""
        setup = self.merchants[recovery.merchant].setup
        return self.scenario.request_recovery(
            setup,
            recovery.customer,
            payment_method,
            merchant_reference_id=recovery.reference,
            action=action,
            **overrides,
        )

    def reopen_failed(self, timeout: float = 60.0) -> None:
        """Each `REOPENED` recovery, once it failed for good: the billing system sends a working card."""
        waiting = [r for r in self.recoveries if r.kind == Kind.REOPENED and r.second_payment_method is None]
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for r in list(waiting):
                if self.status_of(r) != "failed":
                    continue
                pm = retrying(
                    lambda r=r: self.scenario._call(
                        "POST",
                        f"{self.stack.stripe_url}/v1/payment_methods/{VISA}/attach",
                        form={"customer": r.customer},
                        headers={"Authorization": f"Bearer {self.scenario.sandbox_secret_key}"},
                    )["id"]
                )
                retrying(
                    lambda r=r, pm=pm: self.send_again(
                        r, pm, "schedule_failed_payment", connector_transaction_id=f"txn_{uuid.uuid4().hex[:10]}"
                    )
                )
                r.second_payment_method = pm
                waiting.remove(r)
            time.sleep(0.2)

    def kill(self, name: str) -> float:
        """SIGKILL the instance `name`, as a crash would; returns when (time.time()), also kept in `kills`."""
        self.stack.kill(name)
        killed_at = time.time()
        self.kills.append((name, killed_at))
        self.figures.kills += 1
        return killed_at

    def arm_fault(self, **fields: Any) -> None:
        retrying(lambda: httpx.post(f"{self.stack.stripe_url}/_sandbox/faults", json=fields).raise_for_status())

    def receiver_behaviours(self, behaviours: list[dict[str, Any]]) -> None:
        config = f"{self.stack.receiver_url}/_receiver/config"
        httpx.post(config, json={"behaviours": behaviours}).raise_for_status()

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
        setup = self.merchants[recovery.merchant].setup
        try:
            answer = self.scenario.http.get(
                f"{self.stack.intake_url}{TRACKER}/{recovery.payment_id}", headers=setup.headers()
            )
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        return str(answer.json().get("recovery_status"))

    def wait_until_settled(self, timeout: float) -> None:
        """Until every recovery ended, every expected webhook was delivered (or, to an endpoint that never answers
        in time, given up), every record back was accepted, and the system is idle."""
        deadline = time.monotonic() + timeout
        settled_before = False
        while time.monotonic() < deadline:
            pending = [r for r in self.recoveries if self.status_of(r) not in ENDED]
            settled = not pending and not self.unfinished_webhooks() and not self.missing_record_backs()
            settled = settled and all(done() for done in self.extra_settled)
            if settled and self._idle():
                # Twice in a row: a queue's depth leaves out messages a consumer holds unacknowledged (an answer
                # just received, its record being written).
                if settled_before:
                    return
                settled_before = True
            else:
                settled_before = False
            time.sleep(1.0)
        # Not an exception: the checks that follow say precisely what did not happen.

    def expected_events(self, recovery: Recovery, ledger: list[dict[str, Any]] | None = None) -> tuple[str, ...]:
        """The webhook events the recovery's merchant must get, in order (for a cancelled, uncharged one: the
        cancellation alone; a charge in flight defers the cancel, and a paid invoice is never cancelled)."""
        if recovery.spec.status == CHARGED_OR_CANCELLED and not self.successful_charges(recovery, ledger):
            return (CANCELLED,)
        told = (DISPUTE_OPENED,) * recovery.disputes_opened + (DISPUTE_LOST,) * len(recovery.disputes)
        return recovery.spec.events + told

    def successful_charges(
        self, recovery: Recovery, ledger: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        entries = ledger if ledger is not None else self.ledger()
        return [e for e in self.charges_of(recovery, entries) if e["status"] == "succeeded"]

    def charges_of(self, recovery: Recovery, ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in ledger if (e.get("metadata") or {}).get("payment_id") == recovery.payment_id]

    def ledger(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.stack.stripe_url}/_sandbox/ledger", timeout=10).json())

    def unfinished_webhooks(self) -> list[tuple[str, str]]:
        """(payment, event type) expected and not finished: not delivered with a 2xx and recorded `delivered` by
        the dispatcher, or, for a merchant whose endpoint never answers in time, its event not failed for good."""
        try:
            received = self.deliveries()
            events = self.initial_events()
        except Exception:
            return [("(receiver or database unreachable)", "")]
        ledger = self.ledger()
        status = {(e.get("payment_id"), e.get("event_type")): e.get("status") for e in events}
        answered = {(record_payment(d), record_event_type(d)) for d in received if delivered_ok(d)}
        delivered = {key for key in answered if status.get(key) == "delivered"}
        failed = {key for key, value in status.items() if value == "failed"}
        unfinished = []
        for r in self.recoveries:
            done = delivered if self.merchants[r.merchant].answers else failed
            unfinished += [(r.payment_id, t) for t in self.expected_events(r, ledger) if (r.payment_id, t) not in done]
        return unfinished

    def missing_record_backs(self) -> list[str]:
        try:
            accepted = {header(d, "idempotency-key") for d in self.deliveries(RECORD_BACK_PATH) if delivered_ok(d)}
            ledger = self.ledger()
        except Exception:
            return ["(receiver unreachable)"]
        return [
            r.payment_id
            for r in self.recorded_back_to_receiver()
            if self.successful_charges(r, ledger) and f"record-back:{r.payment_id}" not in accepted
        ]

    def recorded_back_to_receiver(self) -> list[Recovery]:
        """The recoveries whose merchant's billing account records back to the receiver (`custombilling`)."""
        return [r for r in self.recoveries if self.merchants[r.merchant].billing == CUSTOMBILLING]

    def _idle(self) -> bool:
        return not self.outbox_leftovers() and not any(self.queue_depths().values())

    # ---- looking -------------------------------------------------------------------------------------------

    def deliveries(self, path: str | None = None) -> list[dict[str, Any]]:
        """What the receiver got (webhooks and record backs), in arrival order; `path` narrows it."""
        params = {"path": path} if path is not None else {}
        return list(httpx.get(f"{self.stack.receiver_url}/received", params=params, timeout=10).json())

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return [d for d in self.deliveries() if d.get("path") != RECORD_BACK_PATH]

    def initial_events(self) -> list[dict[str, Any]]:
        client, db = self.database()
        with client:
            return list(db["webhook_events"].find({"delivery_attempt": "initial_attempt"}))

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

    def log_count(self, service: str, text: str) -> int:
        """How many lines of `service`'s instances' logs contain `text`."""
        total = 0
        for name in self.stack.instances(service):
            with self.stack.process(name).log_path.open(encoding="utf-8", errors="replace") as log:
                total += sum(1 for line in log if text in line)
        return total


def record_payment(record: dict[str, Any]) -> str | None:
    """The payment a webhook is about: its payment object's `id`, or its dispute object's `payment_id`."""
    try:
        content = record["json"]["content"]
        return str(content["object"]["payment_id" if content["type"] == "dispute_details" else "id"])
    except (KeyError, TypeError):
        return None


def record_event_type(record: dict[str, Any]) -> str | None:
    body = record.get("json")
    return body.get("event_type") if isinstance(body, dict) else None


def delivered_ok(record: dict[str, Any]) -> bool:
    """Answered 2xx: the answer went out (`answered_at`; the receiver records a delivery on receipt, before any
    stall) with a 2xx status."""
    return "answered_at" in record and 200 <= int((record.get("response") or {}).get("status", 0)) < 300


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
