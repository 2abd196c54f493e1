"""`recovery topology declare|check`: the broker topology as a deploy step.

`declare` creates the exchanges, every consumer queue with its binding and its dead-letter queue (idempotent: a
second run changes nothing), with a broker user that has configure rights; the services then run with
DECLARE_TOPOLOGY=false and broker users without them. `check` says what is missing. docs/deployment.md,
"Declaring the topology"; docs/security.md, "RabbitMQ".
"""

from __future__ import annotations

import argparse
import asyncio

from recovery_cli.commands.options import Subcommands, broker_command, fail, rabbitmq_url
from recovery_cli.stack.infrastructure import redact

SERVICES = ("intake", "scheduler", "executor", "dispatcher", "analytics")


def register(subcommands: Subcommands) -> None:
    actions = broker_command(
        subcommands,
        "topology",
        help="declare the broker topology (a deploy step) or check that it is there (RABBITMQ_URL)",
        description="The exchanges, consumer queues, bindings and dead-letter queues every service needs. "
        "UNDEPLOYED_SERVICES leaves out the queues of a service the deployment does not run.",
    )

    declare = actions.add_parser("declare", help="declare everything (needs configure rights; safe to run again)")
    declare.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the broker to answer (default: 60)",
    )
    declare.set_defaults(handler=handle_declare)

    check = actions.add_parser("check", help="list what is not declared; exit 1 if anything is missing")
    check.add_argument(
        "--service",
        action="append",
        choices=SERVICES,
        default=[],
        help="only this service's queues (repeatable; default: every deployed service)",
    )
    check.set_defaults(handler=handle_check)


def _deployment(args: argparse.Namespace) -> tuple[str, frozenset[str]]:
    """The broker, and the services the deployment leaves out (ValueError: UNDEPLOYED_SERVICES names a required one)."""
    from recovery_runtime.settings import undeployed_services

    return rabbitmq_url(args), undeployed_services()


def handle_declare(args: argparse.Namespace) -> int:
    # Imported here: `recovery` builds every command's parser, and only this command needs the broker.
    from aiormq.exceptions import AMQPError
    from faststream.rabbit import RabbitBroker

    from recovery_runtime.service import wait_for
    from recovery_runtime.topology import EXCHANGES, declare_topology, deployed_queues

    try:
        url, absent = _deployment(args)
    except ValueError as error:
        return fail(f"topology: {error}")

    async def declare() -> None:
        broker = RabbitBroker(url, fail_fast=False)
        await wait_for("RabbitMQ", broker.connect, give_up_after=args.wait)
        try:
            await declare_topology(broker, absent)
        finally:
            await broker.stop()

    try:
        asyncio.run(declare())
    except (AMQPError, RuntimeError, OSError) as error:
        return fail(f"topology: not declared on {redact(url)}: {error}")
    queues = deployed_queues(absent)
    left_out = f" (left out: {', '.join(sorted(absent))})" if absent else ""
    print(f"declared on {redact(url)}: {_counts(len(EXCHANGES), len(queues))}{left_out}")
    return 0


def handle_check(args: argparse.Namespace) -> int:
    from aiormq.exceptions import AMQPError

    from recovery_runtime.topology import EXCHANGES, deployed_queues, missing_topology

    try:
        url, absent = _deployment(args)
    except ValueError as error:
        return fail(f"topology: {error}")
    queues = [q for q in deployed_queues(absent) if not args.service or q.service in args.service]
    try:
        missing = asyncio.run(missing_topology(url, queues))
    except (AMQPError, OSError, RuntimeError) as error:
        return fail(f"topology: cannot look at {redact(url)}: {error}")
    if missing:
        for name in missing:
            print(f"missing: {name}")
        return fail(f"topology: {len(missing)} missing on {redact(url)}: run `recovery topology declare`")
    print(f"complete on {redact(url)}: {_counts(len(EXCHANGES), len(queues))}")
    return 0


def _counts(exchanges: int, queues: int) -> str:
    return f"{exchanges} exchanges, {queues} queues with their dead-letter queues"
