"""`recovery timeline PAYMENT_ID`: the payment's intent, recovery, timers, attempts, webhooks and record back
(read-only)."""

from __future__ import annotations

import argparse
from typing import Any

from recovery_cli.commands.options import Subcommands, add_database, add_run_dir, fail, run_dir

NOT_FOUND = 3


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "timeline",
        help="show a payment's timeline: intent, recovery plan and history, attempts, webhook events, the record "
        "back to the billing system and its tries (read-only)",
    )
    parser.add_argument("payment_id")
    add_database(parser)
    parser.add_argument(
        "--executor-url",
        help="the executor's internal URL, where the record back is read: default $EXECUTOR_INTERNAL_URL, else the "
        "executor of the running `recovery up` stack, else http://127.0.0.1:8082 (token: $INTERNAL_API_TOKEN)",
    )
    add_run_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the records and the timeline as JSON")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    # Imported here: `recovery` starts every command's parser, and only this command needs these.
    from pymongo import MongoClient, ReadPreference

    from recovery_cli.record_backs import ExecutorRecordBacks, executor_url, internal_token
    from recovery_cli.timeline import load_timeline, render_json, render_text

    client: MongoClient[dict[str, Any]] = MongoClient(
        args.mongodb_url, appname="recovery-timeline", serverSelectionTimeoutMS=5000, tz_aware=True
    )
    try:
        db = client.get_database(args.database, read_preference=ReadPreference.PRIMARY_PREFERRED)
        try:
            record_backs = ExecutorRecordBacks(args.executor_url or executor_url(run_dir(args)), internal_token())
            timeline = load_timeline(db, args.payment_id, record_backs.read)
        except Exception as error:
            return fail(f"cannot read MongoDB database {args.database!r}: {error}")
    finally:
        client.close()
    print(render_json(timeline) if args.json else render_text(timeline))
    return 0 if timeline.found else NOT_FOUND
