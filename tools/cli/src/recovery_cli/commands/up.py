"""`recovery up`: the whole stack in the background, on the seed's ports (intake on 8080)."""

from __future__ import annotations

import argparse
import os

from recovery_cli.commands.options import Subcommands, add_run_dir, fail, name_value_pairs, run_dir
from recovery_cli.stack import EVERYTHING, RUNNABLE, Stack, StackConfig, StackError
from recovery_cli.stack.infrastructure import redact
from recovery_cli.stack.state import state_path


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "up",
        help="start RabbitMQ (if absent), the database (if MONGODB_URL is unset), the services and peers",
        description="Start the stack in the background; `recovery down` stops it. Configured by the same "
        "environment variables as the services (RABBITMQ_URL, MONGODB_URL, ADMIN_API_KEY, TIME_SCALE, ...).",
    )
    add_run_dir(parser)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=float(os.environ.get("TIME_SCALE") or 1.0),
        help="schedule seconds per wall-clock second (default: $TIME_SCALE or 1; the demo uses 1000)",
    )
    parser.add_argument(
        "--port",
        dest="ports",
        action="append",
        type=name_value_pairs,
        default=[],
        metavar="NAME=PORT",
        help="override a port, e.g. intake=9080 or secantusdb=27018; 0 picks a free one (repeatable)",
    )
    parser.add_argument(
        "--only",
        dest="components",
        action="append",
        choices=list(RUNNABLE),
        default=None,
        metavar="NAME",
        help=f"start only these ({', '.join(RUNNABLE)}; repeatable; default: all)",
    )
    parser.add_argument(
        "--instances",
        action="append",
        type=name_value_pairs,
        default=[],
        metavar="SERVICE=N",
        help="run N instances of a service, e.g. executor=2 (repeatable)",
    )
    parser.add_argument(
        "--mongodb-storage",
        default=None,
        help="SecantusDB's data folder when MONGODB_URL is unset "
        "(default: <run-dir>/mongodb; ':memory:' keeps nothing)",
    )
    parser.add_argument("--readiness-timeout", type=float, default=90.0, help="seconds to wait for readiness")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    directory = run_dir(args)
    config = StackConfig.from_environment(
        directory,
        time_scale=args.time_scale,
        ports=dict(args.ports),
        instances=dict(args.instances),
        components=tuple(args.components or EVERYTHING),
        mongodb_storage=args.mongodb_storage or str(directory / "mongodb"),
        readiness_timeout=args.readiness_timeout,
        start_rabbitmq=True,
        detach=True,
    )
    stack = Stack(config, say=print)
    try:
        stack.start()
    except StackError as error:
        return fail(f"recovery up failed: {error}")
    print()
    print(f"The stack is up (time scale {config.time_scale:g}).")
    running = set(config.components)
    if "intake" in running:
        print(f"  intake API       {stack.intake_url}   admin key: {config.admin_api_key} (header api-key)")
    if "stripe-sandbox" in running:
        print(f"  stripe sandbox   {stack.stripe_url}   any sk_test_ key; ledger at /_sandbox/ledger")
    if "receiver" in running:
        print(f"  receiver         {stack.receiver_url}   webhooks to {stack.webhook_url}; see /received")
    print(f"  MongoDB          {stack.mongodb_url}  database {config.mongodb_database}")
    print(f"  RabbitMQ         {redact(stack.rabbitmq_url)}")
    print("logs:")
    for line in stack.summary():
        print(f"  {line}")
    print(f"state: {state_path(directory)}; stop with `recovery down` (make down)")
    if config.time_scale == 1.0:
        print(
            "note: at time scale 1 the first retry runs 1-6 minutes after the recovery request; "
            "`TIME_SCALE=1000 make up` compresses it to under a second"
        )
    return 0
