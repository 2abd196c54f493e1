"""Intake, scheduler and dispatcher in-process (real HTTP, the test's vhost and database), two merchants on them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from security_system import System, make_tenant

from recovery_cli.seed_scenario import Endpoints, SeedScenario
from recovery_runtime.service import Service
from recovery_sandbox.receiver import create_app as receiver_app
from recovery_sandbox.serving import BackgroundServer
from recovery_sandbox.stripe import create_app as stripe_app
from support.mongodb import database_name_for, drop_database
from support.rabbitmq import VirtualHosts
from support.services import intake_with_its_owners, serving
from support.stack import Isolation, own_isolation

ADMIN = "security_test_admin_key"


@pytest.fixture(scope="module")
def module_isolation(
    request: pytest.FixtureRequest, virtual_hosts: VirtualHosts, mongodb_url: str
) -> Iterator[Isolation]:
    """One vhost and database for a whole module: its tests share one running system (set up once)."""
    name = f"security-{request.module.__name__.rsplit('.', 1)[-1]}"
    database = database_name_for(name)
    given = os.environ.get("SECURITY_TESTS_RABBITMQ_URL")
    if given:
        # A broker URL of the caller's own (e.g. an existing vhost), when creating vhosts is not possible.
        yield Isolation(rabbitmq_url=given, mongodb_url=mongodb_url, mongodb_database=database)
        drop_database(mongodb_url, database)
        return
    with own_isolation(name, virtual_hosts, mongodb_url) as isolation:
        yield isolation


@pytest.fixture(scope="module")
def serve(module_isolation: Isolation) -> Iterator[Callable[[Any], BackgroundServer]]:
    """Depends on the isolation so that the servers stop before their vhost goes: the other way round, a service's
    broker kept reconnecting to the deleted vhost for the rest of the worker's run, logging into later tests' output
    (a simulator test parsing the CLI's JSON from stdout failed on it)."""
    with serving() as start:
        yield start


@pytest.fixture(scope="module")
def db(module_isolation: Isolation) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(module_isolation.mongodb_url, tz_aware=True)
    yield client[module_isolation.mongodb_database]
    client.close()


@pytest.fixture(scope="module")
def intake_settings() -> dict[str, Any]:
    """Overrides of intake's settings for the test (a module may replace this fixture)."""
    return {}


@pytest.fixture(scope="module")
def intake_service(serve: Any, module_isolation: Isolation, intake_settings: dict[str, Any]) -> Service:
    """Intake as the module runs it, built once scheduler, dispatcher and analytics (every owner it forwards to)
    are running; `services` serves it."""
    return intake_with_its_owners(serve, module_isolation, admin_api_key=ADMIN, **intake_settings)


@pytest.fixture(scope="module")
def services(serve: Any, intake_service: Service) -> Endpoints:
    """Intake, scheduler, dispatcher and analytics running (no merchant yet), with a Stripe sandbox and a
    receiver."""
    intake = serve(intake_service)
    stripe = serve(stripe_app())
    receiver = serve(receiver_app())
    return Endpoints(intake.url, stripe.url, receiver.url, ADMIN)


@pytest.fixture(scope="module")
def system(services: Endpoints) -> System:
    scenario = SeedScenario(services, say=lambda _: None)
    intake = services
    a = make_tenant(scenario, intake.intake_url, "invoice_a")
    b = make_tenant(scenario, intake.intake_url, "invoice_b")
    return System(intake.intake_url, scenario, a, b)
