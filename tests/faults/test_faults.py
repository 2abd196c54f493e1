"""Nothing lost, nothing doubled: each scenario pushes a mixed batch of recoveries through the real processes
while one fault strikes, then checks every invariant (fault_harness.FaultRun.check). docs/guarantees.md says
what each scenario proves.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fault_harness import COMMON_ENV, ITERATIONS, Chaos, FaultRun, Figures, all_instances
from private_rabbitmq import PrivateRabbitMQ

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
    balance: bool = True,
) -> FaultRun:
    stack = fault_stack(broker_url, instances=instances, env=env)
    run = FaultRun(stack, name, figures)
    run.bootstrap()
    run.inject_poison()
    with during(run):
        run.push_batch(PER_KIND)
    run.wait_until_settled(SETTLE_SECONDS)
    return run


def assert_no_violations(run: FaultRun, balance: bool = True) -> None:
    violations = run.check(balance)
    assert not violations, "\n".join(violations)


def test_kill_9_of_every_service_at_random_points(fault_stack: Any, fault_broker_url: str, figures: Figures) -> None:
    kills = 6 * ITERATIONS

    @contextlib.contextmanager
    def killing(run: FaultRun) -> Iterator[None]:
        # Every service at least once, then at random; two executors and two schedulers compete meanwhile.
        names = all_instances(run.stack)
        victims = (names + [random.choice(names) for _ in range(kills)])[:kills] if kills >= len(names) else names

        def kill_one(round_number: int) -> None:
            victim = victims[round_number % len(victims)]
            run.stack.kill(victim)
            figures.kills += 1
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
        killing,
        instances={"executor": 2, "scheduler": 2},
    )
    # Counters live in the processes and die with them: the balance is checked where nothing is killed.
    assert_no_violations(run, balance=False)


def test_sigterm_stops_each_service_gracefully_mid_run(
    fault_stack: Any, fault_broker_url: str, figures: Figures
) -> None:
    """SIGTERM (a rolling deploy): each instance stops taking messages, finishes or requeues what it holds
    within the grace period, exits 0 on its own (no SIGKILL), and its replacement carries on."""
    grace = float(COMMON_ENV["SHUTDOWN_GRACE_SECONDS"])
    exits: list[tuple[str, int | None, float]] = []

    @contextlib.contextmanager
    def rolling(run: FaultRun) -> Iterator[None]:
        names = all_instances(run.stack)

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
    assert_no_violations(run)


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

    run = scenario(fault_stack, fault_broker_url, figures, "rabbitmq-restart", broker_restart)
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
    @contextlib.contextmanager
    def database_restart(run: FaultRun) -> Iterator[None]:
        def restart(_: int) -> None:
            run.stack.process("secantusdb").stop(grace=10.0)
            time.sleep(2.0)
            run.stack.start_process("secantusdb")
            figures.database_restarts += 1
            figures.restarts += 1

        with Chaos(restart, times=ITERATIONS, every=2.0) as chaos:
            yield
        assert not chaos.errors, chaos.errors

    run = scenario(fault_stack, fault_broker_url, figures, "mongodb-restart", database_restart)
    assert_no_violations(run)


def test_every_message_delivered_twice(fault_stack: Any, fault_broker_url: str, figures: Figures) -> None:
    run = scenario(fault_stack, fault_broker_url, figures, "duplicates", env={"DUPLICATE_DELIVERIES_FOR_TESTS": "1"})
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
        config = f"{run.stack.receiver_url}/_receiver/config"
        httpx.post(config, json={"behaviours": [{"status": 503, "times": 100000}]}).raise_for_status()
        started = time.monotonic()
        yield
        time.sleep(max(0.0, down_seconds - (time.monotonic() - started)))
        httpx.post(config, json={"behaviours": []}).raise_for_status()

    run = scenario(fault_stack, fault_broker_url, figures, "endpoint-down", endpoint_down)
    refused = [r for r in httpx.get(f"{run.stack.receiver_url}/received").json() if r["response"]["status"] == 503]
    assert refused, "the endpoint was never down while webhooks were due"
    assert_no_violations(run)
