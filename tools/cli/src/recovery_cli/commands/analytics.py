"""`recovery analytics rebuild`: rebuild the read model (views and daily figures) from the analytics event log."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from recovery_cli.commands.options import Subcommands, add_database, fail

if TYPE_CHECKING:
    from recovery_analytics.adapters.rebuild import RebuildReport


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser("analytics", help="the read model: rebuild it from its event log")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    again = actions.add_parser(
        "rebuild",
        help="drop the views and daily figures and fold every stored event again (stop the analytics service first)",
    )
    add_database(again)
    again.set_defaults(handler=handle)


async def _rebuild(url: str, database: str) -> RebuildReport:
    from recovery_analytics.adapters.rebuild import rebuild  # only this command needs the service's code
    from recovery_runtime.mongo import connect

    client = connect(url, app_name="recovery-analytics-rebuild")
    try:
        return await rebuild(client[database])
    finally:
        await client.close()


def handle(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(_rebuild(args.mongodb_url, args.database))
    except Exception as error:
        return fail(f"cannot rebuild the read model in MongoDB database {args.database!r}: {error}")
    print(f"rebuilt {report.payments} payment views and {report.days} daily figures from {report.events} events")
    return 0
