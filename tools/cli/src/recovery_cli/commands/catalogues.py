"""`recovery catalogues`: write or check the generated OpenAPI, AsyncAPI and configuration reference."""

from __future__ import annotations

import argparse
import sys

from recovery_cli.commands.options import Subcommands


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "catalogues",
        help="generate docs/catalogue/{openapi,asyncapi}.json and docs/configuration.md, or check them for drift",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="regenerate the files from the code")
    action.add_argument("--check", action="store_true", help="exit 1 when a checked-in file differs from the code")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from recovery_cli import catalogues  # imports every service: only this command needs it

    if args.write:
        for path in catalogues.write():
            print(f"wrote {path}")
        return 0
    stale = catalogues.drifted()
    if stale:
        print("catalogues out of date (run `recovery catalogues --write` or `make catalogues`):", file=sys.stderr)
        for relative in stale:
            print(f"  {relative}", file=sys.stderr)
        return 1
    print("catalogues up to date: " + ", ".join(catalogues.render()))
    return 0
