"""Options several subcommands share: the run directory, the database, NAME=VALUE pairs, how to print a failure."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TypeAlias

from recovery_cli.locations import RUN_DIR_VARIABLE, default_run_dir
from recovery_cli.stack.infrastructure import DEFAULT_RABBITMQ_URL

DEFAULT_MONGODB_URL = "mongodb://127.0.0.1:27017/?directConnection=true"

# The subparsers of `recovery` (and of a command with actions): each command's `register` adds its parser there.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help=f"where logs and the state file go (default: ${RUN_DIR_VARIABLE} or .run/ at the repo root)",
    )


def add_database(parser: argparse.ArgumentParser) -> None:
    """`--mongodb-url` and `--database`, by default the services' (MONGODB_URL, MONGODB_DATABASE)."""
    parser.add_argument(
        "--mongodb-url",
        default=os.environ.get("MONGODB_URL") or DEFAULT_MONGODB_URL,
        help="default: $MONGODB_URL, else the local `recovery up` database",
    )
    parser.add_argument("--database", default=os.environ.get("MONGODB_DATABASE") or "recovery")


def add_rabbitmq_url(parser: argparse.ArgumentParser) -> None:
    """`--rabbitmq-url`; `rabbitmq_url(args)` resolves it."""
    parser.add_argument("--rabbitmq-url", default=None, help="default: $RABBITMQ_URL or the local broker")


def broker_command(subcommands: Subcommands, name: str, *, help: str, description: str) -> Subcommands:
    """A command on the broker (`--rabbitmq-url`) with actions of its own; the actions' subparsers."""
    parser = subcommands.add_parser(name, help=help, description=description)
    add_rabbitmq_url(parser)
    actions: Subcommands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    return actions


def rabbitmq_url(args: argparse.Namespace) -> str:
    """The broker: --rabbitmq-url, else RABBITMQ_URL (as the services read it), else the local one."""
    return str(args.rabbitmq_url or os.environ.get("RABBITMQ_URL") or DEFAULT_RABBITMQ_URL)


def run_dir(args: argparse.Namespace) -> Path:
    return (args.run_dir or default_run_dir()).resolve()


def name_value_pairs(text: str) -> tuple[str, int]:
    """`executor=2` -> ("executor", 2), for --port and --instances."""
    name, separator, value = text.partition("=")
    if not separator or not name or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {text!r}")
    return name, int(value)


def positive_int(text: str) -> int:
    """An argument type: a whole number of 1 or more."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return int(text)


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1
