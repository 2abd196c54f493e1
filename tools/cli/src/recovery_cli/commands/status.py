"""`recovery status`: which processes of the stack `recovery up` started are running and ready."""

from __future__ import annotations

import argparse

from recovery_cli.commands.options import Subcommands, add_run_dir, run_dir
from recovery_cli.stack import read_state
from recovery_cli.stack.layout import probe_for
from recovery_cli.stack.state import is_alive, state_path

NOT_RUNNING = 3


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser("status", help="show the processes of the running stack, their readiness and logs")
    add_run_dir(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    directory = run_dir(args)
    state = read_state(directory)
    if state is None:
        print(f"no stack: no {state_path(directory)} (start one with `recovery up`)")
        return NOT_RUNNING
    print(f"stack started {state.started_at} from {state.run_dir}")
    healthy = True
    for record in state.processes:
        if not is_alive(record):
            condition = "DOWN"
        elif record.port is None:
            condition = "running"
        else:
            result = probe_for(record.role, "127.0.0.1", record.port).check()
            condition = "ready" if result.ready else f"NOT READY ({result.detail})"
        healthy = healthy and condition in ("ready", "running")
        print(f"  {record.name:<20} pid {record.pid:<8} {condition:<10} {record.url or ''}  log {record.log}")
    for key, value in state.settings.items():
        print(f"  {key}: {value}")
    return 0 if healthy else 1
