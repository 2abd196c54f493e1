"""One run of the seed's flow shared by the operations tests: they read what it left (metrics, logs, state).

The tests here only observe (scrape `/metrics`, read log files, read MongoDB), so one stack and one payment
serve them all; starting the system once per test would triple the folder's run time for nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recovery_cli.seed_scenario import MerchantSetup, ScenarioFailed
from recovery_cli.stack import Stack
from support.mongodb import database_name_for, drop_database
from support.rabbitmq import VhostUnavailable, VirtualHosts, vhost_name_for
from support.stack import Isolation, StackFactory, seed_scenario


@dataclass(frozen=True)
class SeedFlow:
    stack: Stack
    isolation: Isolation
    setup: MerchantSetup
    payment_id: str
    # Why the flow did not reach its signed webhook, or None: a test that needs the whole flow calls
    # `require_completed()`; the others still check what the flow left on its way.
    failure: str | None

    def require_completed(self) -> None:
        if self.failure is not None:
            pytest.fail(f"the seed flow did not complete: {self.failure}", pytrace=False)


@pytest.fixture(scope="package")
def seed_flow(
    tmp_path_factory: pytest.TempPathFactory, virtual_hosts: VirtualHosts, mongodb_url: str
) -> Iterator[SeedFlow]:
    vhost = vhost_name_for("ops-seed-flow")
    try:
        rabbitmq_url = virtual_hosts.create(vhost)
    except VhostUnavailable as error:
        pytest.fail(f"cannot create a RabbitMQ virtual host for the operations tests: {error}", pytrace=False)
    isolation = Isolation(rabbitmq_url, mongodb_url, database_name_for("ops-seed-flow"))
    factory = StackFactory(Path(tmp_path_factory.mktemp("ops")) / "run", isolation)
    try:
        stack = factory.start()
        scenario = seed_scenario(stack)
        setup = scenario.bootstrap()
        customer, payment_method = scenario.customer_with_card()
        payment_id = str(scenario.request_recovery(setup, customer, payment_method)["id"])
        failure = None
        try:
            scenario.wait_for_webhook(payment_id, timeout=60)
            scenario.wait_for_payment_status(setup, payment_id)
        except ScenarioFailed as error:
            failure = f"{error}\n{factory.log_tails()}"
        yield SeedFlow(stack, isolation, setup, payment_id, failure)
    finally:
        factory.stop_all()
        drop_database(mongodb_url, isolation.mongodb_database)
        virtual_hosts.delete(vhost, wait=False)
