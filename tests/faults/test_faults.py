"""Nothing lost, nothing doubled: each scenario pushes a mixed batch of recoveries through the real processes
while one fault strikes, then checks every invariant (invariants.check). docs/guarantees.md says what each
scenario proves.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from disputes import Outage, losing_disputes
from fault_harness import (
    COMMON_ENV,
    ITERATIONS,
    KINDS,
    SERVICES,
    STRIPE_FAULT_KINDS,
    Chaos,
    FaultRun,
    Kind,
    all_instances,
    epoch,
    record_event_type,
    record_payment,
)
from figures import Figures
from invariants import check, webhook_copies_explained
from private_rabbitmq import PrivateRabbitMQ
from strikes import (
    ProxiedDependencies,
    cancel_later,
    cancel_once_succeeded,
    cancel_while_charging,
    kill_between_answer_and_settle,
    kill_dispatcher_mid_retry,
    pause_while_holding_a_claim,
)

# A scenario starts a whole stack, strikes, and waits for every recovery to settle: minutes, not seconds.
pytestmark = pytest.mark.timeout(600 * ITERATIONS)

PER_KIND = 2 * ITERATIONS  # recoveries of each of the four kinds per scenario
SETTLE_SECONDS = 240.0

During = Callable[[FaultRun], contextlib.AbstractContextManager[Any]]


@contextlib.contextmanager
def nothing(run: FaultRun) -> Iterator[None]:
    yield


def scenario(
    fault_stack: Any,
    broker_url: str,
    figures: Figures,
    name: str,
    during: During = nothing,
    *,
    instances: dict[str, int] | None = None,
    env: dict[str, str] | None = None,
    repeats_record_back: bool = False,
) -> FaultRun:
    """`repeats_record_back`: the strike may make the executor call the record back again (each call with the
    payment's one idempotency key); otherwise exactly one call per recovered payment is expected."""
    started = time.monotonic()
    stack = fault_stack(broker_url, instances=instances, env=env)
    run = FaultRun(stack, name, figures, started)
    run.one_record_back_request = not repeats_record_back
    run.bootstrap()
    run.inject_poison()
    with during(run):
        run.push_batch(PER_KIND)
    run.wait_until_settled(SETTLE_SECONDS)
    return run


@dataclass(frozen=True)
class KnownBug:
    """A defect of a service a scenario shows, open until fixed: `violation` is text found in each violation it
    explains, `reason` says what and where. Strict, like xfail(strict=True) but for these violations only: every
    other invariant of the scenario is still enforced, the test is reported xfailed while the bug shows, and fails
    once it no longer does (remove the KnownBug then). `strict=False` for a bug that shows only in some runs (a
    race): such a run passes, and the bug stays declared until it is fixed."""

    violation: str
    reason: str
    strict: bool = True


def assert_no_violations(run: FaultRun, balance: bool = True, known_bugs: Sequence[KnownBug] = ()) -> None:
    violations = check(run, balance)
    unexplained = [v for v in violations if not any(bug.violation in v for bug in known_bugs)]
    assert not unexplained, "\n".join(unexplained)
    gone = [bug.reason for bug in known_bugs if bug.strict and not any(bug.violation in v for v in violations)]
    assert not gone, f"a known bug no longer shows (remove its KnownBug): {gone}"
    explained = len(violations) - len(unexplained)
    if explained:
        run.figures.per_scenario[run.name].update(violations=0, known_bug_violations=explained)
        run.figures.violations = [
            f"(known bug) {v}" if v.startswith(f"[{run.name}]") else v for v in run.figures.violations
        ]
        pytest.xfail("; ".join(f"{bug.reason} ({explained} violation(s))" for bug in known_bugs))


def test_kill_9_of_every_service_at_random_points(fault_stack: Any, fault_broker_url: str, figures: Figures) -> None:
    """Intake, the first victim, is killed once a recovered payment's dispute is ready to be lost (within 10 s), and
    the dispute is lost while it is dead: Stripe delivers it to a dead door, then again."""
    kills = 6 * ITERATIONS
    outage = Outage()

    @contextlib.contextmanager
    def killing(run: FaultRun) -> Iterator[None]:
        # Every service at least once, then at random; two executors and two schedulers compete meanwhile.
        names = all_instances(run.stack)
        victims = (names + [random.choice(names) for _ in range(kills)])[:kills] if kills >= len(names) else names

        def kill_one(round_number: int) -> None:
            victim = victims[round_number % len(victims)]
            door = victim.startswith("intake") and not outage.passed.is_set()
            if door:
                outage.waiting.wait(timeout=10.0)
            run.kill(victim)
            with outage.on() if door else contextlib.nullcontext():
                time.sleep(random.uniform(0.0, 1.0))
                run.stack.start_process(victim)
            figures.restarts += 1

        run.processes_killed = True
        with Chaos(kill_one, times=max(kills, len(names)), every=1.5) as chaos:
            yield
        assert not chaos.errors, chaos.errors

    run = scenario(
        fault_stack,
        fault_broker_url,
        figures,
        "kill",
        losing_disputes(killing, outage=outage),
        instances={"executor": 2, "scheduler": 2},
        repeats_record_back=True,
    )
    # Counters live in the processes and die with them: the balance is checked where nothing is killed.
    assert_no_violations(run, balance=False)
    assert run.tally["disputes_lost_in_outage"] >= 1, f"no dispute was lost while intake was dead: {run.tally}"


def test_sigterm_stops_each_service_gracefully_mid_run(
    fault_stack: Any, fault_broker_url: str, figures: Figures
) -> None:
    """SIGTERM (a rolling deploy): each instance stops taking messages, finishes or requeues what it holds
    within the grace period, exits 0 on its own (no SIGKILL), and its replacement carries on."""
    grace = float(COMMON_ENV["SHUTDOWN_GRACE_SECONDS"])
    exits: list[tuple[str, int | None, float]] = []

    @contextlib.contextmanager
    def rolling(run: FaultRun) -> Iterator[None]:
        # Every instance in the long run; one of each service in CI's (its twin carries on meanwhile), which keeps
        # every service's shutdown under test at about half the restarts' cost.
        names = all_instances(run.stack)
        if ITERATIONS == 1:
            names = [run.stack.instances(service)[0] for service in SERVICES]

        def stop_one(round_number: int) -> None:
            victim = names[round_number % len(names)]
            started = time.monotonic()
            # Twice the grace: a process still running then is a failure (Process.stop would SIGKILL it).
            code = run.stack.process(victim).stop(grace=2 * grace + 10.0)
            exits.append((victim, code, time.monotonic() - started))
            figures.graceful_stops += 1
            run.stack.start_process(victim)
            figures.restarts += 1

        with Chaos(stop_one, times=ITERATIONS * len(names), every=1.0) as chaos:
            yield
        assert not chaos.errors, chaos.errors

    run = scenario(
        fault_stack,
        fault_broker_url,
        figures,
        "sigterm",
        rolling,
        instances={"intake": 2, "executor": 2, "scheduler": 2, "webhook-dispatcher": 2},
        repeats_record_back=True,
    )
    # Exit status: uvicorn re-raises the SIGTERM it handled once shutdown is complete, so -15 (or 0), never
    # -9 (the supervisor's SIGKILL after the deadline); and well within the grace period.
    unclean = [(name, code, round(took, 1)) for name, code, took in exits if code not in (0, -15) or took > grace + 8]
    assert not unclean, f"services that did not stop cleanly within the grace period on SIGTERM: {unclean}"
    for name in {name for name, _, _ in exits}:
        log = run.stack.process(name).log_path.read_text()
        stops = sum(1 for victim, _, _ in exits if victim == name)
        completed = log.count('"event": "service.stopped"')
        assert completed >= stops, f"{name}: {stops} SIGTERMs but {completed} completed shutdowns (service.stopped)"
    # As with kill -9, a replaced process's counters are gone (a SIGTERMed consumer's count of what it consumed
    # before stopping): the balance is checked where no process restarts. Every other invariant holds here.
    assert_no_violations(run, balance=False)


def test_rabbitmq_stopped_and_started_mid_run(
    fault_stack: Any, fault_broker_url: str, private_rabbitmq: PrivateRabbitMQ, figures: Figures
) -> None:
    @contextlib.contextmanager
    def broker_restart(run: FaultRun) -> Iterator[None]:
        def restart(_: int) -> None:
            private_rabbitmq.stop()
            time.sleep(2.0)
            private_rabbitmq.start()
            figures.broker_restarts += 1
            figures.restarts += 1

        with Chaos(restart, times=2 * ITERATIONS, every=2.0) as chaos:
            yield
        assert not chaos.errors, chaos.errors

    during = losing_disputes(broker_restart)
    run = scenario(fault_stack, fault_broker_url, figures, "rabbitmq-restart", during, repeats_record_back=True)
    assert_no_violations(run)
    # After the restart every service consumes again on its own (its /readyz checks its consumers); the
    # robust connection reconnects every few seconds and the consumer watchdog re-creates lost consumers.
    deadline = time.monotonic() + 90.0
    not_ready = all_instances(run.stack)
    while not_ready and time.monotonic() < deadline:
        not_ready = [name for name in not_ready if not run.stack.is_ready(name)]
        time.sleep(1.0)
    assert not not_ready, f"not ready 90 s after the broker restart: {not_ready}"


def test_mongodb_stopped_and_started_mid_run(fault_stack: Any, fault_broker_url: str, figures: Figures) -> None:
    """The database goes down once a recovered payment's dispute is ready to be lost (within 10 s), and the dispute
    is lost meanwhile: Stripe's delivery meets intake without its database."""
    outage = Outage()

    @contextlib.contextmanager
    def database_restart(run: FaultRun) -> Iterator[None]:
        def restart(_: int) -> None:
            outage.waiting.wait(timeout=10.0)
            run.stack.process("secantusdb").stop(grace=10.0)
            with outage.on():
                time.sleep(2.0)
                run.stack.start_process("secantusdb")
            figures.database_restarts += 1
            figures.restarts += 1

        with Chaos(restart, times=ITERATIONS, every=2.0) as chaos:
            yield
        assert not chaos.errors, chaos.errors

    during = losing_disputes(database_restart, outage=outage)
    run = scenario(fault_stack, fault_broker_url, figures, "mongodb-restart", during, repeats_record_back=True)
    assert_no_violations(run)
    assert run.tally["disputes_lost_in_outage"] >= 1, f"no dispute was lost while the database was down: {run.tally}"


def test_every_message_delivered_twice(fault_stack: Any, fault_broker_url: str, figures: Figures) -> None:
    run = scenario(
        fault_stack,
        fault_broker_url,
        figures,
        "duplicates",
        losing_disputes(chargebee=True),
        env={"DUPLICATE_DELIVERIES_FOR_TESTS": "1"},
        repeats_record_back=True,
    )
    published = sum(v for k, v in run.metrics().items() if k.startswith("recovery_messages_published_total"))
    figures.duplicates_injected += int(published // 2)
    assert_no_violations(run)
    duplicates = sum(
        v for k, v in run.metrics().items() if k.startswith("recovery_messages_consumed_total") and "duplicate" in k
    )
    assert duplicates >= published // 2, "every second copy should have been recognised as a duplicate"


def test_merchant_endpoint_down_for_hours_then_back(fault_stack: Any, fault_broker_url: str, figures: Figures) -> None:
    down_seconds = 8.0 * ITERATIONS  # about 2 business hours per iteration at TIME_SCALE 1000

    @contextlib.contextmanager
    def endpoint_down(run: FaultRun) -> Iterator[None]:
        # The webhook endpoint only: the billing system's record-back URL on the same receiver stays up.
        run.receiver_behaviours([{"path": "/webhooks", "status": 503, "times": 100000}])
        started = time.monotonic()
        yield
        time.sleep(max(0.0, down_seconds - (time.monotonic() - started)))
        run.receiver_behaviours([])

    run = scenario(fault_stack, fault_broker_url, figures, "endpoint-down", endpoint_down)
    refused = [r for r in run.deliveries("/webhooks") if r["response"]["status"] == 503]
    assert refused, "the endpoint was never down while webhooks were due"
    assert_no_violations(run)


# ---- strikes at exact moments, a misbehaving connector, slow merchants, slow and cut connections ----------------


def test_connector_misbehaves_executor_killed_between_answer_and_settle_cancel_races_execute(
    fault_stack: Any, fault_broker_url: str, figures: Figures
) -> None:
    """One stack, three strikes on the charge path:
    - Stripe answers 500, 409 (its key in flight), 429 and `idempotency_error`, each on a card of its own;
    - the sandbox charges and holds its answer while the harness SIGKILLs the executor waiting for it (the moment
      is checked: charge in the ledger, attempt still `charging`), then starts it again (once per iteration; the
      other executor takes the attempt over);
    - the billing system cancels invoices around their first attempt: at random moments, once the executor's
      connector call is in flight, and once the payment succeeded (no charge may follow an accepted cancel)."""
    started = time.monotonic()
    # 3 s: the 409 card's first call is held 10 s at the sandbox, so PSYNC re-sends it while its key is in flight
    # (a 7 s window: the re-send comes after the timeout, a status check and a PSYNC timer, slower under load).
    stack = fault_stack(
        fault_broker_url, instances={"executor": 2}, component_env={"executor": {"CONNECTOR_TIMEOUT_SECONDS": "3"}}
    )
    run = FaultRun(stack, "connector", figures, started)
    run.processes_killed, run.one_record_back_request = True, False
    run.bootstrap()
    run.inject_poison()
    struck: list[dict[str, Any]] = []

    def strike_in_turn(_: int) -> None:
        for _ in range(ITERATIONS):
            cancel_while_charging(run, run.push(Kind.CANCEL_IN_FLIGHT))
            cancel_once_succeeded(run, run.push(Kind.CANCEL_AFTER_SUCCESS))
            struck.append(kill_between_answer_and_settle(run, run.push(Kind.KILLED_BEFORE_SETTLE)))

    cancels = []
    with Chaos(strike_in_turn, times=1, every=0.0) as chaos:
        run.push_batch(ITERATIONS, [*STRIPE_FAULT_KINDS, Kind.IMMEDIATE, Kind.HARD])
        for _ in range(3 * ITERATIONS):
            # The first attempt is due 60 business seconds (60 ms) after the request, plus the scheduler's and
            # the executor's own work: cancels from 0 to 400 ms land before, during and after it.
            cancels.append(cancel_later(run, run.push(Kind.CANCEL_RACE), random.uniform(0.0, 0.4)))
    assert not chaos.errors, chaos.errors
    for thread in cancels:
        thread.join(timeout=60)
    run.wait_until_settled(SETTLE_SECONDS)
    for victim in {s["victim"] for s in struck}:
        run.stack.process(victim).wait_ready(timeout=60.0)  # the killed executor came back
    cancelled = [r for r in run.recoveries if r.cancel_answer is not None]
    run.tally.update(
        kills_between_answer_and_settle=len(struck),
        kill_ms_after_charge=[s["ms_after_charge"] for s in struck],
        cancels_accepted=sum(r.cancel_accepted for r in cancelled),
        cancels_refused=sum(not r.cancel_accepted for r in cancelled),
        cancels_answered_409_first=sum(r.cancel_deferrals > 0 for r in cancelled),
        stripe_answers_seen={answer: run.log_count("executor", text) for answer, text in CONNECTOR_ANSWERS.items()},
    )
    assert all(run.tally["stripe_answers_seen"].values()), f"a connector fault never struck: {run.tally}"
    assert_no_violations(run, balance=False)


# What the executor logs (attempt.unknown's message) for each of the sandbox's answers.
CONNECTOR_ANSWERS = {
    "500": "An unknown error occurred",
    "409": "another in-progress request",
    "429": "Too many requests",
    "idempotency_error": "Keys for idempotent requests",
}


def test_slow_and_timing_out_merchant_endpoints_beside_a_fast_one(
    fault_stack: Any, fault_broker_url: str, figures: Figures
) -> None:
    """Three merchants: one whose endpoint answers 2xx after 10 s, one whose endpoint does not answer within the
    dispatcher's timeout (15 s, the production default), and a fast one, whose webhooks must keep arriving within
    seconds of the charge. The dispatcher gets few slots (4 deliveries in flight, 2 per endpoint), so that this
    small batch fills them: three slow deliveries and a timing-out one are queued ahead of the fast merchant's
    (legitimately in flight: 2 + 1; one more for the slow endpoint must wait without holding a slot). The timing-out
    merchant's payment fails, then is paid with a new card: its second event (payment_succeeded) must wait until
    the first (payment_failed) was answered. In CI the timing-out endpoint answers the first event's retry; with
    FAULTS_ITERATIONS > 1 it never answers in time and both events end `failed` after their retries."""
    started = time.monotonic()
    stack = fault_stack(
        fault_broker_url,
        component_env={
            "webhook-dispatcher": {
                "WEBHOOK_TOTAL_TIMEOUT_SECONDS": "15",
                "WEBHOOK_RETRY_SCHEDULE_SECONDS": "60",
                "WEBHOOK_MAX_IN_FLIGHT": "4",
                "PREFETCH_COUNT": "4",
                "WEBHOOK_ENDPOINT_CONCURRENCY": "2",
            }
        },
    )
    run = FaultRun(stack, "merchants", figures, started)
    never_answers = ITERATIONS > 1
    run.bootstrap()
    run.add_merchant("slow", "/webhooks/slow")
    run.add_merchant("timeout", "/webhooks/timeout", answers=not never_answers)
    run.receiver_behaviours(
        [
            {"path": "/webhooks/slow", "status": 200, "sleep_seconds": SLOW_ANSWER_SECONDS, "times": 100000},
            # In CI only the first delivery times out (the first event's; the second event waits for it).
            {"path": "/webhooks/timeout", "status": 504, "sleep_seconds": 16, "times": 100000 if never_answers else 1},
        ]
    )
    run.inject_poison()
    # The slow merchant's webhooks are queued first, the fast merchant's behind them.
    run.push_batch(3 * ITERATIONS, [Kind.IMMEDIATE], merchant="slow")
    run.push_batch(1, [Kind.REOPENED], merchant="timeout")
    run.push_batch(ITERATIONS, [Kind.IMMEDIATE, Kind.IMMEDIATE, Kind.SOFT, Kind.HARD, Kind.REOPENED])
    run.reopen_failed()
    run.extra_invariants.append(fast_merchant_kept_flowing)
    run.wait_until_settled(SETTLE_SECONDS)
    deliveries = run.webhook_deliveries()
    run.tally.update(
        slow_answers=sum(1 for d in deliveries if d["path"] == "/webhooks/slow"),
        timed_out=sum(1 for d in deliveries if d["path"] == "/webhooks/timeout" and d["response"]["status"] == 504),
        fast_webhook_seconds_max=round(max(fast_latencies(run).values(), default=0.0), 2),
    )
    assert_no_violations(run)


SLOW_ANSWER_SECONDS = 10.0
# A fast merchant's webhook arrives within this of the charge that decided it, whatever the slow ones do.
FAST_WEBHOOK_SECONDS = 5.0


def fast_latencies(run: FaultRun) -> dict[tuple[str, str], float]:
    """(payment, event type) of the fast merchant -> seconds from the deciding charge to the first arrival."""
    ledger, deliveries = run.ledger(), run.deliveries("/webhooks")
    latencies = {}
    for r in run.recoveries:
        if r.merchant != "main":
            continue
        charges = run.charges_of(r, ledger)
        for event_type in run.expected_events(r, ledger):
            arrivals = [
                epoch(d["received_at"])
                for d in deliveries
                if record_payment(d) == r.payment_id and record_event_type(d) == event_type
            ]
            status = "succeeded" if event_type == "payment_succeeded" else "failed"
            deciding = [float(c["created_at"]) for c in charges if c["status"] == status]
            if arrivals and deciding:
                first = min(arrivals)
                latencies[(r.payment_id, event_type)] = first - max(t for t in deciding if t <= first)
    return latencies


def fast_merchant_kept_flowing(run: FaultRun, ledger: list[dict[str, Any]]) -> list[str]:
    return [
        f"{payment}: the fast merchant's {event_type} arrived {seconds:.1f} s after its charge "
        f"(more than {FAST_WEBHOOK_SECONDS:.0f} s: held up behind the slow endpoints)"
        for (payment, event_type), seconds in fast_latencies(run).items()
        if seconds > FAST_WEBHOOK_SECONDS
    ]


def test_webhook_dispatcher_killed_mid_retry_the_other_takes_the_retry_over_after_its_lease(
    fault_stack: Any, fault_broker_url: str, figures: Figures
) -> None:
    """Two dispatchers. Merchants of their own (two per iteration, one payment each: a success, a hard decline)
    answer their first webhook 500, so it goes to a durable retry (a timer, then `webhook.deliver`), and hold the
    retry's answer 6 s: the harness SIGKILLs the dispatcher holding the event `delivering` for that retry while the
    request is at the endpoint (the moment checked), then starts it again, one merchant at a time. The other
    dispatcher gets the retry's message back at once, puts it back while the dead one's lease (4 s) runs, then
    makes the retry. The main merchant's batch flows meanwhile."""
    started = time.monotonic()
    stack = fault_stack(
        fault_broker_url,
        instances={"webhook-dispatcher": 2},
        # Longer than one delivery (WEBHOOK_TOTAL_TIMEOUT_SECONDS 3, one attempt): a live one is never taken over.
        component_env={"webhook-dispatcher": {"WEBHOOK_DELIVERY_LEASE_SECONDS": str(DELIVERY_LEASE_SECONDS)}},
    )
    run = FaultRun(stack, "dispatcher-mid-retry", figures, started)
    run.processes_killed = True
    run.bootstrap()
    retried = [(f"retried-{i}", kind) for i, kind in enumerate([Kind.IMMEDIATE, Kind.HARD] * ITERATIONS)]
    behaviours = []
    for merchant, _ in retried:
        path = f"/webhooks/{merchant}"
        run.add_merchant(merchant, path)
        behaviours += [
            {"path": path, "status": 500, "times": 1},
            {"path": path, "status": 200, "sleep_seconds": HELD_RETRY_SECONDS, "times": 1},
        ]
    run.receiver_behaviours(behaviours)
    run.inject_poison()
    struck: list[dict[str, Any]] = []

    def strike_in_turn(_: int) -> None:
        for merchant, kind in retried:
            struck.append(kill_dispatcher_mid_retry(run, run.push(kind, merchant)))

    with Chaos(strike_in_turn, times=1, every=0.0) as chaos:
        run.push_batch(ITERATIONS)
    assert not chaos.errors, chaos.errors
    run.extra_invariants += [webhook_copies_explained, functools.partial(retries_taken_over_after_the_lease, struck)]
    run.wait_until_settled(SETTLE_SECONDS)
    run.tally.update(
        kills_mid_retry=len(struck),
        put_back_while_leased=run.log_count("webhook-dispatcher", "DeliveryInProgress"),
        taken_over_seconds_after_the_lease=[round(seconds, 2) for seconds in taken_over_after(run, struck).values()],
    )
    assert_no_violations(run, balance=False)


DELIVERY_LEASE_SECONDS = 4.0
HELD_RETRY_SECONDS = 6.0


def taken_over_after(run: FaultRun, struck: list[dict[str, Any]]) -> dict[str, float]:
    """Payment -> seconds from the end of the killed dispatcher's lease to the retry's next request."""
    deliveries = run.webhook_deliveries()
    found = {}
    for strike in struck:
        later = [
            epoch(d["received_at"])
            for d in deliveries
            if record_payment(d) == strike["payment_id"] and d["sequence"] > strike["sequence"]
        ]
        if later:
            found[strike["payment_id"]] = min(later) - strike["lease_until"]
    return found


def retries_taken_over_after_the_lease(
    struck: list[dict[str, Any]], run: FaultRun, ledger: list[dict[str, Any]]
) -> list[str]:
    """The retry whose dispatcher was killed is made again, and only once that dispatcher's lease has run out
    (before, two dispatchers could be delivering one event at once)."""
    after = taken_over_after(run, struck)
    found = [
        f"{s['payment_id']}: the retry cut by the kill was never made again"
        for s in struck
        if s["payment_id"] not in after
    ]
    found += [
        f"{payment}: the retry was made again {-seconds:.2f} s before the killed dispatcher's lease ran out"
        for payment, seconds in after.items()
        if seconds < -0.05
    ]
    return found


def test_database_and_broker_slowed_one_service_cut_off_scheduler_paused_past_its_lease(
    tcp_proxies: list[Any], fault_stack: Any, fault_broker_url: str, figures: Figures
) -> None:
    """Every service reaches the database and the broker through a proxy of its own that adds latency
    (20-30 ms each way); while the batch runs, one service is cut off from both for 3 s (its connections reset,
    new ones refused), and one of two schedulers is stopped (SIGSTOP) the moment it holds a timer claim, for
    three times its 1.5 s lease, while the other takes the claim over; then SIGCONT."""
    started = time.monotonic()
    deps = ProxiedDependencies.start(fault_broker_url, tcp_proxies)
    component_env = deps.component_env()
    component_env["scheduler"]["TIMER_LEASE_SECONDS"] = str(LEASE_SECONDS)
    stack = fault_stack(
        fault_broker_url,
        instances={"scheduler": 2},
        component_env=component_env,
        ports={"secantusdb": deps.database_port},
    )
    run = FaultRun(stack, "slow-and-cut", figures, started)
    run.one_record_back_request = False
    run.bootstrap()
    run.inject_poison()
    deps.slow(0.02, 0.01)
    victims = [SERVICES[(2 + i) % len(SERVICES)] for i in range(ITERATIONS)]  # the executor first
    schedulers = run.stack.instances("scheduler")
    paused: list[dict[str, Any]] = []

    def push_slowly(_: int) -> None:
        for recovery_kind in random.sample(KINDS * PER_KIND, len(KINDS) * PER_KIND):
            run.push(recovery_kind)
            time.sleep(0.6)

    with Chaos(push_slowly, times=1, every=0.0) as pushing:
        for i, victim in enumerate(victims):
            time.sleep(1.0)
            deps.cut_off(victim, CUT_SECONDS)
            figures.connection_cuts += 1
            nudge = functools.partial(run.push, Kind.IMMEDIATE)
            paused.append(pause_while_holding_a_claim(run, schedulers[i % 2], 3 * LEASE_SECONDS, nudge))
    assert not pushing.errors, pushing.errors
    run.wait_until_settled(SETTLE_SECONDS)
    run.tally.update(
        cut_off=victims,
        connections_reset=sum(p.figures.cut_connections for p in deps.all()),
        connections_refused=sum(p.figures.refused_while_cut for p in deps.all()),
        paused=[p["scheduler"] for p in paused],
        claims_taken_over=run.log_count("scheduler", "timers.claim_taken_over"),
    )
    assert_no_violations(run)
    assert run.tally["claims_taken_over"] >= len(paused), f"no claim of a paused scheduler was taken over: {run.tally}"


LEASE_SECONDS = 1.5
CUT_SECONDS = 3.0
