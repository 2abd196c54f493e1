"""`recovery run NAME [ARGS...]`: one service or development peer in the foreground (exec, not a child)."""

from __future__ import annotations

import argparse
import os
import sys

from recovery_cli.commands.options import Subcommands
from recovery_cli.stack import RUNNABLE


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "run",
        help="run one service or peer in the foreground",
        description="Run one service (configured by its environment: RABBITMQ_URL, MONGODB_URL, "
        "HTTP_PORT, ...) or development peer in the foreground.",
    )
    parser.add_argument("component", choices=list(RUNNABLE), help="what to run")
    parser.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        help="passed on to it (the peers take --port N; the receiver --log FILE)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    module = RUNNABLE[args.component].module
    # exec, not a child: signals (Ctrl-C, SIGTERM from an orchestrator) reach the service itself.
    os.execv(sys.executable, [sys.executable, "-m", module, *args.args])
    return 0  # not reached
