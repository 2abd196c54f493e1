"""`recovery down`: stop what `recovery up` started (found through the state file in the run directory)."""

from __future__ import annotations

import argparse

from recovery_cli.commands.options import Subcommands, add_run_dir, run_dir
from recovery_cli.stack import read_state, stop_recorded
from recovery_cli.stack.state import clear_state, state_path


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser("down", help="stop the stack `recovery up` started")
    add_run_dir(parser)
    parser.add_argument("--grace", type=float, default=30.0, help="seconds between SIGTERM and SIGKILL (default 30)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    directory = run_dir(args)
    state = read_state(directory)
    if state is None:
        print(f"nothing to stop: no {state_path(directory)}")
        return 0
    stop_recorded(state, grace=args.grace, say=print)
    clear_state(directory)
    print(f"stack stopped; logs stay in {directory / 'logs'}. RabbitMQ is left running.")
    return 0
